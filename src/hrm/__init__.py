"""hrm: the Hierarchical Reasoning Model (and TRM, and a transformer baseline) for puzzles.

import hrm
model = hrm.load_model("sudoku-9x9")         # the shipped model; or a run, checkpoint or model dir
puzzle = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
solution = hrm.solve(model, puzzle, trace=True)  # answer, rule check, segments, trace
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Heavy names (they import torch) resolve on first use, so `import hrm` and `hrm --help` stay fast.
_LAZY = {
    "load_model": "hrm.checkpoint",
    "solve": "hrm.solve",
    "solve_many": "hrm.solve",
    "Solution": "hrm.solve",
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
    from hrm.models import ACTLossHead, HRMConfig, TransformerConfig, TRMConfig, build_model
    from hrm.solve import Solution, solve, solve_many
    from hrm.training import train


class _Package(types.ModuleType):
    """`hrm.solve` and `hrm.train` are functions that live in modules of the same name. Importing such a
    module makes Python set it as an attribute of this package, which would hide the function; the
    package keeps the function instead (the module stays importable through ``from hrm.solve import``
    and ``importlib.import_module``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


_SHADOWED = {"solve", "train"}
sys.modules[__name__].__class__ = _Package


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
