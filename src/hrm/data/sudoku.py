"""Sudoku: an exact solver, a difficulty rating, a generator, importers, augmentation and the dataset builder.

Grids are handled as flat ``uint8`` arrays of length n*n with 0 for a blank and 1..n for a digit. On disk
(the reference encoding) every cell is stored +1: PAD 0, blank 1, digit d as d+1; vocabulary 11 for 9x9.

The solver works on bitmasks: constraint propagation by naked singles (a cell with one candidate) and
hidden singles (a digit with one place in a unit), then search on the cell with fewest candidates. It
counts solutions up to a limit, so with ``limit=2`` it proves uniqueness by walking the whole search
tree; the size of that tree is what the difficulty rating measures, so the rating does not depend on
luck in the order branches are tried.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hrm.errors import DataError

SIZES = (4, 6, 9)
BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
DIFFICULTIES = ("easy", "medium", "hard", "extreme")

# Difficulty thresholds, on the full search tree walked when proving uniqueness (see `rate`):
#   easy     naked singles alone solve it (no hidden singles, no guessing);
#   medium   hidden singles are needed, still no guessing;
#   hard     1 .. EXTREME_MIN_GUESSES-1 guesses;
#   extreme  at least EXTREME_MIN_GUESSES guesses: substantial trial and error, as in the published
#            Sudoku-Extreme set (its puzzles were selected for needing backtracking).
EXTREME_MIN_GUESSES = 16

CSV_HEADER = ["source", "question", "answer", "rating"]
HF_REPO = "sapientinc/sudoku-extreme"

# Reference encoding.
PAD_ID = 0
VOCAB_SIZE = {n: n + 2 for n in SIZES}  # PAD + blank + n digits (11 for 9x9, as the reference)


def box_shape(size: int) -> tuple[int, int]:
    """(rows, cols) of a box for an n x n sudoku."""
    try:
        return BOX_SHAPES[size]
    except KeyError:
        raise DataError(f"unsupported sudoku size {size}; supported sizes are 4, 6 and 9") from None


# --------------------------------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    n: int
    full: int
    row_of: tuple[int, ...]
    col_of: tuple[int, ...]
    box_of: tuple[int, ...]
    units: tuple[tuple[int, ...], ...]  # rows, columns, boxes: n*n cell indices each
    bits: tuple[tuple[int, int], ...]  # (bit, digit) pairs for 1..n
    digit_of_bit: dict[int, int]


@cache
def _geometry(n: int) -> _Geometry:
    br, bc = box_shape(n)
    row_of = tuple(i // n for i in range(n * n))
    col_of = tuple(i % n for i in range(n * n))
    box_of = tuple((r // br) * (n // bc) + (c // bc) for r, c in zip(row_of, col_of))
    rows = [tuple(r * n + c for c in range(n)) for r in range(n)]
    cols = [tuple(r * n + c for r in range(n)) for c in range(n)]
    boxes = [tuple(i for i in range(n * n) if box_of[i] == b) for b in range(n)]
    bits = tuple((1 << (d - 1), d) for d in range(1, n + 1))
    return _Geometry(
        n=n,
        full=(1 << n) - 1,
        row_of=row_of,
        col_of=col_of,
        box_of=box_of,
        units=tuple(rows + cols + boxes),
        bits=bits,
        digit_of_bit={b: d for b, d in bits},
    )


@dataclass
class SolveStats:
    """Search effort. ``guesses``: digits tried at branching cells; ``backtracks``: dead ends met;
    ``hidden_singles``: placements that needed the hidden-single rule."""

    guesses: int = 0
    backtracks: int = 0
    naked_singles: int = 0
    hidden_singles: int = 0


@dataclass
class SolveResult:
    """``solutions`` holds up to ``limit`` solutions (flat uint8 arrays); ``num_solutions`` is that count."""

    solutions: list[np.ndarray]
    stats: SolveStats = field(default_factory=SolveStats)

    @property
    def num_solutions(self) -> int:
        return len(self.solutions)

    @property
    def unique(self) -> bool:
        return len(self.solutions) == 1

    @property
    def solution(self) -> np.ndarray | None:
        return self.solutions[0] if self.solutions else None


def find_conflict(grid: np.ndarray | Sequence[int], size: int | None = None) -> str | None:
    """A sentence fragment describing the first repeated given, or None when the givens are consistent."""
    cells = [int(v) for v in np.asarray(grid).reshape(-1)]
    n = size or math.isqrt(len(cells))
    geo = _geometry(n)
    names = ["row"] * n + ["column"] * n + ["box"] * n
    for u, unit in enumerate(geo.units):
        seen: set[int] = set()
        for i in unit:
            v = cells[i]
            if v == 0:
                continue
            if v in seen:
                return f"digit {v} appears twice in {names[u]} {u % n + 1}"
            seen.add(v)
    return None


def _propagate(grid: list[int], rows: list[int], cols: list[int], boxes: list[int], geo: _Geometry, stats):
    """Place every forced digit. Returns (branch cell, its candidates), (-1, 0) when solved, or None on a
    contradiction. ``grid`` and the masks are updated in place."""
    full = geo.full
    row_of, col_of, box_of = geo.row_of, geo.col_of, geo.box_of
    while True:
        # Naked singles, repeated until none is left; remember candidates for the hidden-single pass.
        while True:
            progress = False
            cands: dict[int, int] = {}
            for i, v in enumerate(grid):
                if v:
                    continue
                r, c, b = row_of[i], col_of[i], box_of[i]
                m = full & ~(rows[r] | cols[c] | boxes[b])
                if not m:
                    return None
                if m & (m - 1):
                    cands[i] = m
                else:
                    grid[i] = geo.digit_of_bit[m]
                    rows[r] |= m
                    cols[c] |= m
                    boxes[b] |= m
                    stats.naked_singles += 1
                    progress = True
            if not progress:
                break
        if not cands:
            return -1, 0
        # Hidden singles. Candidates may be stale after a placement in this pass, but they are only ever
        # supersets of the true ones, so "the only place for d in this unit" stays forced as long as the
        # cell is still empty and d does not clash; when it does clash we skip and let the next pass decide.
        placed = False
        for unit in geo.units:
            once = twice = 0
            have = 0
            for i in unit:
                v = grid[i]
                if v:
                    have |= 1 << (v - 1)
                    continue
                m = cands.get(i, 0)
                twice |= once & m
                once |= m
            if (once | have) != full:
                return None  # some digit has no place left in this unit
            hidden = once & ~twice & ~have
            while hidden:
                bit = hidden & -hidden
                hidden ^= bit
                for i in unit:
                    if not grid[i] and cands.get(i, 0) & bit:
                        r, c, b = row_of[i], col_of[i], box_of[i]
                        if (rows[r] | cols[c] | boxes[b]) & bit:
                            break
                        grid[i] = geo.digit_of_bit[bit]
                        rows[r] |= bit
                        cols[c] |= bit
                        boxes[b] |= bit
                        stats.hidden_singles += 1
                        placed = True
                        break
        if not placed:
            best, best_m, best_count = -1, 0, 99
            for i, m in cands.items():
                k = m.bit_count()
                if k < best_count:
                    best, best_m, best_count = i, m, k
                    if k == 2:
                        break
            return best, best_m


def solve(
    grid: np.ndarray | Sequence[int],
    limit: int = 2,
    size: int | None = None,
    rng: np.random.Generator | None = None,
) -> SolveResult:
    """Solve a sudoku given as n*n cells (0 = blank), counting up to ``limit`` solutions.

    Contradictory givens give zero solutions. ``limit=2`` is the uniqueness check. With ``rng`` the
    digits at a branching cell are tried in random order (used to draw random full grids).
    """
    cells = [int(v) for v in np.asarray(grid).reshape(-1)]
    n = size or math.isqrt(len(cells))
    if n * n != len(cells):
        raise DataError(f"a sudoku needs a square number of cells, got {len(cells)}")
    geo = _geometry(n)
    stats = SolveStats()
    result = SolveResult(solutions=[], stats=stats)
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    for i, v in enumerate(cells):
        if v == 0:
            continue
        if not 1 <= v <= n:
            raise DataError(f"cell value {v} is out of range for a {n}x{n} sudoku")
        bit = 1 << (v - 1)
        r, c, b = geo.row_of[i], geo.col_of[i], geo.box_of[i]
        if (rows[r] | cols[c] | boxes[b]) & bit:
            return result
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit

    # Iterative depth-first search (no recursion limit worries); each frame is a copied state.
    stack = [(cells, rows, cols, boxes)]
    while stack:
        g, rw, cl, bx = stack.pop()
        branch = _propagate(g, rw, cl, bx, geo, stats)
        if branch is None:
            stats.backtracks += 1
            continue
        cell, m = branch
        if cell < 0:
            result.solutions.append(np.array(g, dtype=np.uint8))
            if len(result.solutions) >= limit:
                break
            continue
        r, c, b = geo.row_of[cell], geo.col_of[cell], geo.box_of[cell]
        # Push in reverse so the lowest digit is explored first.
        options = []
        while m:
            bit = m & -m
            m ^= bit
            options.append(bit)
        if rng is not None:
            options = [options[k] for k in rng.permutation(len(options))]
        for bit in reversed(options):
            g2 = g.copy()
            g2[cell] = geo.digit_of_bit[bit]
            rw2, cl2, bx2 = rw.copy(), cl.copy(), bx.copy()
            rw2[r] |= bit
            cl2[c] |= bit
            bx2[b] |= bit
            stack.append((g2, rw2, cl2, bx2))
            stats.guesses += 1
    return result


def rate(stats: SolveStats) -> str:
    """Difficulty level from the effort of a full (``limit=2``) solve; thresholds in the module header."""
    if stats.guesses >= EXTREME_MIN_GUESSES:
        return "extreme"
    if stats.guesses > 0:
        return "hard"
    if stats.hidden_singles > 0:
        return "medium"
    return "easy"


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


def is_valid_solution(
    solution: np.ndarray | Sequence[int], puzzle: np.ndarray | Sequence[int] | None = None
) -> bool:
    """True when ``solution`` is a complete valid grid (and agrees with ``puzzle``'s givens, if given)."""
    s = np.asarray(solution).reshape(-1).astype(np.int64)
    n = math.isqrt(s.size)
    if n * n != s.size or n not in BOX_SHAPES:
        return False
    if puzzle is not None:
        p = np.asarray(puzzle).reshape(-1)
        if p.shape != s.shape or np.any((p != 0) & (p != s)):
            return False
    return bool(_valid_grids(s[None, :], n)[0])


def _valid_grids(grids: np.ndarray, n: int) -> np.ndarray:
    """Vectorised validity of complete grids [M, n*n] (values 1..n): a boolean per row."""
    br, bc = box_shape(n)
    g = grids.reshape(-1, n, n)
    boxes = g.reshape(-1, n // br, br, n // bc, bc).transpose(0, 1, 3, 2, 4).reshape(-1, n, n)
    target = (1 << (n + 1)) - 2  # bits 1..n
    ok = np.ones(len(grids), dtype=bool)
    in_range = np.all((g >= 1) & (g <= n), axis=(1, 2))
    safe = np.where(in_range[:, None, None], g, 1).astype(np.int64)
    safe_boxes = np.where(in_range[:, None, None], boxes, 1).astype(np.int64)
    for arr, axis in ((safe, 2), (safe, 1), (safe_boxes, 2)):
        masks = np.bitwise_or.reduce(np.left_shift(1, arr), axis=axis)
        ok &= np.all(masks == target, axis=1)
    return ok & in_range


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


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
    result = solve(np.zeros(size * size, dtype=np.uint8), limit=1, size=size, rng=rng)
    assert result.solution is not None  # an empty board always has a solution
    return result.solution


def _dig(
    solution: np.ndarray, target: int, rng: np.random.Generator, min_clues: int = 0
) -> tuple[np.ndarray, SolveStats]:
    """Remove clues in random order while the puzzle stays unique and not harder than ``target``,
    keeping at least ``min_clues`` of them."""
    puzzle = solution.copy()
    size = math.isqrt(solution.size)
    stats = solve(puzzle, limit=2, size=size).stats
    for cell in rng.permutation(solution.size):
        if np.count_nonzero(puzzle) <= min_clues:
            break
        value = puzzle[cell]
        puzzle[cell] = 0
        result = solve(puzzle, limit=2, size=size)
        if result.unique and difficulty_rank(rate(result.stats)) <= target:
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
        if rate(stats) == difficulty:
            return Sudoku(puzzle=puzzle, solution=solution, difficulty=difficulty, stats=stats)
    raise DataError(
        f"could not generate a {difficulty} {size}x{size} sudoku in {max_tries} tries; "
        f"try an easier difficulty for this size"
    )


# --------------------------------------------------------------------------------------------------
# Importers
# --------------------------------------------------------------------------------------------------


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


def _empty_collection(size: int, kind: str, source: str, skipped: int = 0) -> SudokuCollection:
    empty = np.zeros((0, size * size), dtype=np.uint8)
    return SudokuCollection(
        empty,
        empty.copy(),
        [] if kind != "csv" else np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        size,
        kind,
        skipped,
        source,
    )


def _solve_worker(job: tuple[bytes, int]) -> tuple[int, bytes, int, int]:
    """(number of solutions up to 2, the first solution, guesses, hidden singles) for one puzzle."""
    cells, size = job
    result = solve(np.frombuffer(cells, dtype=np.uint8), limit=2, size=size)
    sol = result.solution.tobytes() if result.solution is not None else b""
    return result.num_solutions, sol, result.stats.guesses, result.stats.hidden_singles


def solve_many(
    puzzles: np.ndarray, workers: int | None = None, progress: bool = False, desc: str = "solving"
) -> list[tuple[int, bytes, int, int]]:
    """`solve` (limit 2) on every row of ``puzzles``, in worker processes when there are many."""
    size = math.isqrt(puzzles.shape[1]) if puzzles.ndim == 2 else 0
    jobs = [(row.tobytes(), size) for row in puzzles]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="puzzle", disable=not progress or not jobs, leave=False)
    try:
        if workers <= 1 or len(jobs) < 256:
            out = []
            for job in jobs:
                out.append(_solve_worker(job))
                bar.update()
            return out
        import multiprocessing

        # fork: no re-import of the caller's __main__ (spawn would re-run an unguarded script); the
        # workers only run the pure-Python solver, so forking after numpy/torch import is safe here.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with context.Pool(workers) as pool:
            out = []
            for item in pool.imap(_solve_worker, jobs, chunksize=64):
                out.append(item)
                bar.update()
            return out
    finally:
        bar.close()


def _rating_from(guesses: int, hidden: int) -> str:
    return rate(SolveStats(guesses=guesses, hidden_singles=hidden))


def read_text(
    path: str | os.PathLike[str],
    text: str | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> SudokuCollection:
    """One puzzle per line (``.`` or ``0`` for blanks; ``#`` comments and blank lines ignored), sizes 4, 6
    or 9 from the length; each is solved, and must have exactly one solution."""
    name = str(path)
    if text is None:
        text = _read(path)
    size: int | None = None
    size_line = 0
    rows: list[np.ndarray] = []
    lines: list[int] = []
    skipped = 0

    def bad(lineno: int, problem: str) -> None:
        nonlocal skipped
        if not skip_invalid:
            raise DataError(f"{name}, line {lineno}: {problem}")
        skipped += 1

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        n = {16: 4, 36: 6, 81: 9}.get(len(line))
        if n is None:
            bad(lineno, f"expected 16, 36 or 81 cells (a 4x4, 6x6 or 9x9 sudoku), got {len(line)} characters")
            continue
        allowed = ".0" + "".join(str(d) for d in range(1, n + 1))
        wrong = next((ch for ch in line if ch not in allowed), None)
        if wrong is not None:
            bad(
                lineno,
                f"character {wrong!r} is not allowed in a {n}x{n} sudoku "
                f"(use 1-{n}, and '.' or '0' for blanks)",
            )
            continue
        if size is None:
            size, size_line = n, lineno
        elif n != size:
            bad(lineno, f"a {n}x{n} sudoku, but line {size_line} started a file of {size}x{size} sudokus")
            continue
        cells = np.frombuffer(line.replace(".", "0").encode(), dtype=np.uint8) - ord("0")
        conflict = find_conflict(cells, n)
        if conflict:
            bad(lineno, f"contradictory givens: {conflict}")
            continue
        rows.append(cells)
        lines.append(lineno)
    if size is None:
        return _empty_collection(9, "text", name, skipped)
    puzzles = np.stack(rows) if rows else np.zeros((0, size * size), np.uint8)
    results = solve_many(puzzles, workers=workers, progress=progress, desc=f"solving {Path(name).name}")
    keep, solutions, ratings = [], [], []
    for k, (count, sol, guesses, hidden) in enumerate(results):
        if count != 1:
            bad(
                lines[k],
                "the puzzle has no solution" if count == 0 else "the puzzle has more than one solution",
            )
            continue
        keep.append(k)
        solutions.append(np.frombuffer(sol, dtype=np.uint8))
        ratings.append(_rating_from(guesses, hidden))
    keep_idx = np.array(keep, dtype=np.int64)
    return SudokuCollection(
        puzzles=puzzles[keep_idx] if len(keep) else np.zeros((0, size * size), np.uint8),
        solutions=np.stack(solutions) if solutions else np.zeros((0, size * size), np.uint8),
        ratings=ratings,
        lines=np.array(lines, dtype=np.int64)[keep_idx] if len(keep) else np.zeros(0, np.int64),
        size=size,
        kind="text",
        skipped=skipped,
        source=name,
    )


def read_csv(
    path: str | os.PathLike[str], text: str | None = None, skip_invalid: bool = False
) -> SudokuCollection:
    """The published Sudoku-Extreme CSV (``source,question,answer,rating``; 9x9, ``.`` for blanks).

    Answers are checked (a valid grid agreeing with the question's givens) with vectorised numpy; the
    puzzles are not re-solved, as there are millions and their uniqueness is part of how they were made.
    """
    name = str(path)
    if text is None:
        text = _read(path)
    reader = csv.reader(io.StringIO(text))
    skipped = 0

    def bad(lineno: int, problem: str) -> None:
        nonlocal skipped
        if not skip_invalid:
            raise DataError(f"{name}, line {lineno}: {problem}")
        skipped += 1

    header = next(reader, None)
    if header is None or [h.strip() for h in header] != CSV_HEADER:
        raise DataError(
            f"{name}, line 1: expected the header {','.join(CSV_HEADER)!r}, got {','.join(header or [])!r}"
        )
    questions: list[str] = []
    answers: list[str] = []
    ratings: list[int] = []
    lines: list[int] = []
    for row in reader:
        lineno = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 4:
            bad(lineno, f"expected 4 fields (source,question,answer,rating), got {len(row)}")
            continue
        _, q, a, r = row
        if len(q) != 81 or len(a) != 81:
            bad(lineno, f"question and answer must have 81 cells, got {len(q)} and {len(a)}")
            continue
        try:
            rating = int(r)
        except ValueError:
            bad(lineno, f"rating {r!r} is not an integer")
            continue
        questions.append(q)
        answers.append(a)
        ratings.append(rating)
        lines.append(lineno)
    if not questions:
        return _empty_collection(9, "csv", name, skipped)
    q_arr = np.frombuffer("".join(questions).encode("ascii", "replace"), dtype=np.uint8).reshape(-1, 81)
    a_arr = np.frombuffer("".join(answers).encode("ascii", "replace"), dtype=np.uint8).reshape(-1, 81)
    q_ok = np.all((q_arr == ord(".")) | ((q_arr >= ord("0")) & (q_arr <= ord("9"))), axis=1)
    a_ok = np.all((a_arr >= ord("1")) & (a_arr <= ord("9")), axis=1)
    puzzles = np.where(q_arr == ord("."), 0, q_arr.astype(np.int16) - ord("0")).clip(0, 9).astype(np.uint8)
    solutions = (a_arr.astype(np.int16) - ord("0")).clip(0, 9).astype(np.uint8)
    agrees = np.all((puzzles == 0) | (puzzles == solutions), axis=1)
    valid = _valid_grids(solutions, 9)
    good = q_ok & a_ok & agrees & valid
    for k in np.flatnonzero(~good):
        if not q_ok[k]:
            problem = "the question has characters other than '.' and 0-9"
        elif not a_ok[k]:
            problem = "the answer has characters other than 1-9"
        elif not valid[k]:
            problem = "the answer is not a valid sudoku solution"
        else:
            problem = "the answer does not match the question's givens"
        bad(lines[k], problem)
    keep = np.flatnonzero(good)
    return SudokuCollection(
        puzzles=puzzles[keep],
        solutions=solutions[keep],
        ratings=np.array(ratings, dtype=np.int64)[keep],
        lines=np.array(lines, dtype=np.int64)[keep],
        size=9,
        kind="csv",
        skipped=skipped,
        source=name,
    )


def _read(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file") from None


def read_sudoku_file(
    path: str | os.PathLike[str],
    skip_invalid: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> SudokuCollection:
    """A text file of puzzles or a Sudoku-Extreme CSV, told apart by content: the CSV starts with its
    header, and a first line with commas is taken for a CSV (so a wrong header is reported as such)."""
    text = _read(path)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if "," in first:
        return read_csv(path, text=text, skip_invalid=skip_invalid)
    return read_text(path, text=text, skip_invalid=skip_invalid, progress=progress, workers=workers)


def download_sudoku_extreme(split: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch ``train.csv`` or ``test.csv`` of the published set through huggingface_hub (network)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DataError(
            "--download needs the huggingface_hub package; install it with 'pip install huggingface_hub' "
            "or download the CSVs yourself and pass --from/--test-from"
        ) from None
    try:
        return Path(hf_hub_download(HF_REPO, f"{split}.csv", repo_type="dataset", cache_dir=cache_dir))
    except Exception as exc:  # network and hub errors come in many types; report them in one line
        raise DataError(f"could not download {split}.csv of {HF_REPO}: {type(exc).__name__}: {exc}") from None


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
        return _empty_collection(size, "generated", f"generated {size}x{size} {difficulty}")
    return SudokuCollection(
        puzzles=np.stack([s.puzzle for s in items]),
        solutions=np.stack([s.solution for s in items]),
        ratings=[s.difficulty for s in items],
        lines=np.arange(count, dtype=np.int64),
        size=size,
        kind="generated",
        source=f"generated {size}x{size} {difficulty}",
    )


# --------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------


@dataclass
class SudokuAugmentations:
    """K validity-preserving transforms of an n x n sudoku, one per row of each array.

    Applied to a grid x (n x n): optionally transpose (square boxes only), then take rows ``row_perm``
    and columns ``col_perm`` (band/row-in-band and stack/column-in-stack permutations), then relabel
    digits by ``digit_map`` (index 0, the blank, maps to 0), as the reference's shuffle_sudoku.
    """

    digit_map: np.ndarray  # [K, n+1]
    row_perm: np.ndarray  # [K, n]
    col_perm: np.ndarray  # [K, n]
    transpose: np.ndarray  # [K] bool

    def __len__(self) -> int:
        return int(self.transpose.shape[0])

    @property
    def size(self) -> int:
        return int(self.row_perm.shape[1])

    def __getitem__(self, index: slice | np.ndarray) -> SudokuAugmentations:
        return SudokuAugmentations(
            self.digit_map[index], self.row_perm[index], self.col_perm[index], self.transpose[index]
        )

    def source_index(self) -> np.ndarray:
        """[K, n*n]: the flat source cell of each output cell."""
        n = self.size
        i = np.repeat(np.arange(n), n)
        j = np.tile(np.arange(n), n)
        r = self.row_perm[:, i].astype(np.int32)
        c = self.col_perm[:, j].astype(np.int32)
        return np.where(self.transpose[:, None], c * n + r, r * n + c)


def _random_perms(rng: np.random.Generator, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Random permutations of range(k) along a last axis of length k, vectorised."""
    return np.argsort(rng.random((*shape, k)), axis=-1).astype(np.uint8)


def random_augmentations(size: int, count: int, rng: np.random.Generator) -> SudokuAugmentations:
    """``count`` random transforms from the sudoku symmetry group of this size."""
    br, bc = box_shape(size)
    digits = _random_perms(rng, (count,), size) + 1
    digit_map = np.concatenate([np.zeros((count, 1), np.uint8), digits], axis=1)
    bands = _random_perms(rng, (count,), size // br)
    rows_in_band = _random_perms(rng, (count, size // br), br)
    row_perm = (bands[:, :, None] * br + rows_in_band).reshape(count, size)
    stacks = _random_perms(rng, (count,), size // bc)
    cols_in_stack = _random_perms(rng, (count, size // bc), bc)
    col_perm = (stacks[:, :, None] * bc + cols_in_stack).reshape(count, size)
    if br == bc:
        transpose = rng.random(count) < 0.5
    else:
        transpose = np.zeros(count, dtype=bool)  # transposing a 2x3-box sudoku gives 3x2 boxes
    return SudokuAugmentations(digit_map, row_perm.astype(np.uint8), col_perm.astype(np.uint8), transpose)


def apply_augmentations(grids: np.ndarray, augs: SudokuAugmentations) -> np.ndarray:
    """Grid k transformed by augmentation k: [K, n*n] -> [K, n*n]. A single grid [n*n] is broadcast."""
    grids = np.asarray(grids)
    if grids.ndim == 1:
        grids = np.broadcast_to(grids, (len(augs), grids.size))
    moved = np.take_along_axis(grids, augs.source_index(), axis=1)
    return np.take_along_axis(augs.digit_map, moved.astype(np.intp), axis=1).astype(grids.dtype)


def invert_augmentations(grids: np.ndarray, augs: SudokuAugmentations) -> np.ndarray:
    """The inverse of `apply_augmentations`: restores the grids the augmentations were applied to."""
    grids = np.asarray(grids)
    inverse_digits = np.argsort(augs.digit_map, axis=1)
    relabelled = np.take_along_axis(inverse_digits, grids.astype(np.intp), axis=1)
    out = np.empty_like(relabelled)
    np.put_along_axis(out, augs.source_index(), relabelled, axis=1)
    return out.astype(grids.dtype)


def augment_tokens(
    puzzles: np.ndarray,
    solutions: np.ndarray,
    num_aug: int,
    rng: np.random.Generator,
    progress: bool = False,
    chunk: int = 1 << 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Token arrays (+1 encoding) of every puzzle followed by its ``num_aug`` augmentations, as the
    reference orders them: [N*(1+num_aug), n*n] uint8 inputs and labels. Vectorised in chunks."""
    from tqdm import tqdm

    n_puzzles, cells = puzzles.shape
    size = math.isqrt(cells)
    per = 1 + num_aug
    inputs = np.empty((n_puzzles * per, cells), dtype=np.uint8)
    labels = np.empty_like(inputs)
    inputs[::per] = puzzles + 1
    labels[::per] = solutions + 1
    total = n_puzzles * num_aug
    if total == 0:
        return inputs, labels
    augs = random_augmentations(size, total, rng)
    # Augmentation t belongs to puzzle t // num_aug and lands in row (t // num_aug) * per + 1 + t % num_aug.
    source = np.arange(total) // num_aug
    dest = source * per + 1 + np.arange(total) % num_aug
    token_maps = augs.digit_map + 1  # digit relabelling and the +1 token shift in one lookup
    with tqdm(
        total=total, desc="augmenting", unit="ex", unit_scale=True, disable=not progress, leave=False
    ) as bar:
        for lo in range(0, total, chunk):
            hi = min(total, lo + chunk)
            part = augs[lo:hi]
            src = part.source_index()
            rows = source[lo:hi, None]
            for base, out in ((puzzles, inputs), (solutions, labels)):
                moved = base[rows, src]
                out[dest[lo:hi]] = np.take_along_axis(token_maps[lo:hi], moved.astype(np.intp), axis=1)
            bar.update(hi - lo)
    return inputs, labels


# --------------------------------------------------------------------------------------------------
# Dataset building
# --------------------------------------------------------------------------------------------------


def sudoku_metadata(size: int, num_examples: int, num_groups: int) -> Any:
    from hrm.data.format import DatasetMetadata

    return DatasetMetadata(
        pad_id=PAD_ID,
        ignore_label_id=0,
        blank_identifier_id=0,
        vocab_size=VOCAB_SIZE[size],
        seq_len=size * size,
        num_puzzle_identifiers=1,
        total_groups=num_groups,
        mean_puzzle_examples=1,
        sets=["all"],
    )


def sudoku_puzzle_set(
    collection: SudokuCollection, num_aug: int, rng: np.random.Generator, progress: bool = False
) -> Any:
    """The reference layout: one group per source puzzle holding it and its augmentations, each a
    puzzle of one example."""
    from hrm.data.format import PuzzleSetArrays

    inputs, labels = augment_tokens(collection.puzzles, collection.solutions, num_aug, rng, progress=progress)
    m = inputs.shape[0]
    return PuzzleSetArrays(
        inputs=inputs,
        labels=labels,
        puzzle_identifiers=np.zeros(m, dtype=np.int32),
        puzzle_indices=np.arange(m + 1, dtype=np.int32),
        group_indices=np.arange(0, m + 1, 1 + num_aug, dtype=np.int32),
    )


def _filter_min_difficulty(
    collection: SudokuCollection, min_difficulty: str | int | None
) -> SudokuCollection:
    if min_difficulty is None:
        return collection
    if collection.kind == "csv":
        try:
            threshold = int(min_difficulty)
        except ValueError:
            raise DataError(
                f"--min-difficulty for a published CSV is its integer rating, got {min_difficulty!r}"
            ) from None
        keep = np.flatnonzero(np.asarray(collection.ratings) >= threshold)
    else:
        level = difficulty_rank(str(min_difficulty))
        keep = np.array(
            [i for i, r in enumerate(collection.ratings) if difficulty_rank(r) >= level], dtype=np.int64
        )
    return collection.take(keep)


def _subsample(collection: SudokuCollection, n: int | None, rng: np.random.Generator) -> SudokuCollection:
    if n is None or n >= len(collection):
        return collection
    if n < 0:
        raise DataError(f"--subsample must be positive, got {n}")
    return collection.take(np.sort(rng.choice(len(collection), n, replace=False)))


def build_sudoku_splits(
    *,
    source: str | os.PathLike[str] | None = None,
    test_source: str | os.PathLike[str] | None = None,
    download: bool = False,
    count: int | None = None,
    size: int = 9,
    difficulty: str = "medium",
    min_clues: int = 0,
    test_count: int | None = None,
    num_aug: int = 0,
    subsample: int | None = None,
    min_difficulty: str | int | None = None,
    seed: int = 0,
    skip_invalid: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> tuple[SudokuCollection, SudokuCollection]:
    """The train and test puzzles (before augmentation), from a file, the download or the generator.

    Sources: ``download`` (published train.csv/test.csv), ``source`` (a file; the test split is
    ``test_source``, else ``test_count`` puzzles held out from it, by default 10%), or generation of
    ``count`` puzzles (and ``test_count``, default count // 10). ``min_difficulty`` filters first, then
    the test split is taken, then ``subsample`` picks training puzzles. All randomness comes from ``seed``.
    """
    if num_aug < 0:
        raise DataError(f"--num-aug must be zero or positive, got {num_aug}")
    if sum(x is not None and x is not False for x in (source, count)) + bool(download) != 1:
        raise DataError("give exactly one puzzle source: --from FILE, --download, or --count N (generate)")
    if download and (test_source is not None or test_count is not None):
        raise DataError("--download brings its own test split; --test-from and --test-count do not apply")
    gen_ss, test_ss, hold_ss, sub_ss = np.random.SeedSequence(seed).spawn(4)

    def read(path: str | os.PathLike[str]) -> SudokuCollection:
        return read_sudoku_file(path, skip_invalid=skip_invalid, progress=progress, workers=workers)

    if download:
        train = _filter_min_difficulty(read(download_sudoku_extreme("train")), min_difficulty)
        test = _filter_min_difficulty(read(download_sudoku_extreme("test")), min_difficulty)
    elif source is not None:
        train = _filter_min_difficulty(read(source), min_difficulty)
        if test_source is not None:
            if test_count is not None:
                raise DataError("give --test-from or --test-count, not both")
            test = _filter_min_difficulty(read(test_source), min_difficulty)
        else:
            held = len(train) // 10 if test_count is None else test_count
            if held < 0:
                raise DataError(f"--test-count must be zero or positive, got {held}")
            if held > 0 and held >= len(train):
                raise DataError(
                    f"--test-count {held} leaves no training puzzles: "
                    f"{source} has {len(train)} usable puzzles"
                )
            perm = np.random.default_rng(hold_ss).permutation(len(train))
            test = train.take(np.sort(perm[:held]))
            train = train.take(np.sort(perm[held:]))
    else:
        assert count is not None
        if count < 1:
            raise DataError(f"--count must be at least 1, got {count}")
        if test_source is not None:
            test = _filter_min_difficulty(read(test_source), min_difficulty)
        else:
            n_test = max(1, count // 10) if test_count is None else test_count
            if n_test < 0:
                raise DataError(f"--test-count must be zero or positive, got {n_test}")
            test = generate_collection(
                n_test, size, difficulty, np.random.default_rng(test_ss), progress, "test", min_clues
            )
        train = generate_collection(
            count, size, difficulty, np.random.default_rng(gen_ss), progress, "train", min_clues
        )
        train = _filter_min_difficulty(train, min_difficulty)
    train = _subsample(train, subsample, np.random.default_rng(sub_ss))
    if len(test) and len(train) and test.size != train.size:
        raise DataError(
            f"the test puzzles are {test.size}x{test.size} but the training puzzles {train.size}x{train.size}"
        )
    if len(train) == 0:
        raise DataError("no training puzzles left (after filtering and skipping invalid ones)")
    if len(test) == 0 and test.size != train.size:
        test = _empty_collection(train.size, test.kind, test.source, test.skipped)
    return train, test


def build_sudoku_dataset(
    out_dir: str | os.PathLike[str],
    *,
    num_aug: int = 0,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    **sources: Any,
) -> Any:
    """Build a sudoku dataset directory (train augmented ``num_aug`` times, test never) and return the
    `DatasetSummary`. ``sources`` are the keyword arguments of `build_sudoku_splits`.

    Example: ``build_sudoku_dataset("data/sudoku-gen", count=100, difficulty="hard", num_aug=10)``.
    """
    from hrm.data.format import write_dataset

    train, test = build_sudoku_splits(num_aug=num_aug, seed=seed, progress=progress, **sources)
    aug_ss = np.random.SeedSequence(seed).spawn(5)[4]
    train_set = sudoku_puzzle_set(train, num_aug, np.random.default_rng(aug_ss), progress=progress)
    test_set = sudoku_puzzle_set(test, 0, np.random.default_rng(0))
    size = train.size
    summary = write_dataset(
        out_dir,
        {"train": {"all": train_set}, "test": {"all": test_set}},
        {
            "train": sudoku_metadata(size, train_set.num_examples, train_set.num_groups),
            "test": sudoku_metadata(size, test_set.num_examples, test_set.num_groups),
        },
        ["<blank>"],
        overwrite=overwrite,
    )
    skipped = train.skipped + (test.skipped if test.source != train.source else 0)
    summary.notes.append(
        f"{size}x{size} sudokus from {train.source}; {num_aug} augmentations per training puzzle"
    )
    if skipped:
        summary.notes.append(f"skipped {skipped} invalid entries")
    return summary


def format_grid(cells: np.ndarray | Sequence[int]) -> str:
    """A grid as one line, '.' for blanks (the text-file format)."""
    return "".join("." if int(v) == 0 else str(int(v)) for v in np.asarray(cells).reshape(-1))


def parse_grid(line: str) -> np.ndarray:
    """The inverse of `format_grid` (no validation beyond the alphabet)."""
    cells = line.strip().replace(".", "0")
    if not cells.isdigit():
        raise DataError(f"not a sudoku line: {line!r}")
    return np.frombuffer(cells.encode(), dtype=np.uint8) - ord("0")


__all__ = [
    "DIFFICULTIES",
    "EXTREME_MIN_GUESSES",
    "SolveResult",
    "SolveStats",
    "Sudoku",
    "SudokuAugmentations",
    "SudokuCollection",
    "apply_augmentations",
    "augment_tokens",
    "box_shape",
    "build_sudoku_dataset",
    "build_sudoku_splits",
    "download_sudoku_extreme",
    "find_conflict",
    "format_grid",
    "generate_collection",
    "generate_sudoku",
    "invert_augmentations",
    "is_valid_solution",
    "parse_grid",
    "random_augmentations",
    "random_full_grid",
    "rate",
    "read_csv",
    "read_sudoku_file",
    "read_text",
    "solve",
    "solve_many",
    "sudoku_metadata",
    "sudoku_puzzle_set",
]
