"""The classical exact sudoku solver: constraint propagation and search, conflict finding, validity
checks, box shapes and the difficulty rating.

Grids are flat ``uint8`` arrays of length n*n with 0 for a blank and 1..n for a digit.

The solver works on bitmasks: constraint propagation by naked singles (a cell with one candidate) and
hidden singles (a digit with one place in a unit), then search on the cell with fewest candidates. It
counts solutions up to a limit, so with ``limit=2`` it proves uniqueness by walking the whole search
tree; the size of that tree is what the difficulty rating measures, so the rating does not depend on
luck in the order branches are tried.

The search is bounded: after ``max_nodes`` search steps (nodes of the search tree, one propagation
each) it gives up with `SolverGaveUp`. Some puzzles with few givens have search trees of millions of
nodes for this solver (minutes); every real 17-clue puzzle settles in a few thousand.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

import numpy as np

from hrm.errors import DataError, a_grid

SIZES = (4, 6, 9)
BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
DIFFICULTIES = ("easy", "medium", "hard", "extreme")

# Difficulty thresholds, on the full search tree walked when proving uniqueness (see `rate_difficulty`):
#   easy     naked singles alone solve it (no hidden singles, no guessing);
#   medium   hidden singles are needed, still no guessing;
#   hard     1 .. EXTREME_MIN_GUESSES-1 guesses;
#   extreme  at least EXTREME_MIN_GUESSES guesses: substantial trial and error, as in the published
#            Sudoku-Extreme set (its puzzles were selected for needing backtracking).
EXTREME_MIN_GUESSES = 16

# Search steps a solve may take before it gives up. The hardest of the 49,158 known 17-clue puzzles
# (shared/data/sudoku/17_clue.txt) takes 4,093 to prove its solution unique; this leaves more than ten
# times that, and stops a hopeless search after about a second (roughly 40 microseconds a step).
DEFAULT_MAX_NODES = 50_000


def box_shape(size: int) -> tuple[int, int]:
    """(rows, cols) of a box for an n x n sudoku."""
    try:
        return BOX_SHAPES[size]
    except KeyError:
        raise DataError(f"unsupported sudoku size {size}; supported sizes are 4, 6 and 9") from None


def format_grid(cells: np.ndarray | Sequence[int]) -> str:
    """A grid as one line, '.' for blanks (the text-file format)."""
    return "".join("." if int(v) == 0 else str(int(v)) for v in np.asarray(cells).reshape(-1))


def parse_grid(line: str) -> np.ndarray:
    """The inverse of `format_grid` (no validation beyond the alphabet)."""
    cells = line.strip().replace(".", "0")
    if not cells.isdigit():
        raise DataError(f"not a sudoku line: {line!r}")
    return np.frombuffer(cells.encode(), dtype=np.uint8) - ord("0")


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
    """Search effort. ``nodes``: search steps (states propagated); ``guesses``: digits tried at
    branching cells; ``backtracks``: dead ends met; ``hidden_singles``: placements that needed the
    hidden-single rule."""

    guesses: int = 0
    backtracks: int = 0
    naked_singles: int = 0
    hidden_singles: int = 0
    nodes: int = 0


def gave_up_reason(nodes: int) -> str:
    """Why a puzzle is left unsettled, for error messages that name the puzzle."""
    return f"the exact solver gives up after {nodes:,} search steps: too few givens to settle"


class SolverGaveUp(DataError):
    """The exact solver reached its search-step budget before it could count the solutions."""

    def __init__(self, grid: Sequence[int], nodes: int) -> None:
        super().__init__(f"sudoku {format_grid(grid)}: {gave_up_reason(nodes)}")
        self.nodes = nodes


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


def _propagate(
    grid: list[int], rows: list[int], cols: list[int], boxes: list[int], geo: _Geometry, stats: SolveStats
) -> tuple[int, int] | None:
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


def solve_exact(
    grid: np.ndarray | Sequence[int],
    limit: int = 2,
    size: int | None = None,
    rng: np.random.Generator | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
) -> SolveResult:
    """Solve a sudoku given as n*n cells (0 = blank), counting up to ``limit`` solutions.

    Contradictory givens give zero solutions. ``limit=2`` is the uniqueness check. With ``rng`` the
    digits at a branching cell are tried in random order (used to draw random full grids). Raises
    `SolverGaveUp` when the count is not settled within ``max_nodes`` search steps (None: no bound).
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
            raise DataError(f"cell value {v} is out of range for {a_grid(n)} sudoku")
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
        if max_nodes is not None and stats.nodes >= max_nodes:
            raise SolverGaveUp(cells, stats.nodes)
        stats.nodes += 1
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


def rate_difficulty(stats: SolveStats) -> str:
    """Difficulty level from the effort of a full (``limit=2``) solve; thresholds at EXTREME_MIN_GUESSES."""
    if stats.guesses >= EXTREME_MIN_GUESSES:
        return "extreme"
    if stats.guesses > 0:
        return "hard"
    if stats.hidden_singles > 0:
        return "medium"
    return "easy"


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
    return bool(valid_grids(s[None, :], n)[0])


def valid_grids(grids: np.ndarray, n: int) -> np.ndarray:
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


class ExactOutcome(NamedTuple):
    """What `solve_exact_many` reports per puzzle: the solution count up to 2 (0 when the solver gave
    up), the first solution's cells (empty when none), the effort (the rating's inputs and the search
    steps taken), and whether the search-step budget ran out first."""

    num_solutions: int
    solution: bytes
    guesses: int
    hidden_singles: int
    nodes: int
    gave_up: bool = False


def _solve_worker(job: tuple[bytes, int, int | None]) -> ExactOutcome:
    cells, size, max_nodes = job
    try:
        result = solve_exact(np.frombuffer(cells, dtype=np.uint8), limit=2, size=size, max_nodes=max_nodes)
    except SolverGaveUp as exc:
        return ExactOutcome(0, b"", 0, 0, exc.nodes, gave_up=True)
    sol = result.solution.tobytes() if result.solution is not None else b""
    stats = result.stats
    return ExactOutcome(result.num_solutions, sol, stats.guesses, stats.hidden_singles, stats.nodes)


def solve_exact_many(
    puzzles: np.ndarray,
    workers: int | None = None,
    progress: bool = False,
    desc: str = "solving",
    max_nodes: int | None = DEFAULT_MAX_NODES,
) -> list[ExactOutcome]:
    """`solve_exact` (limit 2) on every row of ``puzzles``, in worker processes when there are many.
    A puzzle the solver gives up on is reported (``gave_up``), not raised."""
    size = math.isqrt(puzzles.shape[1]) if puzzles.ndim == 2 else 0
    jobs = [(row.tobytes(), size, max_nodes) for row in puzzles]
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
