"""`hrm viz` (same arguments) whose solves never end: a stand-in for a model or a classical solver that
takes hours. Each solve spins in pure Python, holding the interpreter lock between switches as a
solver written in Python does. Used by test_limits.py's load test, which stops the process."""

from __future__ import annotations

import sys
from typing import Any

import hrm.inference


def endless(*args: Any, **kwargs: Any) -> Any:
    while True:
        sum(range(10_000))


hrm.inference.solve = endless  # type: ignore[assignment]

if __name__ == "__main__":
    from hrm.viz.cli import main

    sys.exit(main())
