"""hrm: the Hierarchical Reasoning Model (and TRM, and a transformer baseline) for puzzles."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
