"""Solving puzzles with a trained model, and recording how it reasoned.

    from hrm.checkpoint import load_model
    from hrm.solve import solve

    model = load_model("runs/sudoku9")              # a run, a checkpoint, a packaged name
    sol = solve(model, "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79")
    print(sol.format(), sol.valid, sol.segments, sol.confidence)

A puzzle is a Sudoku string (4x4, 6x6 or 9x9; `.` or `0` for blanks; whitespace and `|` `-` `+`
separators ignored), a maze as text rows over `# SGo` (any N x N with N*N the model's sequence length),
or an ARC task (a dict with `train` and `test`, an `ArcTask`, or the path of a task JSON file). The
kind is told by the input and the model's sequence length and vocabulary, or given as `kind=`.

Halting: `halt="adaptive"` lets the Q head stop each puzzle as soon as it says so (Q-halt > Q-continue,
or Q-halt > 0 for a TRM trained without Q-continue); `halt="max"` runs every segment, as the published
evaluation does. The answer of a puzzle is the one of the segment where it halted.

Traces (`trace=True`) record every segment and every inner update of a puzzle: the decoded answer,
the Q logits, per-cell confidence and the residual norms of the recurrent states. Their JSON layout is
`trace_schema.json` beside this module, described in docs/TRACE_SCHEMA.md; `write_trace` writes one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm.data import maze as maze_data
from hrm.data import sudoku as sudoku_data
from hrm.data.arc import (
    MAX_GRID_SIZE,
    SEPARATOR,
    ArcTask,
    augmented_name,
    forward_transform,
    grid_to_seq,
    parse_name,
    parse_task,
)
from hrm.data.arc import SEQ_LEN as ARC_SEQ_LEN
from hrm.data.arc import VOCAB_SIZE as ARC_VOCAB_SIZE
from hrm.data.arc_eval import crop_prediction, grid_key, vote
from hrm.data.augment import NUM_DIHEDRAL, inverse_dihedral_transform, random_colour_permutation
from hrm.data.build import BLANK_IDENTIFIER
from hrm.errors import DataError, HRMError
from hrm.models import ACTModel, Carry, model_name

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().with_name("trace_schema.json")
KINDS = ("sudoku", "maze", "arc")
HALT_MODES = ("adaptive", "max")
DEFAULT_BATCH_SIZE = 256
SUDOKU_SIZES = {16: 4, 36: 6, 81: 9}
_SUDOKU_SEPARATORS = str.maketrans("", "", " \t\r\n|-+")
_MAZE_MARKS = set("#SGo")
_IDENTITY_COLOURS = np.arange(10, dtype=np.uint8)

Grid = list[list[int]] | list[list[str]]


# --------------------------------------------------------------------------------------------------
# Puzzles: parsing, kind detection, fitting the model
# --------------------------------------------------------------------------------------------------


@dataclass
class Puzzle:
    """A parsed puzzle. `cells` holds Sudoku digits (0 = blank) or maze tokens as an [N, N] array;
    ARC puzzles carry their `task` instead."""

    kind: str
    name: str
    cells: np.ndarray | None = None
    task: ArcTask | None = None

    @property
    def text(self) -> str:
        """Sudoku: one line with '.' blanks; maze: N rows; ARC: the task id."""
        if self.kind == "sudoku":
            assert self.cells is not None
            return sudoku_data.format_grid(self.cells)
        if self.kind == "maze":
            assert self.cells is not None
            return maze_data.render_maze(self.cells)
        assert self.task is not None
        return self.task.id

    @property
    def grid(self) -> Grid:
        """The input as a list of lists (ARC: the first test input)."""
        if self.kind == "sudoku":
            assert self.cells is not None
            return self.cells.astype(int).tolist()
        if self.kind == "maze":
            assert self.cells is not None
            return _maze_chars(self.cells.reshape(-1), self.cells.shape[0])
        assert self.task is not None
        return self.task.test[0][0].astype(int).tolist()


def _short(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split()) if "\n" in text else text
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def _looks_like_path(text: str) -> bool:
    return len(text) < 4096 and "\n" not in text and (text.endswith(".json") or Path(text).is_file())


def detect_kind(puzzle: Any, config: Any = None) -> str:
    """ "sudoku", "maze" or "arc" for a puzzle as `solve` takes it, told from the input first and,
    where the text alone cannot tell (characters of neither alphabet), from the model config."""
    if isinstance(puzzle, (dict, ArcTask)):
        return "arc"
    if isinstance(puzzle, Path) or (isinstance(puzzle, str) and _looks_like_path(puzzle)):
        path = Path(puzzle)
        if path.suffix == ".json":
            return "arc"
        if path.is_file():
            return detect_kind(_read_text(path), config)
        if isinstance(puzzle, Path):
            raise DataError(f"{path}: no such file")
    if not isinstance(puzzle, str):
        raise DataError(
            f"cannot solve a {type(puzzle).__name__}: give a puzzle string, an ARC task or a path"
        )
    text = puzzle.strip()
    if text.startswith("{"):
        return "arc"
    if _MAZE_MARKS & set(text):
        return "maze"
    if text.translate(_SUDOKU_SEPARATORS).replace(".", "").isdigit() or not text:
        return "sudoku"
    return kind_for_config(config) or "sudoku"


def kind_for_config(config: Any) -> str | None:
    """The task a model config fits, when only one does: ARC (900 positions, 12 tokens), Sudoku
    (n*n positions, n+2 tokens for n = 6, 9), maze (6 tokens, any other square); a 4x4 model (16
    positions, 6 tokens) could be either Sudoku or maze, so it gives None."""
    if config is None:
        return None
    seq_len, vocab = int(config.seq_len), int(config.vocab_size)
    if seq_len == ARC_SEQ_LEN and vocab == ARC_VOCAB_SIZE:
        return "arc"
    n = SUDOKU_SIZES.get(seq_len)
    if n is not None and vocab == n + 2 and vocab != maze_data.VOCAB_SIZE:
        return "sudoku"
    if vocab == maze_data.VOCAB_SIZE and seq_len != 16 and math.isqrt(seq_len) ** 2 == seq_len:
        return "maze"
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def parse_sudoku(text: str, name: str | None = None) -> Puzzle:
    """A Sudoku from text: 16, 36 or 81 cells of 1..n, '.' or '0' for blanks; whitespace and the
    separators '|', '-', '+' are ignored. Contradictory givens are an error."""
    name = name or f"puzzle {_short(text)}"
    cells_text = text.translate(_SUDOKU_SEPARATORS)
    n = SUDOKU_SIZES.get(len(cells_text))
    if n is None:
        raise DataError(
            f"{name}: has {len(cells_text)} cells; a sudoku needs 16, 36 or 81 (4x4, 6x6 or 9x9), "
            "with '.' or '0' for blanks"
        )
    allowed = ".0" + "".join(str(d) for d in range(1, n + 1))
    wrong = sorted({ch for ch in cells_text if ch not in allowed})
    if wrong:
        raise DataError(
            f"{name}: character(s) {''.join(wrong)!r} not allowed in a {n}x{n} sudoku "
            f"(digits 1-{n}, '.' or '0' for blanks)"
        )
    cells = (np.frombuffer(cells_text.replace(".", "0").encode(), dtype=np.uint8) - ord("0")).reshape(n, n)
    conflict = sudoku_data.find_conflict(cells, n)
    if conflict:
        raise DataError(f"{name}: contradictory givens: {conflict}")
    return Puzzle("sudoku", name, cells=cells.astype(np.uint8))


def parse_maze(text: str, name: str | None = None) -> Puzzle:
    """A maze from text: N rows of N characters over '# SGo' ('#' wall, ' ' open, 'S' start, 'G' goal;
    an 'o' path mark is read as open), or one line of N*N characters. Rows shorter than N (trailing
    spaces lost by an editor) are padded with open cells. Needs one S, one G, and G reachable."""
    name = name or f"maze {_short(text)}"
    lines = text.replace("\r", "").split("\n")
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
            raise DataError(f"{name}: {size} rows of up to {longest} characters; a maze must be N rows of N")
        flat = "".join(line.ljust(size) for line in lines)
    if size < 2:
        raise DataError(f"{name}: a maze must be at least 2x2")
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
    return Puzzle("maze", name, cells=cells)


def parse_arc(task: Any, name: str | None = None, task_id: str | None = None) -> Puzzle:
    """An ARC task from a dict ({"train": [...], "test": [...]}), JSON text, an `ArcTask` or the path of
    a task JSON file (its stem is the task id)."""
    if isinstance(task, ArcTask):
        return Puzzle("arc", name or f"ARC task {task.id}", task=task)
    origin = name or "ARC task"
    if isinstance(task, (str, Path)) and not (isinstance(task, str) and task.lstrip().startswith("{")):
        path = Path(task)
        origin = name or str(path)
        try:
            task = json.loads(_read_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
        task_id = task_id or path.stem
    elif isinstance(task, str):
        try:
            task = json.loads(task)
        except json.JSONDecodeError as exc:
            raise DataError(f"{origin}: invalid JSON ({exc.msg})") from None
    task_id = (task_id or "task").replace(SEPARATOR, "_")
    parsed = parse_task(task, task_id, origin)
    return Puzzle("arc", origin if name is None else name, task=parsed)


def parse_puzzle(puzzle: Any, kind: str | None = None, config: Any = None, name: str | None = None) -> Puzzle:
    """Parse a puzzle of `kind` (detected when None); errors are DataErrors naming the input."""
    if isinstance(puzzle, Puzzle):
        return puzzle
    kind = kind or detect_kind(puzzle, config)
    if kind not in KINDS:
        raise DataError(f"unknown puzzle kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "arc":
        return parse_arc(puzzle, name)
    if isinstance(puzzle, Path) or (isinstance(puzzle, str) and _looks_like_path(puzzle)):
        path = Path(puzzle)
        if path.is_file():
            text = _read_text(path)
            return (
                parse_sudoku(text, name or str(path))
                if kind == "sudoku"
                else parse_maze(text, name or str(path))
            )
    if not isinstance(puzzle, str):
        raise DataError(f"a {kind} puzzle must be given as text, got a {type(puzzle).__name__}")
    return parse_sudoku(puzzle, name) if kind == "sudoku" else parse_maze(puzzle, name)


def check_fits(puzzle: Puzzle, model: ACTModel, model_label: str = "the model") -> None:
    """Raise DataError when the puzzle's sequence length or tokens do not fit the model."""
    c = model.config
    if puzzle.kind == "arc":
        seq_len, vocab, what = ARC_SEQ_LEN, ARC_VOCAB_SIZE, "an ARC task (30x30 canvas, 900 cells)"
    else:
        assert puzzle.cells is not None
        n = puzzle.cells.shape[0]
        seq_len = n * n
        vocab = n + 2 if puzzle.kind == "sudoku" else maze_data.VOCAB_SIZE
        what = f"a {n}x{n} {puzzle.kind} ({seq_len} cells)"
    if seq_len != c.seq_len:
        side = math.isqrt(c.seq_len)
        shape = f", i.e. {side}x{side}" if side * side == c.seq_len else ""
        raise DataError(
            f"{puzzle.name}: {what} does not fit {model_label}, which takes {c.seq_len} cells{shape}"
        )
    if vocab > c.vocab_size:
        raise DataError(
            f"{puzzle.name}: {what} needs {vocab} tokens but {model_label} knows only {c.vocab_size}"
        )


# --------------------------------------------------------------------------------------------------
# Encoding, decoding and rule checks
# --------------------------------------------------------------------------------------------------


def _maze_chars(tokens: np.ndarray, size: int) -> list[list[str]]:
    safe = np.where(tokens <= len(maze_data.CHARSET), tokens, 0).astype(np.uint8)
    text = maze_data.decode_maze(safe)
    return [list(text[i : i + size]) for i in range(0, size * size, size)]


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


def check_maze(question: np.ndarray, answer: np.ndarray) -> str | None:
    """Why `answer` (tokens) is not a shortest S->G path over open cells of `question`, or None."""
    return maze_data.check_maze_pair(np.asarray(question), np.asarray(answer))


def format_sudoku(digits: np.ndarray | Sequence[Sequence[int]]) -> str:
    """A Sudoku grid as text with box separators ('.' for blanks)."""
    g = np.asarray(digits, dtype=np.int64)
    n = g.shape[0]
    br, bc = sudoku_data.box_shape(n)
    rows = []
    for r in range(n):
        if r and r % br == 0:
            rows.append(_rule(n, bc))
        cells = ["." if v == 0 else str(v) for v in g[r]]
        rows.append(" | ".join(" ".join(cells[k : k + bc]) for k in range(0, n, bc)))
    return "\n".join(rows)


def _rule(n: int, bc: int) -> str:
    return "-+-".join("-" * (2 * bc - 1) for _ in range(n // bc))


def format_arc(grid: Sequence[Sequence[int]]) -> str:
    return "\n".join("".join(str(int(v)) for v in row) for row in grid) if len(grid) else "(empty)"


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class Solution:
    """What the model answered and whether it is right.

    `answer` is the grid: Sudoku digits (0 where the model wrote no digit), maze characters, or ARC
    colours (the top attempt for the first test input). `valid`: Sudoku, the rules hold and the givens
    are kept; maze, the 'o' cells form a shortest S->G path over open cells; ARC, None unless the task
    has test outputs, then whether each is matched by one of its two attempts (pass@2). `reason` says
    why not. `segments`: segments the puzzle ran (ARC: the most over its views). `confidence`:
    sigmoid of the Q-halt logit of the answering segment (ARC: of the top candidate's mean).
    `seconds`: wall time (in `solve_many`, the batch time shared among its puzzles).
    """

    kind: str
    puzzle: str
    answer: Grid
    valid: bool | None
    reason: str | None
    segments: int
    max_segments: int
    halt: str
    confidence: float
    q_halt: float
    seconds: float
    name: str = ""
    attempts: list[list[list[list[int]]]] | None = None  # ARC: per test input, up to 2 grids
    votes: list[list[int]] | None = None  # ARC: the votes of those attempts
    trace: dict[str, Any] | None = None
    views: int = 1  # Sudoku: symmetric views solved (see `solve`)
    agreement: int | None = None  # Sudoku with views > 1: how many views gave this answer

    @property
    def mark(self) -> str:
        return "?" if self.valid is None else ("✓" if self.valid else "✗")

    def verdict(self) -> str:
        """The rule check in words: '✓ valid', '✗ invalid: why', or '? unchecked'."""
        if self.valid is None:
            return "? unchecked (the task has no test output)"
        return "✓ valid" if self.valid else f"✗ invalid: {self.reason}"

    def format(self) -> str:
        """The answer as text: Sudoku with box separators, a maze as rows, ARC as digit rows."""
        if self.kind == "sudoku":
            return format_sudoku(self.answer)
        if self.kind == "maze":
            return "\n".join("".join(row) for row in self.answer)
        parts = []
        for t, grids in enumerate(self.attempts or [[self.answer]]):
            for k, grid in enumerate(grids):
                head = f"test {t + 1} attempt {k + 1}" if len(self.attempts or []) > 1 else f"attempt {k + 1}"
                votes = f" ({self.votes[t][k]} votes)" if self.votes else ""
                parts.append(f"{head}{votes}:\n{format_arc(grid)}")
        return "\n".join(parts)

    def summary(self) -> str:
        agree = f"; {self.agreement} of {self.views} views agree" if self.views > 1 else ""
        return (
            f"{self.verdict()}; segments {self.segments} of {self.max_segments} ({self.halt} halting); "
            f"halting confidence {self.confidence:.3f}{agree}; {self.seconds:.3f} s"
        )

    def to_dict(self, include_trace: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "puzzle": self.puzzle,
            "answer": self.answer,
            "valid": self.valid,
            "reason": self.reason,
            "segments": self.segments,
            "max_segments": self.max_segments,
            "halt": self.halt,
            "confidence": round(self.confidence, 6),
            "q_halt": round(self.q_halt, 6),
            "seconds": round(self.seconds, 6),
        }
        if self.attempts is not None:
            out["attempts"] = self.attempts
            out["votes"] = self.votes
        if self.views > 1:
            out["views"] = self.views
            out["agreement"] = self.agreement
        if include_trace and self.trace is not None:
            out["trace"] = self.trace
        return out


# --------------------------------------------------------------------------------------------------
# Running the model: batches, halting, tracing
# --------------------------------------------------------------------------------------------------


@contextmanager
def _inference(model: ACTModel, halt: str) -> Iterator[None]:
    """Eval mode with the halting rule asked for; the model's own settings come back afterwards."""
    if halt not in HALT_MODES:
        raise HRMError(f"halt must be one of {', '.join(HALT_MODES)}, got {halt!r}")
    was_training, was_adaptive = model.training, model.adaptive_halting
    model.eval()
    model.adaptive_halting = halt == "adaptive"
    try:
        with torch.no_grad():
            yield
    finally:
        model.adaptive_halting = was_adaptive
        model.train(was_training)


@contextmanager
def _segments(model: ACTModel, segments: int | None) -> Iterator[None]:
    """Run with at most `segments` segments instead of the model's `halt_max_steps` (None: as trained)."""
    if segments is None:
        yield
        return
    if not isinstance(segments, int) or segments < 1:
        raise HRMError(f"segments must be a whole number of at least 1, got {segments!r}")
    trained = model.config.halt_max_steps
    model.config.halt_max_steps = segments
    try:
        yield
    finally:
        model.config.halt_max_steps = trained


class _Tracer:
    """Collects, for some rows of a batch, every segment and inner update (see docs/TRACE_SCHEMA.md).

    Residuals and PCA means are over the puzzle cells only: the puzzle-embedding positions in front
    of the sequence are excluded, so traces of models with and without a puzzle embedding compare."""

    def __init__(self, model: ACTModel, rows: Sequence[int]):
        self.model = model
        self.rows = list(rows)
        self.skip = model.inner.puzzle_emb_len
        self.segment = 0
        self.records: dict[int, dict[str, Any]] = {
            r: {"segments": [], "mean_H": [], "mean_L": [], "where": []} for r in self.rows
        }

    def begin_segment(self, carry: Carry, active: torch.Tensor) -> None:
        position = {int(a): i for i, a in enumerate(active.tolist())}
        self.live = [r for r in self.rows if r in position]
        self.sel = torch.tensor([position[r] for r in self.live], dtype=torch.long, device=carry.z_H.device)
        self.segment += 1
        self.steps: dict[int, list[dict[str, Any]]] = {r: [] for r in self.live}
        if self.live:
            self.prev_H = carry.z_H[self.sel, self.skip :].float()
            self.prev_L = carry.z_L[self.sel, self.skip :].float()

    def hook(self, kind: str, index: int, z_H: torch.Tensor, z_L: torch.Tensor) -> None:
        if not self.live:
            return
        h = z_H[self.sel]
        cells_H = h[:, self.skip :].float()
        cells_L = z_L[self.sel, self.skip :].float()
        if kind == "L":
            residual = (cells_L - self.prev_L).flatten(1).norm(dim=1)
        else:
            residual = (cells_H - self.prev_H).flatten(1).norm(dim=1)
        self.prev_H, self.prev_L = cells_H, cells_L
        logits, _, _ = self.model.inner.heads(h)
        answers = logits.argmax(-1).cpu().numpy()
        residual = residual.cpu().tolist()
        mean_H, mean_L = cells_H.mean(1).cpu(), cells_L.mean(1).cpu()
        for i, r in enumerate(self.live):
            self.steps[r].append(
                {"kind": kind, "index": int(index), "tokens": answers[i], "residual": residual[i]}
            )
            rec = self.records[r]
            rec["mean_H"].append(mean_H[i])
            rec["mean_L"].append(mean_L[i])
            rec["where"].append([self.segment, int(index)])

    def end_segment(self, outputs: dict[str, torch.Tensor], halted: torch.Tensor) -> None:
        if not self.live:
            return
        logits = outputs["logits"][self.sel].float()
        confidence = torch.softmax(logits, -1).amax(-1).cpu().numpy()
        tokens = logits.argmax(-1).cpu().numpy()
        q_halt = outputs["q_halt_logits"][self.sel].float()
        q_continue = outputs["q_continue_logits"][self.sel].float()
        signal = (q_halt > 0) if self.model.halt_on_q_halt_only else (q_halt > q_continue)
        flags = halted[self.sel].cpu().tolist()
        for i, r in enumerate(self.live):
            self.records[r]["segments"].append(
                {
                    "index": self.segment,
                    "tokens": tokens[i],
                    "q_halt": float(q_halt[i]),
                    "q_continue": float(q_continue[i]),
                    "halted": bool(flags[i]),
                    "halt_signal": bool(signal[i]),
                    "confidence": confidence[i],
                    "steps": self.steps[r],
                }
            )


@dataclass
class _RowResults:
    preds: np.ndarray  # [N, S] tokens of the answering segment
    q_halt: np.ndarray  # [N]
    q_continue: np.ndarray  # [N]
    steps: np.ndarray  # [N] segments run
    seconds: np.ndarray  # [N] batch time shared by its rows
    traces: dict[int, dict[str, Any]] = field(default_factory=dict)


def _device_of(model: ACTModel) -> torch.device:
    return model.inner.H_init.device


def run_rows(
    model: ACTModel,
    inputs: np.ndarray,
    identifiers: np.ndarray | None = None,
    *,
    halt: str = "adaptive",
    batch_size: int = DEFAULT_BATCH_SIZE,
    trace_rows: Sequence[int] = (),
) -> _RowResults:
    """Run encoded rows [N, seq_len] through the ACT loop in batches. A row that halts is frozen: it
    leaves the batch and keeps the answer of that segment."""
    if batch_size < 1:
        raise HRMError(f"batch size must be at least 1, got {batch_size}")
    inputs = np.asarray(inputs)
    n = inputs.shape[0]
    ids = np.zeros(n, dtype=np.int64) if identifiers is None else np.asarray(identifiers, dtype=np.int64)
    device = _device_of(model)
    max_steps = model.config.halt_max_steps
    preds = np.zeros(inputs.shape, dtype=np.int64)
    q_halt = np.zeros(n, dtype=np.float64)
    q_continue = np.zeros(n, dtype=np.float64)
    steps = np.zeros(n, dtype=np.int64)
    seconds = np.zeros(n, dtype=np.float64)
    traces: dict[int, dict[str, Any]] = {}
    wanted = sorted(set(int(r) for r in trace_rows))
    with _inference(model, halt):
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            started = time.perf_counter()
            batch = {
                "inputs": torch.from_numpy(inputs[lo:hi].astype(np.int32)).to(device),
                "puzzle_identifiers": torch.from_numpy(ids[lo:hi].astype(np.int32)).to(device),
            }
            local = [r - lo for r in wanted if lo <= r < hi]
            tracer = _Tracer(model, local) if local else None
            carry = model.initial_carry(batch)
            active = torch.arange(hi - lo)
            for _ in range(max_steps):
                if tracer is not None:
                    tracer.begin_segment(carry, active)
                carry, out = model(carry, batch, tracer.hook if tracer is not None else None)
                halted = carry.halted
                if tracer is not None:
                    tracer.end_segment(out, halted)
                done = halted.cpu()
                rows = (active[done] + lo).numpy()
                if rows.size:
                    preds[rows] = out["logits"][halted].argmax(-1).cpu().numpy()
                    q_halt[rows] = out["q_halt_logits"][halted].float().cpu().numpy()
                    q_continue[rows] = out["q_continue_logits"][halted].float().cpu().numpy()
                    steps[rows] = carry.steps[halted].cpu().numpy()
                if bool(done.all()):
                    break
                keep = ~halted
                active = active[~done]
                carry = Carry(
                    z_H=carry.z_H[keep],
                    z_L=carry.z_L[keep],
                    steps=carry.steps[keep],
                    halted=torch.zeros_like(carry.steps[keep], dtype=torch.bool),
                    current_data={k: v[keep] for k, v in carry.current_data.items()},
                )
                batch = {k: v[keep] for k, v in batch.items()}
            seconds[lo:hi] = (time.perf_counter() - started) / (hi - lo)
            if tracer is not None:
                for r in local:
                    traces[r + lo] = tracer.records[r]
    return _RowResults(preds, q_halt, q_continue, steps, seconds, traces)


def _pca(record: dict[str, Any]) -> dict[str, Any] | None:
    """Joint 2-D PCA of the per-step means of z_H and z_L (one set of axes for both)."""
    if not record["mean_H"]:
        return None
    mean_H = torch.stack(record["mean_H"]).double()
    mean_L = torch.stack(record["mean_L"]).double()
    x = torch.cat([mean_H, mean_L])
    x = x - x.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    k = min(2, vh.shape[0])
    axes = torch.zeros(2, x.shape[1], dtype=x.dtype)
    axes[:k] = vh[:k]
    total = float((s**2).sum())
    ratios = [float(s[i] ** 2) / total if total > 0 and i < k else 0.0 for i in range(2)]
    t = mean_H.shape[0]
    proj = x @ axes.T

    def pts(m: torch.Tensor) -> list[list[float]]:
        return [[round(float(a), 6), round(float(b), 6)] for a, b in m.tolist()]

    return {
        "method": "pca",
        "space": "mean over puzzle cells",
        "explained_variance": [round(r, 6) for r in ratios],
        "steps": record["where"],
        "z_H": pts(proj[:t]),
        "z_L": pts(proj[t:]),
    }


# --------------------------------------------------------------------------------------------------
# Models and ARC identifiers
# --------------------------------------------------------------------------------------------------


@dataclass
class _Model:
    model: ACTModel
    source: str | None
    label: str
    names: list[str] | None


def _resolve_model(model: Any, identifiers: Any = None) -> _Model:
    from hrm.checkpoint import LoadedModel, load_model

    if isinstance(model, (str, Path)):
        model = load_model(model)
    if isinstance(model, LoadedModel):
        act, source, extra = model.model, str(model.source), model.card.extra or {}
    elif isinstance(model, ACTModel):
        act, source, extra = model, None, {}
    else:
        raise HRMError(f"expected a model (ACTModel, LoadedModel or a path), got a {type(model).__name__}")
    label = f"model {source}" if source else "the model"
    names = _identifier_names(act, source, extra, identifiers)
    return _Model(act, source, label, names)


def _identifier_names(
    act: ACTModel, source: str | None, extra: dict[str, Any], given: Any
) -> list[str] | None:
    """Puzzle identifier names for ARC: given, in the model card, beside the checkpoint, or in the
    dataset of the run the checkpoint belongs to. Only names that match the embedding table count."""
    c = act.config
    if c.puzzle_emb_ndim == 0 or c.num_puzzle_identifiers <= 1:
        return None
    candidates: list[Any] = []
    if given is not None:
        candidates.append(given)
    if extra.get("identifiers"):
        candidates.append(extra["identifiers"])
    if source:
        from hrm.evaluate import _run_data_path

        candidates.append(Path(source).parent / "identifiers.json")
        data = _run_data_path(source)
        if data:
            candidates.append(Path(data) / "identifiers.json")
    for cand in candidates:
        names = cand
        if isinstance(cand, (str, Path)):
            path = Path(cand)
            if not path.is_file():
                if cand is given:
                    raise DataError(f"identifiers file {path} does not exist")
                continue
            try:
                names = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot read identifier names ({exc})") from None
        if isinstance(names, list) and len(names) == c.num_puzzle_identifiers:
            return [str(x) for x in names]
        if cand is given:
            raise DataError(
                f"{len(names) if isinstance(names, list) else 'no'} identifier names given but the model "
                f"has {c.num_puzzle_identifiers} puzzle identifiers"
            )
    return None


def arc_views(
    task: ArcTask, names: list[str] | None, colour_perms: int = 0, max_views: int | None = None, seed: int = 0
) -> list[tuple[str, int]]:
    """The augmented views an ARC task is solved under: (view name, model puzzle identifier).

    A task the model was trained on (its id among the identifier names) is seen under every variant
    of it in training, each with its own embedding, as in evaluation. Any other task is seen under
    the 8 dihedral transforms times (1 + `colour_perms`) colour permutations (the first the identity),
    all with the blank identifier 0: the model has no embedding for a task it never saw. The first
    view is always the task as given."""
    views: list[tuple[str, int]] = []
    if names:
        for ident, name in enumerate(names):
            if ident == 0 or name == BLANK_IDENTIFIER:
                continue
            try:
                base = parse_name(name)[0]
            except ValueError:
                continue
            if base == task.id:
                views.append((name, ident))
        views.sort(key=lambda v: (SEPARATOR in v[0], v[1]))
    if not views:
        rng = np.random.default_rng(seed)
        mappings = [_IDENTITY_COLOURS] + [random_colour_permutation(rng) for _ in range(max(colour_perms, 0))]
        for m_index, mapping in enumerate(mappings):
            for tid in range(NUM_DIHEDRAL):
                plain = tid == 0 and m_index == 0
                views.append((task.id if plain else augmented_name(task.id, tid, mapping), 0))
    if max_views is not None:
        views = views[: max(1, max_views)]
    return views


# --------------------------------------------------------------------------------------------------
# Solving
# --------------------------------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _grid_list(grid: np.ndarray) -> list[list[int]]:
    return np.asarray(grid).astype(int).tolist()


@dataclass
class _Job:
    puzzle: Puzzle
    lo: int
    hi: int
    views: list[tuple[str, int]] | None = None
    sudoku_augs: sudoku_data.SudokuAugmentations | None = None  # views 2.. of a Sudoku


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


def _encode(
    puzzle: Puzzle, resolved: _Model, arc_options: dict[str, Any], offset: int, views: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, _Job]:
    """The rows (tokens, puzzle identifiers) a puzzle is solved as, and its job over rows from `offset`."""
    if puzzle.kind == "sudoku":
        assert puzzle.cells is not None
        if views > 1:
            rows, augs = sudoku_views(puzzle.cells, views, seed)
            job = _Job(puzzle, offset, offset + len(rows), sudoku_augs=augs)
            return (rows + 1).astype(np.int64), np.zeros(len(rows), np.int64), job
        tokens = (puzzle.cells.reshape(1, -1) + 1).astype(np.int64)
        return tokens, np.zeros(1, np.int64), _Job(puzzle, offset, offset + 1)
    if puzzle.kind == "maze":
        assert puzzle.cells is not None
        tokens = puzzle.cells.reshape(1, -1).astype(np.int64)
        return tokens, np.zeros(1, np.int64), _Job(puzzle, offset, offset + 1)
    assert puzzle.task is not None
    named = arc_views(puzzle.task, resolved.names, **arc_options)
    rows, ids = [], []
    for name, ident in named:  # view-major, test input minor: the order `vote` expects
        for inp, _ in puzzle.task.test:
            rows.append(grid_to_seq(forward_transform(name, inp)))
            ids.append(ident)
    job = _Job(puzzle, offset, offset + len(rows), named)
    return np.stack(rows).astype(np.int64), np.array(ids, dtype=np.int64), job


def _decode_tokens(puzzle: Puzzle, tokens: np.ndarray, view: str | None = None) -> Grid:
    if puzzle.kind == "sudoku":
        assert puzzle.cells is not None
        return sudoku_digits(tokens, puzzle.cells.shape[0]).astype(int).tolist()
    if puzzle.kind == "maze":
        assert puzzle.cells is not None
        return _maze_chars(np.asarray(tokens).reshape(-1), puzzle.cells.shape[0])
    grid = crop_prediction(tokens)
    return _grid_list(_arc_inverse(view, grid))


def _arc_inverse(view: str | None, grid: np.ndarray) -> np.ndarray:
    from hrm.data.arc import inverse_transform

    return inverse_transform(view, grid) if view else grid


def _decode_confidence(puzzle: Puzzle, conf: np.ndarray, answer: Grid, view: str | None) -> list[list[float]]:
    if puzzle.kind == "arc":
        canvas = np.asarray(conf).reshape(MAX_GRID_SIZE, MAX_GRID_SIZE)
        rows = len(answer)
        cols = len(answer[0]) if rows else 0
        # The crop is taken in the view's frame; only the dihedral part moves cells.
        tid = parse_name(view)[1] if view else 0
        shape = (cols, rows) if tid in (1, 3, 6, 7) else (rows, cols)
        grid = inverse_dihedral_transform(canvas[: shape[0], : shape[1]], tid) if rows else canvas[:0, :0]
    else:
        assert puzzle.cells is not None
        n = puzzle.cells.shape[0]
        grid = np.asarray(conf).reshape(n, n)
    return np.round(grid.astype(np.float64), 4).tolist()


def _build_trace(
    puzzle: Puzzle,
    resolved: _Model,
    record: dict[str, Any],
    halt: str,
    final: dict[str, Any],
    view: str | None,
    with_pca: bool,
) -> dict[str, Any]:
    c = resolved.model.config
    segments = []
    for seg in record["segments"]:
        answer = _decode_tokens(puzzle, seg["tokens"], view)
        segments.append(
            {
                "index": seg["index"],
                "answer": answer,
                "q_halt": round(seg["q_halt"], 6),
                "q_continue": round(seg["q_continue"], 6),
                "halted": seg["halted"],
                "halt_signal": seg["halt_signal"],
                "confidence": _decode_confidence(puzzle, seg["confidence"], answer, view),
                "steps": [
                    {
                        "kind": step["kind"],
                        "index": step["index"],
                        "answer": _decode_tokens(puzzle, step["tokens"], view),
                        "residual": round(float(step["residual"]), 6),
                    }
                    for step in seg["steps"]
                ],
            }
        )
    puzzle_info: dict[str, Any] = {"name": puzzle.name, "grid": puzzle.grid}
    if puzzle.kind == "arc":
        assert puzzle.task is not None
        puzzle_info["task_id"] = puzzle.task.id
        puzzle_info["view"] = view or puzzle.task.id
    else:
        puzzle_info["text"] = puzzle.text
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {
            "name": model_name(resolved.model),
            "source": resolved.source,
            "seq_len": c.seq_len,
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "H_cycles": c.H_cycles,
            "L_cycles": c.L_cycles,
            "halt_max_steps": c.halt_max_steps,
            "puzzle_positions": resolved.model.inner.puzzle_emb_len,
            "halt_on_q_halt_only": bool(resolved.model.halt_on_q_halt_only),
        },
        "kind": puzzle.kind,
        "halt": halt,
        "residual_positions": "puzzle",
        "puzzle": puzzle_info,
        "segments": segments,
        "final": final,
        "pca": _pca(record) if with_pca else None,
    }


def _vote_sudoku_views(
    puzzle: Puzzle, job: _Job, res: _RowResults
) -> tuple[Grid, bool, str | None, float, int]:
    """The answer of a Sudoku solved under several views: each view's answer mapped back to the puzzle's
    frame; an answer that satisfies the rules comes first, then the one most views gave, then the
    highest mean Q-halt. Returns (answer, valid, reason, mean Q-halt of its views, views agreeing)."""
    assert puzzle.cells is not None and job.sudoku_augs is not None
    n = puzzle.cells.shape[0]
    digits = np.stack([sudoku_digits(res.preds[r], n).reshape(-1) for r in range(job.lo, job.hi)])
    digits[1:] = sudoku_data.invert_augmentations(digits[1:], job.sudoku_augs)
    groups: dict[bytes, list[int]] = {}
    for k, grid in enumerate(digits):
        groups.setdefault(grid.astype(np.int8).tobytes(), []).append(k)
    best = None
    for members in groups.values():
        grid = digits[members[0]]
        reason = check_sudoku(puzzle.cells, grid)
        q = float(np.mean(res.q_halt[job.lo + np.asarray(members)]))
        key = (reason is None, len(members), q)
        if best is None or key > best[0]:
            best = (key, grid, reason, q, len(members))
    assert best is not None
    _, grid, reason, q, agree = best
    return grid.reshape(n, n).astype(int).tolist(), reason is None, reason, q, agree


def _finish(
    puzzle: Puzzle, job: _Job, res: _RowResults, resolved: _Model, halt: str, with_pca: bool
) -> Solution:
    max_segments = resolved.model.config.halt_max_steps
    attempts = votes = None
    view = None
    agreement = None
    if job.sudoku_augs is not None:
        answer, valid, reason, q, agreement = _vote_sudoku_views(puzzle, job, res)
        segments = int(res.steps[job.lo : job.hi].max())
    elif puzzle.kind in ("sudoku", "maze"):
        row = job.lo
        tokens = res.preds[row]
        answer = _decode_tokens(puzzle, tokens)
        assert puzzle.cells is not None
        if puzzle.kind == "sudoku":
            reason = check_sudoku(puzzle.cells, np.asarray(answer))
        else:
            reason = check_maze(puzzle.cells, np.asarray(tokens).reshape(puzzle.cells.shape))
        valid: bool | None = reason is None
        q = float(res.q_halt[row])
        segments = int(res.steps[row])
    else:
        assert puzzle.task is not None and job.views is not None
        view = job.views[0][0]
        names = [BLANK_IDENTIFIER, *(name for name, _ in job.views)]
        n_tests = len(puzzle.task.test)
        local_ids = np.repeat(np.arange(1, len(job.views) + 1), n_tests)
        ranked = vote(local_ids, res.preds[job.lo : job.hi], res.q_halt[job.lo : job.hi], names)
        attempts, votes = [], []
        reasons, checked, solved = [], 0, 0
        top_q = []
        for t, (_, expected) in enumerate(puzzle.task.test):
            cands = ranked.get((puzzle.task.id, t), [])[:2]
            attempts.append([_grid_list(c.grid) for c in cands] or [[]])
            votes.append([c.votes for c in cands] or [0])
            if cands:
                top_q.append(cands[0].q_mean)
            if expected is not None:
                checked += 1
                target = grid_key(expected)
                hit = next((k for k, c in enumerate(cands) if grid_key(c.grid) == target), None)
                if hit is None:
                    shape = "x".join(str(s) for s in expected.shape)
                    label = f"test input {t + 1}: " if n_tests > 1 else ""
                    reasons.append(f"{label}neither attempt matches the expected {shape} output")
                else:
                    solved += 1
        valid = None if checked == 0 else solved == checked
        reason = "; ".join(reasons) or None
        answer = attempts[0][0]
        q = float(np.mean(top_q)) if top_q else float(res.q_halt[job.lo])
        segments = int(res.steps[job.lo : job.hi].max())
    solution = Solution(
        kind=puzzle.kind,
        puzzle=puzzle.text,
        answer=answer,
        valid=valid,
        reason=None if valid or valid is None else reason,
        segments=segments,
        max_segments=max_segments,
        halt=halt,
        confidence=_sigmoid(q),
        q_halt=q,
        seconds=float(res.seconds[job.lo : job.hi].sum()),
        name=puzzle.name,
        attempts=attempts,
        votes=votes,
        views=job.hi - job.lo if job.sudoku_augs is not None else 1,
        agreement=agreement,
    )
    record = res.traces.get(job.lo)
    if record is not None:
        final = {
            "answer": solution.answer,
            "valid": solution.valid,
            "reason": solution.reason,
            "segments": solution.segments,
            "q_halt": round(solution.q_halt, 6),
            "confidence": round(solution.confidence, 6),
            "seconds": round(solution.seconds, 6),
        }
        if attempts is not None:
            final["attempts"] = attempts
        solution.trace = _build_trace(puzzle, resolved, record, halt, final, view, with_pca)
    return solution


def solve_many(
    model: Any,
    puzzles: Sequence[Any],
    *,
    halt: str = "adaptive",
    trace: bool = False,
    kind: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    names: Sequence[str] | None = None,
    identifiers: Any = None,
    arc_colour_perms: int = 0,
    arc_max_views: int | None = None,
    seed: int = 0,
    pca: bool = True,
    views: int = 1,
    segments: int | None = None,
) -> list[Solution]:
    """Solve many puzzles of one kind in batches of `batch_size` rows; see `solve` for the arguments.
    `names` label each puzzle in errors (e.g. "puzzles.txt line 3"). With `trace`, every puzzle gets
    a trace (memory grows with the batch: trace few puzzles at a time)."""
    if not isinstance(views, int) or views < 1:
        raise HRMError(f"views must be a whole number of at least 1, got {views!r}")
    resolved = _resolve_model(model, identifiers)
    act = resolved.model
    parsed: list[Puzzle] = []
    for i, raw in enumerate(puzzles):
        label = names[i] if names is not None else None
        p = parse_puzzle(raw, kind, act.config, label)
        if parsed and p.kind != parsed[0].kind:
            raise DataError(f"{p.name}: a {p.kind} puzzle among {parsed[0].kind} puzzles")
        check_fits(p, act, resolved.label)
        parsed.append(p)
    if not parsed:
        return []
    if views > 1 and parsed[0].kind != "sudoku":
        raise HRMError(f"views apply to Sudoku puzzles, not to a {parsed[0].kind} (ARC has its own views)")
    arc_options = {"colour_perms": arc_colour_perms, "max_views": arc_max_views, "seed": seed}
    jobs, chunks, idents = [], [], []
    offset = 0
    for p in parsed:
        rows, ids, job = _encode(p, resolved, arc_options, offset, views, seed)
        jobs.append(job)
        chunks.append(rows)
        idents.append(ids)
        offset += len(rows)
    trace_rows = [job.lo for job in jobs] if trace else []
    with _segments(act, segments):
        res = run_rows(
            act,
            np.concatenate(chunks),
            np.concatenate(idents),
            halt=halt,
            batch_size=batch_size,
            trace_rows=trace_rows,
        )
        return [_finish(job.puzzle, job, res, resolved, halt, pca) for job in jobs]


def solve(
    model: Any,
    puzzle: Any,
    *,
    halt: str = "adaptive",
    trace: bool = False,
    kind: str | None = None,
    identifiers: Any = None,
    arc_colour_perms: int = 0,
    arc_max_views: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    pca: bool = True,
    views: int = 1,
    segments: int | None = None,
) -> Solution:
    """Solve one puzzle with `model` (an `ACTModel`, a `LoadedModel` from `hrm.checkpoint.load_model`,
    or anything `load_model` takes).

    `puzzle`: a Sudoku string, maze text, or an ARC task (dict, JSON text, `ArcTask`, path of a task
    JSON); `kind` ("sudoku", "maze", "arc") overrides detection. `halt`: "adaptive" stops when the Q
    head says so, "max" runs all `halt_max_steps` segments. `trace=True` attaches a reasoning trace
    (`solution.trace`, see docs/TRACE_SCHEMA.md; `pca=False` leaves out its 2-D projection).

    ARC: HRM maps the test input alone (the demonstrations are not shown to it) under the puzzle
    embedding of the task. A task the model was trained on is solved under all its training variants
    with their embeddings, found through `identifiers` (a list of names or an identifiers.json path;
    by default the model card, the checkpoint directory, or the run's dataset). A task not among the
    training identifiers uses the blank identifier 0 under the 8 dihedral views, each times
    `arc_colour_perms` extra random colour permutations (drawn from `seed`). The views' predictions are
    mapped back and voted as in evaluation (`hrm.data.arc_eval.vote`); the top two are the attempts.
    `arc_max_views` caps the number of views; they run in batches of `batch_size` rows.

    Sudoku, `views` > 1: the puzzle is also solved under `views - 1` random symmetric transforms of it
    (drawn from `seed`), each answer is mapped back, and the answer kept is one that satisfies the
    rules, else the one most views gave (`solution.agreement` views). The trace is the first view's.

    `segments` runs at most that many segments instead of the model's `halt_max_steps` (a recursive
    model can go on refining past the number it was trained with).
    """
    started = time.perf_counter()
    (solution,) = solve_many(
        model,
        [puzzle],
        halt=halt,
        trace=trace,
        kind=kind,
        batch_size=batch_size,
        identifiers=identifiers,
        arc_colour_perms=arc_colour_perms,
        arc_max_views=arc_max_views,
        seed=seed,
        pca=pca,
        views=views,
        segments=segments,
    )
    solution.seconds = time.perf_counter() - started
    if solution.trace is not None:
        solution.trace["final"]["seconds"] = round(solution.seconds, 6)
    return solution


# --------------------------------------------------------------------------------------------------
# Traces on disk
# --------------------------------------------------------------------------------------------------


def trace_schema() -> dict[str, Any]:
    """The JSON Schema of a trace (`trace_schema.json`)."""
    return json.loads(SCHEMA_PATH.read_text())


def validate_trace(trace: dict[str, Any]) -> None:
    """Raise HRMError when `trace` does not follow the schema (needs the `jsonschema` package)."""
    try:
        import jsonschema
    except ImportError:
        raise HRMError("validating a trace needs the jsonschema package (pip install jsonschema)") from None
    try:
        jsonschema.validate(trace, trace_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise HRMError(f"trace does not follow schema {SCHEMA_VERSION} at {where}: {exc.message}") from None


def write_trace(solution: Solution | dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a solution's trace as JSON, atomically (a temporary file renamed into place)."""
    trace = solution.trace if isinstance(solution, Solution) else solution
    if trace is None:
        raise HRMError("this solution has no trace; solve with trace=True")
    path = Path(path)
    if path.is_dir():
        raise HRMError(f"cannot write the trace to {path}: it is a directory")
    if path.parent and not path.parent.is_dir():
        raise HRMError(f"cannot write the trace to {path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(trace, separators=(",", ":")))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "Puzzle",
    "Solution",
    "arc_views",
    "check_fits",
    "check_maze",
    "check_sudoku",
    "detect_kind",
    "format_sudoku",
    "kind_for_config",
    "parse_arc",
    "parse_maze",
    "parse_puzzle",
    "parse_sudoku",
    "run_rows",
    "solve",
    "solve_many",
    "trace_schema",
    "validate_trace",
    "write_trace",
]
