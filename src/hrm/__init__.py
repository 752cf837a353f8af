"""hrm: the Hierarchical Reasoning Model (and TRM, and a transformer baseline) for puzzles.

import hrm
model = hrm.load_model("runs/sudoku4_cpu-20260101-120000")   # a run, checkpoint or packaged name
solution = hrm.solve(model, "1.3..2.4.1.3....")                # answer, rule check, segments, trace
"""

from __future__ import annotations

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
    "train": "hrm.train",
}

if TYPE_CHECKING:  # pragma: no cover
    from hrm.checkpoint import load_model
    from hrm.config import TrainConfig, load_config
    from hrm.models import ACTLossHead, HRMConfig, TransformerConfig, TRMConfig, build_model
    from hrm.solve import Solution, solve, solve_many
    from hrm.train import train


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
