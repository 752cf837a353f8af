"""Sudoku generation: random full grids, digging clues out while the puzzle stays unique, and the
difficulty levels a generated puzzle is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hrm.data.sudoku.collection import SudokuCollection
from hrm.data.sudoku.solver import (
    DIFFICULTIES,
    SolverGaveUp,
    SolveStats,
    box_shape,
    rate_difficulty,
    solve_exact,
)
from hrm.errors import DataError


def parse_difficulties(spec: str) -> list[str]:
    """The levels of a difficulty spec: one level or a comma-separated mix such as "easy,medium"."""
    levels = [part.strip() for part in str(spec).split(",")]
    for level in levels:
        difficulty_rank(level)
    return levels


def difficulty_rank(level: str) -> int:
    try:
        return DIFFICULTIES.index(level)
    except ValueError:
        raise DataError(f"unknown difficulty {level!r}; choose one of {', '.join(DIFFICULTIES)}") from None


@dataclass
class Sudoku:
    """One puzzle with its unique solution, both flat uint8 arrays (0 = blank), and its rating."""

    puzzle: np.ndarray
    solution: np.ndarray
    difficulty: str | None = None
    stats: SolveStats | None = None

    @property
    def size(self) -> int:
        return math.isqrt(self.puzzle.size)


def random_full_grid(size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly-seeded random complete grid: the solver on an empty board with random branch order."""
    box_shape(size)
    result = solve_exact(np.zeros(size * size, dtype=np.uint8), limit=1, size=size, rng=rng)
    assert result.solution is not None  # an empty board always has a solution
    return result.solution


def _dig(
    solution: np.ndarray, target: int, rng: np.random.Generator, min_clues: int = 0
) -> tuple[np.ndarray, SolveStats]:
    """Remove clues in random order while the puzzle stays unique and not harder than ``target``,
    keeping at least ``min_clues`` of them."""
    puzzle = solution.copy()
    size = math.isqrt(solution.size)
    stats = solve_exact(puzzle, limit=2, size=size).stats
    for cell in rng.permutation(solution.size):
        if np.count_nonzero(puzzle) <= min_clues:
            break
        value = puzzle[cell]
        puzzle[cell] = 0
        try:
            result = solve_exact(puzzle, limit=2, size=size)
        except SolverGaveUp:  # far too hard to rate: keep the clue
            puzzle[cell] = value
            continue
        if result.unique and difficulty_rank(rate_difficulty(result.stats)) <= target:
            stats = result.stats
        else:
            puzzle[cell] = value
    return puzzle, stats


def generate_sudoku(
    size: int = 9,
    difficulty: str = "medium",
    rng: np.random.Generator | None = None,
    max_tries: int = 500,
    min_clues: int = 0,
) -> Sudoku:
    """A random puzzle with a unique solution rated exactly ``difficulty``.

    Clues are removed from a random full grid while the puzzle stays unique and no harder than asked;
    when the result is easier than asked (digging got stuck), start again from a new grid.
    """
    rng = rng if rng is not None else np.random.default_rng()
    target = difficulty_rank(difficulty)
    box_shape(size)
    for _ in range(max_tries):
        solution = random_full_grid(size, rng)
        puzzle, stats = _dig(solution, target, rng, min_clues)
        if rate_difficulty(stats) == difficulty:
            return Sudoku(puzzle=puzzle, solution=solution, difficulty=difficulty, stats=stats)
    raise DataError(
        f"could not generate a {difficulty} {size}x{size} sudoku in {max_tries} tries; "
        f"try an easier difficulty for this size"
    )


def generate_collection(
    count: int,
    size: int,
    difficulty: str,
    rng: np.random.Generator,
    progress: bool = False,
    desc: str = "generating",
    min_clues: int = 0,
) -> SudokuCollection:
    """``count`` generated puzzles of one size, each with at least ``min_clues`` givens.

    ``difficulty`` is one level or a comma-separated mix ("easy,medium"): puzzle i then has level
    ``levels[i % len(levels)]``, so a mix is split evenly.
    """
    from tqdm import tqdm

    box_shape(size)
    levels = parse_difficulties(difficulty)
    items = [
        generate_sudoku(size, levels[i % len(levels)], rng, min_clues=min_clues)
        for i in tqdm(range(count), desc=desc, unit="puzzle", disable=not progress or count == 0, leave=False)
    ]
    if not items:
        return SudokuCollection.empty(size, "generated", f"generated {size}x{size} {difficulty}")
    return SudokuCollection(
        puzzles=np.stack([s.puzzle for s in items]),
        solutions=np.stack([s.solution for s in items]),
        ratings=[levels[i % len(levels)] for i in range(count)],
        lines=np.arange(count, dtype=np.int64),
        size=size,
        kind="generated",
        source=f"generated {size}x{size} {difficulty}",
    )
