"""Mazes (N x N, N >= 5): '#' wall, ' ' open, 'S' start, 'G' goal, 'o' on the path; the answer marks a
shortest S->G path with 'o'. Tokens PAD=0 then the characters '# SGo' (the reference's)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hrm.data import maze as maze_data
from hrm.errors import DataError
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


class MazeTask(Task):
    name = "maze"
    title = "maze"
    generates = True
    menu_order = 1

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
        return n * n, maze_data.VOCAB_SIZE, f"a {n}x{n} maze ({n * n} cells)"

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
