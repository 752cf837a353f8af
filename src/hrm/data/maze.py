"""Maze datasets: find the shortest path from S to G in an N x N grid.

Two ways in:

* generate: random mazes carved by a randomised depth-first search (a "recursive backtracker",
  which makes long winding corridors), with an optional fraction of extra walls knocked down so
  that paths are not always unique, S and G placed on open cells, and a hardness filter on the
  shortest-path length;
* import: the published CSV files (``source,question,answer,rating``; ``question`` and
  ``answer`` are ``N*N``-character strings over the charset), checked cell by cell.

Encoding (as the reference builder): PAD 0, then the charset ``"# SGo"`` as 1..5 — ``#`` wall,
space open, ``S`` start, ``G`` goal, ``o`` path — so the vocabulary has 6 tokens and a sequence is
the ``N*N`` grid read row by row. The input holds walls, open cells, S and G; the label is the same
grid with the cells of one shortest S->G path (S and G excluded) marked ``o``.

Path length here means the number of moves from S to G (so a path has ``length - 1`` ``o`` cells).

Layout written by :func:`build_maze_dataset`: splits ``train`` and ``test``, one set ``all``; one
group per maze whose puzzles are the maze and, with ``aug``, its other seven dihedral images
(training split only); one example per puzzle; every puzzle has identifier 0 (``identifiers.json``
is ``["<blank>"]``).

The dataset format (pydantic) is imported by the functions that assemble and write a dataset, not
at module load: ``hrm data`` reads this module's defaults when it starts.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrm.data.augment import NUM_DIHEDRAL, dihedral_transform
from hrm.data.build import (
    BLANK_IDENTIFIER,
    CSV_HEADER,
    SET_NAME,
    BuildResult,
    check_build_size,
    dataset_metadata,
)
from hrm.errors import DataError, a_grid

if TYPE_CHECKING:  # pragma: no cover
    from hrm.data.format import DatasetMetadata, PuzzleSetArrays

CHARSET = "# SGo"  # tokens 1..5 (0 is PAD, hrm.data.build.PAD_ID)
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
# The four moves, up, down, left, right: the order in which a walk along a shortest path breaks ties.
STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
VOCAB_SIZE = len(CHARSET) + 1
MIN_SIZE = 5
DEFAULT_SIZE = 30
DEFAULT_COUNT = 1000
DEFAULT_TEST_COUNT = 1000  # generated test mazes; none are held out of a single CSV file by default
DEFAULT_LOOP_FRACTION = 0.05
# Published "30x30 hard" kept mazes whose shortest path is longer than 110.
PUBLISHED_HARD_MIN_PATH_LENGTH = 111
PUBLISHED_HARD_SIZE = 30

_CHAR_TO_ID = np.zeros(256, dtype=np.uint8)  # 0 marks a byte outside the charset
_CHAR_TO_ID[np.frombuffer(CHARSET.encode(), dtype=np.uint8)] = np.arange(1, len(CHARSET) + 1)
_ID_TO_CHAR = np.frombuffer(("?" + CHARSET).encode(), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode_maze(text: str, size: int | None = None) -> np.ndarray:
    """Turn an ``N*N`` string over ``"# SGo"`` into an ``[N, N]`` uint8 grid of token ids.

    Raises ValueError on a length that is not a square (or not ``size*size``) or a character
    outside the charset."""
    raw = text.encode("ascii", errors="replace")
    if size is None:
        size = math.isqrt(len(raw))
    if size * size != len(raw) or size == 0:
        raise ValueError(f"has {len(raw)} characters, expected {size}x{size}={size * size}")
    ids = _CHAR_TO_ID[np.frombuffer(raw, dtype=np.uint8)]
    if not ids.all():
        bad = sorted({text[i] for i in np.flatnonzero(ids == 0)})
        raise ValueError(f"has characters outside the charset {CHARSET!r}: {''.join(bad)!r}")
    return ids.reshape(size, size)


def decode_maze(grid: np.ndarray) -> str:
    """Inverse of :func:`encode_maze`: the grid read row by row as one string (PAD shows as '?')."""
    ids = np.asarray(grid, dtype=np.uint8).reshape(-1)
    if ids.size and int(ids.max()) > len(CHARSET):
        raise ValueError(f"token id {int(ids.max())} is outside the maze vocabulary (0..{len(CHARSET)})")
    return _ID_TO_CHAR[ids].tobytes().decode("ascii")


def render_maze(grid: np.ndarray) -> str:
    """The grid as N lines of N characters, for printing."""
    arr = np.asarray(grid)
    text = decode_maze(arr)
    n = arr.shape[-1]
    return "\n".join(text[i : i + n] for i in range(0, len(text), n))


# --------------------------------------------------------------------------------------------
# Solving
# --------------------------------------------------------------------------------------------


def _find_one(grid: np.ndarray, token: int) -> tuple[int, int] | None:
    hits = np.argwhere(grid == token)
    return (int(hits[0][0]), int(hits[0][1])) if len(hits) == 1 else None


def bfs_distances(passable: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Moves from ``source`` to every cell over 4-neighbour steps on ``passable`` cells (-1: unreachable)."""
    h, w = passable.shape
    flat_ok = passable.reshape(-1).tolist()
    dist = [-1] * (h * w)
    start = source[0] * w + source[1]
    dist[start] = 0
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        r, c = divmod(cur, w)
        nd = dist[cur] + 1
        if r > 0 and flat_ok[cur - w] and dist[cur - w] < 0:
            dist[cur - w] = nd
            queue.append(cur - w)
        if r < h - 1 and flat_ok[cur + w] and dist[cur + w] < 0:
            dist[cur + w] = nd
            queue.append(cur + w)
        if c > 0 and flat_ok[cur - 1] and dist[cur - 1] < 0:
            dist[cur - 1] = nd
            queue.append(cur - 1)
        if c < w - 1 and flat_ok[cur + 1] and dist[cur + 1] < 0:
            dist[cur + 1] = nd
            queue.append(cur + 1)
    return np.array(dist, dtype=np.int32).reshape(h, w)


def _start_and_goal(grid: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    s, g = _find_one(grid, START), _find_one(grid, GOAL)
    if s is None or g is None:
        raise ValueError("needs exactly one S and one G")
    return s, g


def shortest_path(grid: np.ndarray) -> list[tuple[int, int]] | None:
    """One shortest S->G path (a list of cells from S to G inclusive) in an encoded maze, or None
    when G is unreachable. Among several shortest paths the choice is deterministic: from each
    cell the walk steps up, down, left, right — the first that gets closer to G."""
    grid = np.asarray(grid)
    s, g = _start_and_goal(grid)
    dist = bfs_distances(grid != WALL, g)
    if dist[s] < 0:
        return None
    h, w = grid.shape
    path = [s]
    r, c = s
    while (r, c) != g:
        want = dist[r, c] - 1
        for dr, dc in STEPS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and dist[nr, nc] == want:
                r, c = nr, nc
                break
        path.append((r, c))
    return path


def count_shortest_paths(grid: np.ndarray) -> int:
    """How many shortest S->G paths an encoded maze has (0 when G is unreachable)."""
    grid = np.asarray(grid)
    s, g = _start_and_goal(grid)
    dist = bfs_distances(grid != WALL, s)
    if dist[g] < 0:
        return 0
    h, w = grid.shape
    ways = np.zeros((h, w), dtype=object)  # Python ints: the count can outgrow int64 in open 30x30 grids
    ways[s] = 1
    for k in range(1, int(dist[g]) + 1):
        for r, c in np.argwhere(dist == k):
            ways[r, c] = sum(
                ways[r + dr, c + dc]
                for dr, dc in STEPS
                if 0 <= r + dr < h and 0 <= c + dc < w and dist[r + dr, c + dc] == k - 1
            )
    return int(ways[g])


def solve_maze(grid: np.ndarray) -> np.ndarray:
    """The label for an input maze: the grid with one shortest S->G path marked ``o``."""
    path = shortest_path(grid)
    if path is None:
        raise ValueError("G cannot be reached from S")
    label = np.array(grid, dtype=np.uint8, copy=True)
    label[label == PATH] = OPEN
    for r, c in path[1:-1]:
        label[r, c] = PATH
    return label


def check_maze_pair(question: np.ndarray, answer: np.ndarray) -> str | None:
    """Why ``answer`` is not a correct label for ``question`` (both encoded), or None if it is."""
    q, a = np.asarray(question), np.asarray(answer)
    if q.shape != a.shape:
        return f"question is {q.shape} but answer is {a.shape}"
    if (q == PATH).any():
        return "question already contains path cells 'o'"
    for token, name in ((START, "S"), (GOAL, "G")):
        count = int((q == token).sum())
        if count != 1:
            return f"question has {count} '{name}' cells, expected exactly one"
    changed = q != a
    if changed.any() and not ((q[changed] == OPEN) & (a[changed] == PATH)).all():
        return "answer differs from question outside open cells turned into path 'o'"
    s, g = _find_one(q, START), _find_one(q, GOAL)
    assert s is not None and g is not None
    best = bfs_distances(q != WALL, s)[g]
    if best < 0:
        return "G cannot be reached from S"
    on_path = (a == PATH) | (a == START) | (a == GOAL)
    along = bfs_distances(on_path, s)[g]
    n_path = int((a == PATH).sum())
    if along < 0:
        return "the 'o' cells do not connect S to G"
    if along != best or n_path != best - 1:
        return f"the marked path has {n_path + 1} moves but the shortest path has {best}"
    return None


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def carve_maze(size: int, rnd: random.Random, loop_fraction: float = DEFAULT_LOOP_FRACTION) -> np.ndarray:
    """An ``[size, size]`` grid of WALL/OPEN: a randomised-DFS spanning tree over the cells at one
    parity of coordinates, with ``loop_fraction`` of the remaining inner walls between two cells
    knocked down. For even sizes the spare wall row/column falls on a random side."""
    grid = np.full((size, size), WALL, dtype=np.uint8)
    # Cells sit at offset + 2*k; for even sizes one border row/column is left over.
    off_r = rnd.randrange(2) if size % 2 == 0 else 0
    off_c = rnd.randrange(2) if size % 2 == 0 else 0
    rows = (size - off_r + 1) // 2
    cols = (size - off_c + 1) // 2
    visited = [[False] * cols for _ in range(rows)]
    start = (rnd.randrange(rows), rnd.randrange(cols))
    visited[start[0]][start[1]] = True
    grid[off_r + 2 * start[0], off_c + 2 * start[1]] = OPEN
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in STEPS
            if 0 <= r + dr < rows and 0 <= c + dc < cols and not visited[r + dr][c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rnd.randrange(len(options))] if len(options) > 1 else options[0]
        visited[nr][nc] = True
        grid[off_r + r + nr, off_c + c + nc] = OPEN  # the wall between the two cells
        grid[off_r + 2 * nr, off_c + 2 * nc] = OPEN
        stack.append((nr, nc))
    if loop_fraction > 0:
        # Inner walls between two horizontally or vertically adjacent cells.
        candidates = [
            (off_r + 2 * r + dr, off_c + 2 * c + dc)
            for r in range(rows)
            for c in range(cols)
            for dr, dc in ((1, 0), (0, 1))
            if r + dr < rows and c + dc < cols
        ]
        walls = [rc for rc in candidates if grid[rc] == WALL]
        for rc in rnd.sample(walls, round(loop_fraction * len(walls))):
            grid[rc] = OPEN
    return grid


def hard_min_path_length(size: int) -> int:
    """The hardness filter of an N x N maze: the published 30x30 hard set's 111 moves scaled with the
    side, rounded up (9 -> 34, 11 -> 41, 15 -> 56, 30 -> 111). With this generator about 7% of random
    S/G pairs in a 30x30 maze are that far apart."""
    return math.ceil(PUBLISHED_HARD_MIN_PATH_LENGTH * size / PUBLISHED_HARD_SIZE)


def generate_maze(
    size: int,
    rng: np.random.Generator,
    min_path_length: int | None = None,
    loop_fraction: float = DEFAULT_LOOP_FRACTION,
    max_tries: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """One random maze and its label, both ``[size, size]`` uint8 token grids.

    S is placed on a random open cell and G on a random open cell at least ``min_path_length``
    moves away (any other open cell when it is None); mazes without such a cell are redrawn."""
    if size < MIN_SIZE:
        raise ValueError(f"maze size must be at least {MIN_SIZE}, got {size}")
    rnd = random.Random(int(rng.integers(0, 2**63)))
    need = max(1, min_path_length or 1)
    for _ in range(max_tries):
        grid = carve_maze(size, rnd, loop_fraction)
        open_cells = np.flatnonzero(grid.reshape(-1) == OPEN)
        s = divmod(int(open_cells[rnd.randrange(len(open_cells))]), size)
        dist = bfs_distances(grid == OPEN, s)
        far = np.flatnonzero(dist.reshape(-1) >= need)
        if len(far) == 0:
            continue
        g = divmod(int(far[rnd.randrange(len(far))]), size)
        grid[s] = START
        grid[g] = GOAL
        return grid, solve_maze(grid)
    raise DataError(
        f"could not generate {a_grid(size)} maze with a path of at least {need} moves in "
        f"{max_tries} tries; lower --min-path-length or raise --size"
    )


def generate_mazes(
    count: int,
    size: int,
    rng: np.random.Generator,
    min_path_length: int | None = None,
    loop_fraction: float = DEFAULT_LOOP_FRACTION,
    desc: str = "mazes",
    progress: bool = False,
    max_tries: int = 1000,
    any_length_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` mazes as ``([count, size, size], [count, size, size])`` inputs and labels, each
    drawn in at most ``max_tries`` carvings (see `generate_maze`); with ``progress``, a progress bar
    on stderr for 50 mazes or more. ``any_length_share`` of them (rounded, at random places) skip
    the ``min_path_length`` filter, so a hard set can be mixed with ordinary mazes."""
    from tqdm import tqdm

    unfiltered = np.zeros(count, dtype=bool)
    if any_length_share > 0:
        unfiltered[rng.permutation(count)[: round(any_length_share * count)]] = True
    inputs = np.empty((count, size, size), dtype=np.uint8)
    labels = np.empty_like(inputs)
    for i in tqdm(range(count), desc=f"Generating {desc}", unit="maze", disable=not progress or count < 50):
        need = None if unfiltered[i] else min_path_length
        inputs[i], labels[i] = generate_maze(size, rng, need, loop_fraction, max_tries)
    return inputs, labels


# --------------------------------------------------------------------------------------------
# CSV import
# --------------------------------------------------------------------------------------------


@dataclass
class MazeTable:
    """Mazes read from a CSV file, with their 1-based line numbers there."""

    inputs: np.ndarray  # [n, N, N] uint8
    labels: np.ndarray  # [n, N, N] uint8
    lines: list[int]
    skipped: int = 0


def _parse_row(row: list[str], size: int | None) -> tuple[np.ndarray, np.ndarray] | str:
    """The encoded question and answer of a CSV row (of side ``size`` when given), or what is wrong."""
    if len(row) != len(CSV_HEADER):
        return f"has {len(row)} fields, expected {len(CSV_HEADER)}"
    try:
        q = encode_maze(row[1], size)
    except ValueError as exc:
        return f"question {exc}"
    try:
        a = encode_maze(row[2], q.shape[0])
    except ValueError as exc:
        return f"answer {exc}"
    if q.shape[0] < 2:
        return f"maze is {q.shape[0]}x{q.shape[0]}, too small"
    return check_maze_pair(q, a) or (q, a)


def read_maze_csv(path: str | Path, skip_invalid: bool = False) -> MazeTable:
    """Read and check a published-format maze CSV. A bad row raises DataError naming file and line,
    or, with ``skip_invalid``, is dropped and counted in ``skipped``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such maze CSV file")
    inputs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    lines: list[int] = []
    skipped = 0
    size: int | None = None
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: file is empty, expected the header {','.join(CSV_HEADER)}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path} line 1: unreadable CSV ({exc})") from None
        if tuple(h.strip() for h in header) != CSV_HEADER:
            raise DataError(
                f"{path} line 1: header is {','.join(header)!r}, expected {','.join(CSV_HEADER)!r}"
            )
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataError(f"{path} line {reader.line_num}: unreadable CSV ({exc})") from None
            line = reader.line_num
            if not row:
                continue
            parsed = _parse_row(row, size)
            if isinstance(parsed, str):
                if skip_invalid:
                    skipped += 1
                    continue
                raise DataError(f"{path} line {line}: {parsed}")
            q, a = parsed
            size = q.shape[0]
            inputs.append(q)
            labels.append(a)
            lines.append(line)
    if not inputs:
        raise DataError(f"{path}: no valid mazes" + (f" ({skipped} skipped as invalid)" if skipped else ""))
    return MazeTable(np.stack(inputs), np.stack(labels), lines, skipped)


# --------------------------------------------------------------------------------------------
# Dataset assembly
# --------------------------------------------------------------------------------------------


def maze_puzzle_set(inputs: np.ndarray, labels: np.ndarray, aug: bool) -> PuzzleSetArrays:
    """One group per maze; its puzzles are the maze and, with ``aug``, its 7 other dihedral images."""
    from hrm.data.format import PuzzleSetArrays

    n, size, _ = inputs.shape
    k = NUM_DIHEDRAL if aug else 1
    if aug:
        # [n, 8, N, N]: all dihedral images of each maze, kept next to each other.
        all_in = np.stack([dihedral_transform(inputs, t) for t in range(k)], axis=1)
        all_lab = np.stack([dihedral_transform(labels, t) for t in range(k)], axis=1)
    else:
        all_in, all_lab = inputs[:, None], labels[:, None]
    return PuzzleSetArrays(
        inputs=np.ascontiguousarray(all_in.reshape(n * k, size * size)),
        labels=np.ascontiguousarray(all_lab.reshape(n * k, size * size)),
        puzzle_identifiers=np.zeros(n * k, dtype=np.int32),
        puzzle_indices=np.arange(n * k + 1, dtype=np.int32),
        group_indices=np.arange(0, n * k + 1, k, dtype=np.int32),
    )


def maze_metadata(arrays: PuzzleSetArrays, size: int) -> DatasetMetadata:
    """Metadata of a split of ``size`` x ``size`` mazes."""
    n_puzzles = len(arrays.puzzle_identifiers)
    return dataset_metadata(
        vocab_size=VOCAB_SIZE,
        seq_len=size * size,
        total_groups=len(arrays.group_indices) - 1,
        mean_puzzle_examples=(len(arrays.inputs) / n_puzzles) if n_puzzles else 0.0,
        total_puzzles=n_puzzles,
    )


MazePair = tuple[np.ndarray, np.ndarray]  # inputs and labels, [n, N, N] each


def _subsample(pair: MazePair, n: int | None, rng: np.random.Generator) -> MazePair:
    if n is None or n >= len(pair[0]):
        return pair
    keep = np.sort(rng.choice(len(pair[0]), size=n, replace=False))
    return pair[0][keep], pair[1][keep]


def _read_mazes(
    source: Path, test_count: int | None, skip_invalid: bool, rng: np.random.Generator
) -> tuple[MazePair | None, MazePair | None, int]:
    """Train and test mazes of a CSV directory (train.csv, test.csv) or of one CSV file, of which
    ``test_count`` rows drawn with ``rng`` form the test split; and the number of rows skipped."""
    skipped = 0
    if source.is_dir():
        files = {name: source / f"{name}.csv" for name in ("train", "test")}
        files = {name: p for name, p in files.items() if p.is_file()}
        if not files:
            raise DataError(f"{source}: directory has neither train.csv nor test.csv")
        pairs: dict[str, MazePair | None] = {"train": None, "test": None}
        for name, p in files.items():
            table = read_maze_csv(p, skip_invalid=skip_invalid)
            skipped += table.skipped
            pairs[name] = (table.inputs, table.labels)
        train, test = pairs["train"], pairs["test"]
    else:
        table = read_maze_csv(source, skip_invalid=skip_invalid)
        skipped = table.skipped
        n_test = min(test_count or 0, len(table.inputs))
        order = rng.permutation(len(table.inputs)) if n_test else np.arange(len(table.inputs))
        test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
        train = (table.inputs[train_idx], table.labels[train_idx])
        test = (table.inputs[test_idx], table.labels[test_idx]) if n_test else None
    if train is not None and test is not None and train[0].shape[-1] != test[0].shape[-1]:
        raise DataError(
            f"{source}: train mazes are {train[0].shape[-1]}x{train[0].shape[-1]} but test mazes are "
            f"{test[0].shape[-1]}x{test[0].shape[-1]}"
        )
    return train, test, skipped


def build_maze_dataset(
    out_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    count: int = DEFAULT_COUNT,
    test_count: int | None = None,
    size: int = DEFAULT_SIZE,
    min_path_length: int | None = None,
    any_length_share: float = 0.0,
    loop_fraction: float = DEFAULT_LOOP_FRACTION,
    aug: bool = False,
    subsample: int | None = None,
    seed: int = 0,
    skip_invalid: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildResult:
    """Build a maze dataset directory: mazes imported from ``source`` (a directory with train.csv
    and/or test.csv, or one CSV file of which ``test_count`` rows form the test split) or generated
    (``count`` training and ``test_count``, default 1000, test mazes of side ``size``; with
    ``min_path_length``, ``any_length_share`` of each split skips that filter). ``aug`` adds the 7
    other dihedral images of every training maze; ``subsample`` keeps that many training mazes.
    Same ``seed``, same bytes.

    Example: ``build_maze_dataset("data/maze", count=1000, size=30, min_path_length=111, aug=True)``.
    """
    from hrm.data.format import check_out_dir, write_dataset

    check_out_dir(out_dir, overwrite, [source] if source is not None else [])
    if seed < 0:
        raise DataError(f"--seed must not be negative, got {seed}")
    if test_count is not None and test_count < 0:
        raise DataError(f"--test-count must not be negative, got {test_count}")
    per_maze = NUM_DIHEDRAL if aug else 1
    advice = "lower --count, --test-count or --size"
    rng = np.random.default_rng(seed)
    skipped = 0
    train: MazePair | None
    test: MazePair | None
    if not 0.0 <= any_length_share <= 1.0:  # also refuses NaN
        raise DataError(f"--any-length-share must be between 0 and 1, got {any_length_share}")
    if source is not None:
        if min_path_length is not None or any_length_share > 0:
            raise DataError(
                "--min-path-length, --hard and --any-length-share filter generated mazes; they do not "
                "apply to --from"
            )
        train, test, skipped = _read_mazes(Path(source), test_count, skip_invalid, rng)
        origin = str(source)
    else:
        if size < MIN_SIZE:
            raise DataError(f"--size must be at least {MIN_SIZE}, got {size}")
        n_test = DEFAULT_TEST_COUNT if test_count is None else test_count
        if count < 0 or n_test < 0:
            raise DataError("--count and --test-count must not be negative")
        if not 0.0 <= loop_fraction <= 1.0:
            raise DataError(f"--loop-fraction must be between 0 and 1, got {loop_fraction}")
        if any_length_share > 0 and min_path_length is None:
            raise DataError(
                "--any-length-share mixes unfiltered mazes into --hard or --min-path-length ones; give one"
            )
        check_build_size({"train": count * per_maze, "test": n_test}, size * size, advice)
        generate = functools.partial(
            generate_mazes,
            size=size,
            rng=rng,
            min_path_length=min_path_length,
            loop_fraction=loop_fraction,
            progress=progress,
            any_length_share=any_length_share,
        )
        train = generate(count, desc="train")
        test = generate(n_test, desc="test")
        origin = f"generated {size}x{size}"
    if subsample is not None:
        if subsample < 1:
            raise DataError(f"--subsample must be at least 1, got {subsample}")
        if train is not None:
            train = _subsample(train, subsample, rng)

    given = {name: pair for name, pair in (("train", train), ("test", test)) if pair is not None}
    given = {name: pair for name, pair in given.items() if len(pair[0])}
    if not given:
        raise DataError("no mazes to write: both the train and the test split are empty")
    sizes = {pair[0].shape[-1] for pair in given.values()}
    if len(sizes) != 1:
        raise DataError(f"train and test mazes differ in size ({sorted(sizes)}); a dataset needs one size")
    n = sizes.pop()
    examples = {name: len(pair[0]) * (per_maze if name == "train" else 1) for name, pair in given.items()}
    check_build_size(examples, n * n, "lower --subsample or leave out --aug")
    splits: dict[str, dict[str, PuzzleSetArrays]] = {}
    metadata: dict[str, DatasetMetadata] = {}
    for name, (inputs, labels) in given.items():
        arrays = maze_puzzle_set(inputs, labels, aug=aug and name == "train")
        splits[name] = {SET_NAME: arrays}
        metadata[name] = maze_metadata(arrays, n)
    summary = write_dataset(out_dir, splits, metadata, [BLANK_IDENTIFIER], overwrite=overwrite)
    mazes = {name: len(pair[0]) for name, pair in given.items()}
    summary.notes.append(
        f"{n}x{n} mazes: "
        + ", ".join(f"{k} {name}" for name, k in mazes.items())
        + (f"; skipped {skipped} invalid rows" if skipped else "")
    )
    return BuildResult(
        out_dir=Path(out_dir), summary=summary, puzzles=mazes, skipped=skipped, grid_size=n, sources=[origin]
    )
