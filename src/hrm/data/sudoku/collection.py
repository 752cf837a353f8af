"""`SudokuCollection`: a set of puzzles with their solutions, as the importers and the generator make
them and the builder consumes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SudokuCollection:
    """Puzzles read from a file or generated: [M, n*n] uint8 arrays (0 = blank), with their source lines.

    ``ratings`` are our difficulty levels (text files, generated) or the published integer ratings (CSV).
    """

    puzzles: np.ndarray
    solutions: np.ndarray
    ratings: list[str] | np.ndarray
    lines: np.ndarray
    size: int
    kind: str  # "text", "csv" or "generated"
    skipped: int = 0
    source: str = ""

    def __len__(self) -> int:
        return int(self.puzzles.shape[0])

    @classmethod
    def empty(cls, size: int, kind: str, source: str, skipped: int = 0) -> SudokuCollection:
        """A collection of no puzzles of one size (a CSV's ratings are an integer array)."""
        empty = np.zeros((0, size * size), dtype=np.uint8)
        ratings: list[str] | np.ndarray = [] if kind != "csv" else np.zeros(0, np.int64)
        return cls(empty, empty.copy(), ratings, np.zeros(0, np.int64), size, kind, skipped, source)

    def take(self, index: np.ndarray) -> SudokuCollection:
        ratings = (
            self.ratings[index] if isinstance(self.ratings, np.ndarray) else [self.ratings[i] for i in index]
        )
        return SudokuCollection(
            puzzles=self.puzzles[index],
            solutions=self.solutions[index],
            ratings=ratings,
            lines=self.lines[index],
            size=self.size,
            kind=self.kind,
            skipped=self.skipped,
            source=self.source,
        )
