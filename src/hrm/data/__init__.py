"""Puzzle datasets: the on-disk format, `PuzzleDataset`, and builders (sudoku, maze, ARC).

Names are resolved on first use so that `import hrm.data` does not import numpy or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PuzzleSetArrays": "hrm.data.format",
    "DatasetMetadata": "hrm.data.format",
    "DatasetSummary": "hrm.data.format",
    "PuzzleDataset": "hrm.data.format",
    "PuzzleDatasetConfig": "hrm.data.format",
    "write_dataset": "hrm.data.format",
    "validate_dataset": "hrm.data.format",
    "load_metadata": "hrm.data.format",
    "load_split": "hrm.data.format",
    "build_sudoku_dataset": "hrm.data.sudoku",
    "generate_sudoku": "hrm.data.sudoku",
    "read_sudoku_file": "hrm.data.sudoku",
    "solve_sudoku": "hrm.data.sudoku",
    "rate_sudoku": "hrm.data.sudoku",
}
_RENAMED = {"solve_sudoku": "solve", "rate_sudoku": "rate"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
