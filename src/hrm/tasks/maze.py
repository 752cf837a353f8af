"""Mazes (N x N, N >= 5): '#' wall, ' ' open, 'S' start, 'G' goal, 'o' on the path; the answer marks a
shortest S->G path with 'o'. Tokens PAD=0 then the characters '# SGo' (the reference's)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from hrm.data import maze as maze_data
from hrm.errors import DataError, a_grid
from hrm.tasks.base import (
    MAX_VIEWER_SIDE,
    Answer,
    Encoding,
    Grid,
    Puzzle,
    RowAnswers,
    SolveOptions,
    Task,
    short,
)

if TYPE_CHECKING:
    import torch

MARKS = frozenset("#SGo")
# What the viewer generates: any maze, or a hard one (`hrm data maze --hard`), from 9x9 (smaller sides
# rarely have a path that long).
MAZE_DIFFICULTIES = ("any", "hard")
HARD_MIN_SIZE = 9


def maze_chars(tokens: np.ndarray) -> Grid:
    """Maze tokens [N*N] or [N, N] as rows of characters ('?' for PAD or a token outside the vocabulary)."""
    flat = np.asarray(tokens).reshape(-1)
    size = math.isqrt(flat.size)
    safe = np.where((flat >= 0) & (flat <= len(maze_data.CHARSET)), flat, 0).astype(np.uint8)
    text = maze_data.decode_maze(safe)
    return [list(text[i : i + size]) for i in range(0, size * size, size)]


def maze_tokens(grid: Grid) -> np.ndarray | None:
    """Token ids [N, N] of a grid of maze characters; None when it is not one ('?' = PAD included)."""
    n = len(grid)
    flat = "".join(str(ch) for row in grid for ch in row)
    if n == 0 or len(flat) != n * n:
        return None
    try:
        return maze_data.encode_maze(flat, n)
    except ValueError:
        return None


def closest_shortest_paths(
    inputs: torch.Tensor, labels: torch.Tensor, logprobs: torch.Tensor
) -> torch.Tensor:
    """Per row of encoded mazes (`inputs`, `labels`: [B, N*N]; `logprobs`: [B, N*N, vocab]), the label
    that marks the shortest S->G path the model finds most likely: the one whose token loss
    (-logprobs) is least. Rows that are not a maze with one S, one G and a path keep their labels.

    The labels differ from the given ones only where a maze has several shortest paths. The path is
    the heaviest S->G walk through the cells on some shortest path, each cell weighing
    logprob('o') - logprob(' '): a dynamic programme over the distance from S, in N*N
    whole-batch steps at most."""
    import torch

    rows, cells = inputs.shape
    side = math.isqrt(cells)
    grid = inputs.reshape(rows, side, side)
    passable = (grid == maze_data.OPEN) | (grid == maze_data.START) | (grid == maze_data.GOAL)
    start, goal = grid == maze_data.START, grid == maze_data.GOAL
    far = cells + 1  # farther than any path

    def shifted(x: torch.Tensor, dr: int, dc: int, fill: float | int) -> torch.Tensor:
        """x moved so that each cell holds its neighbour (r + dr, c + dc); `fill` beyond the edge."""
        out = torch.full_like(x, fill)
        out[:, max(0, -dr) : side - max(0, dr), max(0, -dc) : side - max(0, dc)] = x[
            :, max(0, dr) : side - max(0, -dr), max(0, dc) : side - max(0, -dc)
        ]
        return out

    def distances(source: torch.Tensor) -> torch.Tensor:
        dist = torch.where(source & passable, 0, far)
        for _ in range(cells):
            up, down, left, right = (shifted(dist, dr, dc, far) for dr, dc in maze_data.STEPS)
            nearest = torch.minimum(torch.minimum(up, down), torch.minimum(left, right)) + 1
            new = torch.where(passable, torch.minimum(dist, nearest), far)
            if torch.equal(new, dist):
                break
            dist = new
        return dist

    from_start, from_goal = distances(start), distances(goal)
    length = torch.where(goal, from_start, 0).sum((1, 2))
    ok = (start.sum((1, 2)) == 1) & (goal.sum((1, 2)) == 1) & (length < far)
    on_some_path = passable & (from_start + from_goal == length.view(-1, 1, 1)) & ok.view(-1, 1, 1)

    weight = (logprobs[..., maze_data.PATH] - logprobs[..., maze_data.OPEN]).reshape(rows, side, side)
    wide = torch.float32 if weight.device.type == "mps" else torch.float64  # MPS has no float64
    weight = torch.nan_to_num(weight.to(wide), nan=0.0, posinf=1e9, neginf=-1e9)
    best = torch.where(start & ok.view(-1, 1, 1), 0.0, -math.inf).to(weight.dtype)
    steps_to_goal = int(length[ok].max()) if bool(ok.any()) else 0
    for k in range(1, steps_to_goal + 1):
        # Neighbours differ by one in distance from S (a grid is bipartite): the best so far of the
        # layer before is the only finite value a layer-k cell can see.
        up, down, left, right = (shifted(best, dr, dc, -math.inf) for dr, dc in maze_data.STEPS)
        reach = torch.maximum(torch.maximum(up, down), torch.maximum(left, right))
        layer = on_some_path & (from_start == k)
        best = torch.where(layer, torch.where(goal, 0.0, weight) + reach, best)

    # Walk back from G, each step to the best neighbour one move nearer S on some shortest path.
    flat_best, flat_dist, flat_on = (
        best.reshape(rows, cells),
        from_start.reshape(rows, cells),
        on_some_path.reshape(rows, cells),
    )
    at = torch.where(ok, goal.reshape(rows, cells).float().argmax(1), 0)
    on_path = torch.zeros(rows, cells, dtype=torch.bool, device=inputs.device)
    row_ids = torch.arange(rows, device=inputs.device)
    for _ in range(steps_to_goal - 1):
        here = flat_dist[row_ids, at]
        r, c = at // side, at % side
        options = []
        for dr, dc in maze_data.STEPS:
            nr, nc = r + dr, c + dc
            inside = (nr >= 0) & (nr < side) & (nc >= 0) & (nc < side)
            idx = nr.clamp(0, side - 1) * side + nc.clamp(0, side - 1)
            fits = inside & flat_on[row_ids, idx] & (flat_dist[row_ids, idx] == here - 1)
            options.append((torch.where(fits, flat_best[row_ids, idx], -math.inf), idx))
        values = torch.stack([v for v, _ in options], 1)
        choice = values.argmax(1)
        nxt = torch.stack([i for _, i in options], 1)[row_ids, choice]
        moving = ok & (here > 1)
        at = torch.where(moving, nxt, at)
        on_path[row_ids[moving], at[moving]] = True

    out = labels.reshape(rows, side, side).clone()
    out[on_some_path & ~start & ~goal] = maze_data.OPEN
    out = out.reshape(rows, cells)
    out[on_path] = maze_data.PATH
    return out


class MazeTask(Task):
    name = "maze"
    title = "maze"
    generates = True
    menu_order = 1
    several_answers = True  # a maze may have several shortest paths

    def closest_answer_labels(
        self, inputs: torch.Tensor, labels: torch.Tensor, logprobs: torch.Tensor
    ) -> torch.Tensor:
        return closest_shortest_paths(inputs, labels, logprobs)

    def fits(self, seq_len: int, vocab_size: int) -> bool:
        side = math.isqrt(seq_len)
        return side * side == seq_len and side >= maze_data.MIN_SIZE and vocab_size == maze_data.VOCAB_SIZE

    def claims(self, text: str) -> bool:
        return bool(MARKS & set(text))

    def parse(self, raw: Any, name: str | None = None, task_id: str | None = None) -> Puzzle:
        """N rows of N characters over '# SGo' (an 'o' path mark is read as open), or one line of N*N
        characters. Rows shorter than N (trailing spaces lost by an editor) are padded with open cells.
        Needs N >= 5, one S, one G, and G reachable."""
        if not isinstance(raw, str):
            raise DataError(f"a maze must be given as text, got a {type(raw).__name__}")
        name = name or f"maze {short(raw)}"
        lines = raw.replace("\r", "").split("\n")
        # Only truly empty lines are dropped: a line of spaces is a row of open cells.
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if len(lines) == 1:
            flat = lines[0]
            size = math.isqrt(len(flat))
            if size * size != len(flat) or size == 0:
                raise DataError(f"{name}: one line of {len(flat)} characters, which is not N*N for any N")
        else:
            size = len(lines)
            longest = max((len(line) for line in lines), default=0)
            if longest != size:
                raise DataError(
                    f"{name}: {size} rows of up to {longest} characters; a maze must be N rows of N"
                )
            flat = "".join(line.ljust(size) for line in lines)
        if size < maze_data.MIN_SIZE:
            raise DataError(f"{name}: a maze must be at least {maze_data.MIN_SIZE}x{maze_data.MIN_SIZE}")
        try:
            cells = maze_data.encode_maze(flat, size)
        except ValueError as exc:
            raise DataError(f"{name}: {exc}") from None
        cells = np.where(cells == maze_data.PATH, maze_data.OPEN, cells).astype(np.uint8)
        for token, mark in ((maze_data.START, "S"), (maze_data.GOAL, "G")):
            count = int((cells == token).sum())
            if count != 1:
                raise DataError(f"{name}: has {count} '{mark}' cells, expected exactly one")
        if maze_data.shortest_path(cells) is None:
            raise DataError(f"{name}: G cannot be reached from S")
        return Puzzle(self.name, name, maze_data.render_maze(cells), maze_chars(cells), cells)

    def shape(self, puzzle: Puzzle) -> tuple[int, int, str]:
        n = puzzle.payload.shape[0]
        return n * n, maze_data.VOCAB_SIZE, f"{a_grid(n)} maze ({n * n} cells)"

    def encode(self, puzzle: Puzzle, options: SolveOptions) -> Encoding:
        return Encoding(puzzle.payload.reshape(1, -1).astype(np.int64), np.zeros(1, np.int64))

    def answer(self, puzzle: Puzzle, encoding: Encoding, rows: RowAnswers) -> Answer:
        tokens = np.asarray(rows.preds[0]).reshape(puzzle.payload.shape)
        reason = maze_data.check_maze_pair(puzzle.payload, tokens)
        return Answer(maze_chars(tokens), reason is None, reason, float(rows.q_halt[0]), int(rows.steps[0]))

    def decode(self, puzzle: Puzzle, tokens: np.ndarray, view: str | None = None) -> Grid:
        return maze_chars(tokens)

    cell_type = str
    cell_values = frozenset("?" + maze_data.CHARSET)

    def trace_grid_problem(self, grid: Grid, puzzle: Grid | None) -> str | None:
        n = len(grid)
        if puzzle is not None:
            return (
                None if n == len(puzzle) and n and len(grid[0]) == n else "the answer is not the maze's size"
            )
        return None if n and len(grid[0]) == n else "a maze is a square grid"

    def check_grid(self, puzzle_grid: Grid, answer: Grid, expected: Grid | None = None) -> dict[str, Any]:
        question, tokens = maze_tokens(puzzle_grid), maze_tokens(answer)
        if question is None:
            return {"valid": None, "reason": "the puzzle is not a maze"}
        if tokens is None:
            return {"valid": False, "reason": "the answer holds cells that are not maze characters"}
        reason = maze_data.check_maze_pair(question, tokens)
        return {"valid": reason is None, "reason": reason}

    def format(self, grid: Grid) -> str:
        return "\n".join("".join(str(ch) for ch in row) for row in grid)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": "Maze",
            "style": "path",
            "cell_px": 30,
            "boxes": None,
            "generate": {
                "size_range": [maze_data.MIN_SIZE, MAX_VIEWER_SIDE],
                "difficulties": list(MAZE_DIFFICULTIES),
                "min_sizes": {"hard": HARD_MIN_SIZE},
            },
            "input_hint": "a maze (rows over '# SG')",
            "json_input": False,
            "score_series": list(self.score_series),
        }

    def grid_of_tokens(self, tokens: np.ndarray, label: bool = False) -> Grid | None:
        flat = np.asarray(tokens).reshape(-1)
        return None if label and not flat.any() else maze_chars(flat)

    def puzzle_of_example(
        self, grid: Grid, label: Grid | None, name: str, identifier: str, original: dict[str, Any] | None
    ) -> Puzzle:
        text = "".join("".join(row) for row in grid)
        if "?" in text:
            raise DataError(f"{name} holds PAD tokens; it is not a maze")
        return self.parse(text, name=name)

    def solver_answer(self, puzzle_grid: Grid) -> tuple[Grid | None, str | None]:
        """One shortest path."""
        tokens = maze_tokens(puzzle_grid)
        if tokens is None:
            return None, None
        tokens = np.where(tokens == maze_data.PATH, maze_data.OPEN, tokens).astype(np.uint8)
        try:
            return maze_chars(maze_data.solve_maze(tokens)), "solver (a shortest path)"
        except ValueError:
            return None, "G cannot be reached from S"

    def check_generate(self, size: int, difficulty: str | None) -> None:
        if not maze_data.MIN_SIZE <= size <= MAX_VIEWER_SIDE:
            low, high = maze_data.MIN_SIZE, MAX_VIEWER_SIDE
            raise ValueError(f"a generated maze is {low}x{low} to {high}x{high}, not {size}x{size}")
        if difficulty is not None and difficulty not in MAZE_DIFFICULTIES:
            levels = ", ".join(MAZE_DIFFICULTIES)
            raise ValueError(f"maze difficulty {difficulty!r} is not one of {levels}")
        if difficulty == "hard" and size < HARD_MIN_SIZE:
            raise ValueError(f"a hard maze is at least {HARD_MIN_SIZE}x{HARD_MIN_SIZE}, not {size}x{size}")

    def generate(
        self, size: int, difficulty: str | None, rng: np.random.Generator, min_path_length: int | None = None
    ) -> dict[str, Any]:
        """`difficulty` "hard" keeps paths of at least `hrm data maze --hard`'s length (unless
        `min_path_length` is given); "any" (or None) keeps every maze."""
        if difficulty == "hard" and min_path_length is None:
            min_path_length = maze_data.hard_min_path_length(size)
        inp, label = maze_data.generate_maze(size, rng, min_path_length=min_path_length, max_tries=200)
        return {
            "text": maze_data.render_maze(inp),
            "grid": maze_chars(inp),
            "solution": maze_chars(label),
            "difficulty": difficulty or MAZE_DIFFICULTIES[0],
        }
