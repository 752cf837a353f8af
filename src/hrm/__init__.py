"""hrm: the Hierarchical Reasoning Model (and TRM, and a transformer baseline) for puzzles.

import hrm
model = hrm.load_model("sudoku-9x9")         # the shipped model; or a run, checkpoint or model dir
puzzle = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
solution = hrm.solve(model, puzzle, trace=True)  # answer, rule check, segments, trace
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API. Its names import torch, so they resolve on first use: the `hrm` command imports this
# package, and `hrm --help` must stay fast. This map is the package's only deferred import.
_LAZY = {
    "load_model": "hrm.checkpoint",
    "solve": "hrm.inference",
    "solve_many": "hrm.inference",
    "Solution": "hrm.inference",
    "build_model": "hrm.models",
    "ACTLossHead": "hrm.models",
    "HRMConfig": "hrm.models",
    "TRMConfig": "hrm.models",
    "TransformerConfig": "hrm.models",
    "TrainConfig": "hrm.config",
    "load_config": "hrm.config",
    "train": "hrm.training",
}

if TYPE_CHECKING:  # pragma: no cover
    from hrm.checkpoint import load_model
    from hrm.config import TrainConfig, load_config
    from hrm.inference import Solution, solve, solve_many
    from hrm.models import ACTLossHead, HRMConfig, TransformerConfig, TRMConfig, build_model
    from hrm.training import train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hrm' has no attribute {name!r}")


__all__ = [
    "ACTLossHead",
    "HRMConfig",
    "Solution",
    "TRMConfig",
    "TrainConfig",
    "TransformerConfig",
    "__version__",
    "build_model",
    "load_config",
    "load_model",
    "solve",
    "solve_many",
    "train",
]
