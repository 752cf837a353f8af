"""Sudoku (4x4, 6x6, 9x9): digits 1..n, tokens PAD=0, blank=1, digit d = d + 1 (the reference's)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hrm.data import sudoku as sudoku_data
from hrm.errors import DataError, a_grid
from hrm.tasks.base import Answer, Encoding, Grid, Puzzle, RowAnswers, SolveOptions, Task, short

SEPARATORS = str.maketrans("", "", " \t\r\n|-+")
# Generating for the viewer: digging attempts before the difficulty asked for is given up.
GENERATE_MAX_TRIES = 50
GENERATE_DIFFICULTIES = ("easy", "medium", "hard")  # the levels the viewer offers


def sudoku_digits(tokens: np.ndarray, size: int) -> np.ndarray:
    """Model tokens -> digits [n, n]; a token that is not a digit (PAD, blank) becomes 0."""
    t = np.asarray(tokens).reshape(-1).astype(np.int64)
    return np.where((t >= 2) & (t <= size + 1), t - 1, 0).reshape(size, size)


def check_sudoku(puzzle: np.ndarray, answer: np.ndarray) -> str | None:
    """Why `answer` (digits) does not solve `puzzle` (digits, 0 blank) under the rules, or None when it
    does: every cell a digit 1..n, every given kept, no digit twice in a row, column or box."""
    p = np.asarray(puzzle).reshape(-1).astype(np.int64)
    a = np.asarray(answer).reshape(-1).astype(np.int64)
    n = math.isqrt(p.size)
    if a.shape != p.shape:
        return f"the answer has {a.size} cells but the puzzle {p.size}"
    empty = np.flatnonzero((a < 1) | (a > n))
    if empty.size:
        r, c = divmod(int(empty[0]), n)
        more = f" (and {empty.size - 1} more)" if empty.size > 1 else ""
        return f"cell r{r + 1}c{c + 1} holds no digit 1-{n}{more}"
    changed = np.flatnonzero((p != 0) & (p != a))
    if changed.size:
        r, c = divmod(int(changed[0]), n)
        i = int(changed[0])
        return f"the given {p[i]} at r{r + 1}c{c + 1} was changed to {a[i]}"
    conflict = sudoku_data.find_conflict(a, n)
    if conflict:
        return conflict
    if not sudoku_data.is_valid_solution(a, p):  # cannot happen for a complete grid without repeats
        return "not a valid solution"
    return None


def format_sudoku(digits: np.ndarray | Sequence[Sequence[int]]) -> str:
    """A Sudoku grid as text with box separators ('.' for blanks)."""
    g = np.asarray(digits, dtype=np.int64)
    n = g.shape[0]
    br, bc = sudoku_data.box_shape(n)
    rule = "-+-".join("-" * (2 * bc - 1) for _ in range(n // bc))
    rows = []
    for r in range(n):
        if r and r % br == 0:
            rows.append(rule)
        cells = ["." if v == 0 else str(v) for v in g[r]]
        rows.append(" | ".join(" ".join(cells[k : k + bc]) for k in range(0, n, bc)))
    return "\n".join(rows)


def sudoku_views(
    cells: np.ndarray, views: int, seed: int = 0
) -> tuple[np.ndarray, sudoku_data.SudokuAugmentations]:
    """A Sudoku as given followed by ``views - 1`` random symmetric transforms of it (digit relabelling,
    band/row and stack/column permutations, transposition for square boxes), drawn from ``seed``:
    rows of digits [views, n*n] and the transforms, to map the answers back."""
    flat = np.asarray(cells).reshape(-1)
    n = math.isqrt(flat.size)
    augs = sudoku_data.random_augmentations(n, max(views - 1, 0), np.random.default_rng(seed))
    rows = np.concatenate([flat[None, :], sudoku_data.apply_augmentations(flat, augs).reshape(-1, flat.size)])
    return rows, augs


class SudokuTask(Task):
    name = "sudoku"
    title = "Sudoku"
    symmetric_views = True
    generates = True
    menu_order = 0

    def fits(self, seq_len: int, vocab_size: int) -> bool:
        n = math.isqrt(seq_len)
        return n * n == seq_len and vocab_size == sudoku_data.VOCAB_SIZE.get(n)

    def claims(self, text: str) -> bool:
        cells = text.strip().translate(SEPARATORS).replace(".", "")
        return cells.isdigit() or not cells

    def parse(self, raw: Any, name: str | None = None, task_id: str | None = None) -> Puzzle:
        """16, 36 or 81 cells of 1..n, '.' or '0' for blanks; whitespace and the separators '|', '-',
        '+' are ignored. Contradictory givens are an error."""
        if not isinstance(raw, str):
            raise DataError(f"a sudoku must be given as text, got a {type(raw).__name__}")
        name = name or f"puzzle {short(raw)}"
        cells_text = raw.translate(SEPARATORS)
        n = math.isqrt(len(cells_text))
        if n * n != len(cells_text) or n not in sudoku_data.SIZES:
            raise DataError(
                f"{name}: has {len(cells_text)} cells; a sudoku needs 16, 36 or 81 (4x4, 6x6 or 9x9), "
                "with '.' or '0' for blanks"
            )
        allowed = ".0" + "".join(str(d) for d in range(1, n + 1))
        wrong = sorted({ch for ch in cells_text if ch not in allowed})
        if wrong:
            raise DataError(
                f"{name}: character(s) {''.join(wrong)!r} not allowed in {a_grid(n)} sudoku "
                f"(digits 1-{n}, '.' or '0' for blanks)"
            )
        cells = (np.frombuffer(cells_text.replace(".", "0").encode(), dtype=np.uint8) - ord("0")).reshape(
            n, n
        )
        conflict = sudoku_data.find_conflict(cells, n)
        if conflict:
            raise DataError(f"{name}: contradictory givens: {conflict}")
        cells = cells.astype(np.uint8)
        return Puzzle(self.name, name, sudoku_data.format_grid(cells), cells.astype(int).tolist(), cells)

    def shape(self, puzzle: Puzzle) -> tuple[int, int, str]:
        n = puzzle.payload.shape[0]
        return n * n, sudoku_data.VOCAB_SIZE[n], f"{a_grid(n)} sudoku ({n * n} cells)"

    def encode(self, puzzle: Puzzle, options: SolveOptions) -> Encoding:
        cells = puzzle.payload
        if options.views > 1:
            rows, augs = sudoku_views(cells, options.views, options.seed)
            return Encoding((rows + 1).astype(np.int64), np.zeros(len(rows), np.int64), augs)
        return Encoding((cells.reshape(1, -1) + 1).astype(np.int64), np.zeros(1, np.int64))

    def answer(self, puzzle: Puzzle, encoding: Encoding, rows: RowAnswers) -> Answer:
        """One view: its answer. Several: each view's answer mapped back to the puzzle's frame; an answer
        that satisfies the rules comes first, then the one most views gave, then the highest mean Q-halt."""
        cells = puzzle.payload
        n = cells.shape[0]
        segments = int(rows.steps.max())
        if encoding.context is None:
            digits = sudoku_digits(rows.preds[0], n)
            reason = check_sudoku(cells, digits)
            return Answer(
                digits.astype(int).tolist(), reason is None, reason, float(rows.q_halt[0]), segments
            )
        digits = np.stack([sudoku_digits(p, n).reshape(-1) for p in rows.preds])
        digits[1:] = sudoku_data.invert_augmentations(digits[1:], encoding.context)
        groups: dict[bytes, list[int]] = {}
        for k, flat in enumerate(digits):
            groups.setdefault(flat.astype(np.int8).tobytes(), []).append(k)
        best: tuple[tuple[bool, int, float], np.ndarray, str | None, float, int] | None = None
        for members in groups.values():
            flat = digits[members[0]]
            reason = check_sudoku(cells, flat)
            q = float(np.mean(rows.q_halt[np.asarray(members)]))
            key = (reason is None, len(members), q)
            if best is None or key > best[0]:
                best = (key, flat, reason, q, len(members))
        assert best is not None
        _, flat, reason, q, agree = best
        grid = flat.reshape(n, n).astype(int).tolist()
        return Answer(grid, reason is None, reason, q, segments, agreement=agree)

    def decode(self, puzzle: Puzzle, tokens: np.ndarray, view: str | None = None) -> Grid:
        return sudoku_digits(tokens, puzzle.payload.shape[0]).astype(int).tolist()

    cell_values = frozenset(range(10))

    def trace_grid_problem(self, grid: Grid, puzzle: Grid | None) -> str | None:
        n = len(grid)
        if puzzle is not None and (n != len(puzzle) or not n or len(grid[0]) != n):
            return "the answer is not the puzzle's size"
        if puzzle is None and (n not in sudoku_data.SIZES or len(grid[0]) != n):
            return f"a sudoku is {', '.join(f'{k}x{k}' for k in sudoku_data.SIZES)}"
        if any(v > n for row in grid for v in row):
            return f"{a_grid(n)} sudoku holds the digits 0-{n}"
        return None

    def check_grid(self, puzzle_grid: Grid, answer: Grid, expected: Grid | None = None) -> dict[str, Any]:
        reason = check_sudoku(np.asarray(puzzle_grid), np.asarray(answer))
        return {"valid": reason is None, "reason": reason}

    def format(self, grid: Grid) -> str:
        return format_sudoku(grid)

    def format_line(self, grid: Grid) -> str:
        return "".join(str(d) for row in grid for d in row)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "style": "digits",
            "cell_px": 46,
            "boxes": {str(n): list(sudoku_data.box_shape(n)) for n in sudoku_data.SIZES},
            "generate": {"sizes": list(sudoku_data.SIZES), "difficulties": list(GENERATE_DIFFICULTIES)},
            "input_hint": "a Sudoku (16/36/81 cells, '.' or '0' for blanks)",
            "json_input": False,
            "score_series": list(self.score_series),
        }

    def grid_of_tokens(self, tokens: np.ndarray, label: bool = False) -> Grid | None:
        flat = np.asarray(tokens).reshape(-1)
        grid = sudoku_digits(flat, math.isqrt(flat.size))
        return None if label and not grid.any() else grid.astype(int).tolist()

    def puzzle_of_example(
        self, grid: Grid, label: Grid | None, name: str, identifier: str, original: dict[str, Any] | None
    ) -> Puzzle:
        return self.parse("".join(str(d) for row in grid for d in row), name=name)

    def solver_answer(self, puzzle_grid: Grid) -> tuple[Grid | None, str | None]:
        """The exact solver's answer (the first of several when it is not unique)."""
        cells = np.asarray(puzzle_grid, dtype=np.uint8)
        n = cells.shape[0] if cells.ndim == 2 else 0
        if n not in sudoku_data.SIZES or cells.shape != (n, n):
            return None, None
        try:
            result = sudoku_data.solve_exact(cells.reshape(-1), limit=2, size=n)
        except sudoku_data.SolverGaveUp as exc:
            return None, f"the solver gave up after {exc.nodes:,} search steps"
        if result.solution is None:
            return None, "the solver found no solution"
        source = "solver" if result.unique else "solver (one of several solutions)"
        return result.solution.reshape(n, n).astype(int).tolist(), source

    def check_generate(self, size: int, difficulty: str | None) -> None:
        if size not in sudoku_data.SIZES:
            raise ValueError(f"a sudoku is 4x4, 6x6 or 9x9, not {size}x{size}")
        if difficulty is not None and difficulty not in GENERATE_DIFFICULTIES:
            raise ValueError(f"difficulty {difficulty!r} is not one of {', '.join(GENERATE_DIFFICULTIES)}")

    def generate(
        self, size: int, difficulty: str | None, rng: np.random.Generator, min_path_length: int | None = None
    ) -> dict[str, Any]:
        """`difficulty` None: the easiest level the viewer offers."""
        level = difficulty or GENERATE_DIFFICULTIES[0]
        s = sudoku_data.generate_sudoku(size, level, rng=rng, max_tries=GENERATE_MAX_TRIES, min_clues=0)
        return {
            "text": sudoku_data.format_grid(s.puzzle),
            "grid": s.puzzle.reshape(size, size).astype(int).tolist(),
            "solution": s.solution.reshape(size, size).astype(int).tolist(),
            "difficulty": s.difficulty,
        }


# The difficulties the viewer generates ("extreme" is left out: it can take many tries).
