"""The `Task` interface: everything that differs between puzzle kinds, in one place per kind.

A task knows how its puzzles look as text or JSON (`claims`, `parse`), whether a model or dataset of
a given shape is one of its kind (`fits`), how a puzzle becomes the token rows a model reads
(`encode`) and how the model's answer rows become an answer again (`answer`, `decode`), the rules an
answer must satisfy (`check_grid`), how it prints (`format`) and what the viewer needs (`describe`,
`grid_of_tokens`, `puzzle_of_example`, `solver_answer`, `generate`). Code outside `hrm.tasks` asks a
task; it never branches on the kind's name.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hrm.errors import DataError

if TYPE_CHECKING:
    import torch

# A grid as the API gives it: Sudoku digits, maze characters or ARC colours, row by row.
Grid = list[list[Any]]
# The largest grid side the viewer takes from a user or generates (ARC's canvas is 30x30 too).
MAX_VIEWER_SIDE = 30


@dataclass
class Puzzle:
    """A parsed puzzle: its task's name, a label for messages, the text it prints as (Sudoku: one line
    with '.' blanks; maze: N rows; ARC: the task id), its input grid (ARC: the first test input) and
    the task's own representation of it (`payload`: digits, maze tokens or an ARC task)."""

    kind: str
    name: str
    text: str
    grid: Grid
    payload: Any


@dataclass
class SolveOptions:
    """How puzzles are turned into rows: `views` symmetric views (tasks with `symmetric_views`),
    `seed` for any random views, and for tasks that use puzzle identifiers the identifier names the
    model was trained with, the extra colour permutations and a cap on the number of views."""

    views: int = 1
    seed: int = 0
    identifier_names: list[str] | None = None
    colour_perms: int = 0
    max_views: int | None = None


@dataclass
class Encoding:
    """The rows a puzzle is solved as: tokens [R, seq_len], puzzle identifiers [R], what the task needs
    to read the answers back (`context`) and the frame the first row is in (`view`, for traces)."""

    rows: np.ndarray
    identifiers: np.ndarray
    context: Any = None
    view: str | None = None


@dataclass
class RowAnswers:
    """The model's answers for the rows of one puzzle, each from the segment where it halted."""

    preds: np.ndarray  # [R, seq_len] tokens
    q_halt: np.ndarray  # [R]
    steps: np.ndarray  # [R] segments run


@dataclass
class Answer:
    """A task's reading of its rows: the answer grid, the rule check (None: cannot be checked), the
    Q-halt logit it is judged by, and what some tasks add (several attempts with their votes, how
    many symmetric views agree)."""

    grid: Grid
    valid: bool | None
    reason: str | None
    q_halt: float
    segments: int
    attempts: list[Grid] | None = None
    votes: list[list[int]] | None = None
    agreement: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetScore:
    """A task's own score of a whole evaluated dataset beyond exact accuracy (ARC: pass@k after
    voting): the numbers for the report, a line to print, and the files it writes (name -> JSON)."""

    summary: dict[str, Any]
    text: str
    files: dict[str, Any] = field(default_factory=dict)


class Task(abc.ABC):
    """One puzzle kind. Subclasses are stateless; `hrm.tasks.TASKS` holds one instance of each."""

    name: ClassVar[str]  # the kind's name in traces, CLI choices and the viewer
    title: ClassVar[str]  # for messages ("Sudoku", "maze", "ARC task")
    symmetric_views: ClassVar[bool] = False  # `SolveOptions.views` > 1 applies
    generates: ClassVar[bool] = False  # `generate` makes new puzzles
    file_suffixes: ClassVar[tuple[str, ...]] = ()  # a file with one of these holds one of its puzzles
    menu_order: ClassVar[int] = 100  # where the viewer lists the kind among the others (lower first)
    # A puzzle may have several right answers, and `closest_answer_labels` picks one to learn.
    several_answers: ClassVar[bool] = False

    # -- which shapes and inputs are this kind -------------------------------------------------------
    @abc.abstractmethod
    def fits(self, seq_len: int, vocab_size: int) -> bool:
        """Whether a model or dataset of this sequence length and vocabulary is of this kind."""

    @abc.abstractmethod
    def claims(self, text: str) -> bool:
        """Whether `text` reads as this kind's puzzle from its characters alone."""

    def accepts(self, raw: Any) -> bool:
        """Whether `raw`, an object other than text, is one of this kind's puzzles (ARC: a task dict)."""
        return False

    @abc.abstractmethod
    def parse(self, raw: Any, name: str | None = None, task_id: str | None = None) -> Puzzle:
        """A puzzle from text (ARC: also a task dict or JSON text); DataError naming the input."""

    def read_collection(self, text: str, origin: str) -> list[tuple[str, Puzzle]] | None:
        """The puzzles of a whole file in this kind's own file format (ARC: a task JSON, or a JSON
        object of tasks keyed by id), named for messages; None when the kind has no such format and
        its files hold one puzzle per line."""
        return None

    @abc.abstractmethod
    def shape(self, puzzle: Puzzle) -> tuple[int, int, str]:
        """(sequence length, tokens needed, a description such as 'a 9x9 sudoku (81 cells)')."""

    def check_fits(
        self, puzzle: Puzzle, seq_len: int, vocab_size: int, model_label: str = "the model"
    ) -> None:
        """DataError when the puzzle's sequence or tokens do not fit a model of this shape."""
        need_len, need_vocab, what = self.shape(puzzle)
        if need_len != seq_len:
            side = math.isqrt(seq_len)
            square = f", i.e. {side}x{side}" if side * side == seq_len else ""
            raise DataError(
                f"{puzzle.name}: {what} does not fit {model_label}, which takes {seq_len} cells{square}"
            )
        if need_vocab > vocab_size:
            raise DataError(
                f"{puzzle.name}: {what} needs {need_vocab} tokens but {model_label} knows only {vocab_size}"
            )

    # -- to the model and back -------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, puzzle: Puzzle, options: SolveOptions) -> Encoding:
        """The rows the puzzle is solved as."""

    @abc.abstractmethod
    def answer(self, puzzle: Puzzle, encoding: Encoding, rows: RowAnswers) -> Answer:
        """The answer the puzzle's rows give, checked against the rules or the known output."""

    @abc.abstractmethod
    def decode(self, puzzle: Puzzle, tokens: np.ndarray, view: str | None = None) -> Grid:
        """One row's tokens as a grid in the puzzle's frame (`view`: the frame the row is in)."""

    def decode_confidence(
        self, puzzle: Puzzle, confidence: np.ndarray, answer: Grid, view: str | None = None
    ) -> list[list[float]]:
        """Per-cell confidence [seq_len] laid out like `decode`'s answer grid."""
        n = len(puzzle.grid)
        return np.round(np.asarray(confidence, dtype=np.float64).reshape(n, n), 4).tolist()

    # -- rules and printing ----------------------------------------------------------------------
    @abc.abstractmethod
    def check_grid(self, puzzle_grid: Grid, answer: Grid, expected: Grid | None = None) -> dict[str, Any]:
        """{"valid": bool | None, "reason": str | None} for an answer grid to a puzzle grid as traces
        hold them (the rules where the task has them, else equality with `expected`)."""

    @abc.abstractmethod
    def format(self, grid: Grid) -> str:
        """A grid as terminal text."""

    def format_line(self, grid: Grid) -> str:
        """A grid as one line where it has one, for lists of answers (else the multi-line text)."""
        return self.format(grid)

    def format_answer(self, answer: Answer) -> str:
        """What `hrm solve` prints as the answer."""
        return self.format(answer.grid)

    # -- the viewer --------------------------------------------------------------------------------
    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the viewer needs to draw and offer this kind without knowing its name (JSON):

        - "name": the kind's name, as in traces and the API's "kind";
        - "title": how menus name it ("Sudoku", "Maze", "ARC task");
        - "style": how cells are drawn and judged: "digits" (numbers, 0 blank; givens kept from the
          input, the answer's digits right or wrong), "path" (characters; the answer marks a path with
          'o', judged against the expected path) or "colours" (colour indices 0-9, each cell right or
          wrong against the expected grid);
        - "cell_px": the largest a cell is drawn, in pixels;
        - "boxes": {side (as text, a JSON key): [box rows, box cols]} for square grids drawn with box
          lines, or None;
        - "generate": None when `generate` makes no puzzles, else {"sizes": the sides offered, one menu
          entry each, or "size_range": [min, max], a side typed in; "difficulties": those offered,
          possibly none};
        - "input_hint": what to type into the puzzle box, as a phrase ("a maze (rows over '# SG')");
        - "json_input": whether the puzzle is typed as a JSON object;
        - "score_series": `score_series`, the keys of `score_dataset`'s summary the run page plots.
        """

    @abc.abstractmethod
    def grid_of_tokens(self, tokens: np.ndarray, label: bool = False) -> Grid | None:
        """A dataset row as a grid; None for a label row that holds no answer (or tokens that are not
        a grid of this kind)."""

    @abc.abstractmethod
    def puzzle_of_example(
        self, grid: Grid, label: Grid | None, name: str, identifier: str, original: dict[str, Any] | None
    ) -> Puzzle:
        """The puzzle of a dataset example (its input grid as `grid_of_tokens` gave it; `original`:
        the task the example was made from, where the dataset keeps it)."""

    # The cells of this kind's grids as traces hold them (`check_trace_grid`): their Python type and
    # the values they take.
    cell_type: ClassVar[type] = int
    cell_values: ClassVar[frozenset[Any]] = frozenset()

    def check_trace_grid(self, grid: Any, where: str, puzzle: Grid | None = None) -> None:
        """DataError naming `where` unless `grid` is a grid of this kind as a trace holds it: rows of
        equal length, at most MAX_VIEWER_SIDE each way, every cell one of `cell_values`. With `puzzle`
        it is an answer to that puzzle grid (`trace_grid_problem` says what else it must be)."""
        if not isinstance(grid, list) or not all(isinstance(row, list) for row in grid):
            raise DataError(f"{where}: the grid is not a list of rows")
        if len(grid) > MAX_VIEWER_SIDE or any(len(row) != len(grid[0]) for row in grid):
            raise DataError(f"{where}: the grid is not rectangular, or more than {MAX_VIEWER_SIDE} rows")
        if grid and len(grid[0]) > MAX_VIEWER_SIDE:
            raise DataError(f"{where}: the grid is more than {MAX_VIEWER_SIDE} cells wide")
        for row in grid:
            if not all(type(v) is self.cell_type for v in row) or not set(row) <= self.cell_values:
                bad = next(v for v in row if type(v) is not self.cell_type or v not in self.cell_values)
                raise DataError(f"{where}: {bad!r} is not a {self.title} cell")
        problem = self.trace_grid_problem(grid, puzzle)
        if problem:
            raise DataError(f"{where}: {problem}")

    def trace_grid_problem(self, grid: Grid, puzzle: Grid | None) -> str | None:
        """What is wrong with the shape of a well-formed grid (`check_trace_grid`): a puzzle grid when
        `puzzle` is None, else an answer to it. By default a puzzle must not be empty."""
        return "the puzzle grid is empty" if puzzle is None and not grid else None

    def known_answer(self, puzzle: Puzzle) -> Grid | None:
        """The answer the puzzle carries itself (an ARC task's test output), if any."""
        return None

    def solver_answer(self, puzzle_grid: Grid) -> tuple[Grid | None, str | None]:
        """An exact solver's answer to a puzzle grid and where it came from, or (None, None)."""
        return None, None

    # -- evaluation ------------------------------------------------------------------------------------
    scores_datasets: ClassVar[bool] = False  # `score_dataset` needs the per-example predictions
    # The keys of `score_dataset`'s summary followed during training: the progress line shows them
    # and the viewer's run page plots them.
    score_series: ClassVar[tuple[str, ...]] = ()

    def score_dataset(
        self, predictions: dict[str, dict[str, np.ndarray]], data_dir: Path
    ) -> DatasetScore | None:
        """The task's own score of evaluation predictions (`hrm.evaluate.evaluate(collect=True)`) on the
        dataset in `data_dir`, or None when it has none beyond the ACT metrics."""
        return None

    def closest_answer_labels(
        self, inputs: torch.Tensor, labels: torch.Tensor, logprobs: torch.Tensor
    ) -> torch.Tensor:
        """Training labels for a batch of encoded puzzles (`inputs`, `labels`: [B, L]) when a puzzle may
        have several right answers: per row, the right answer the model's `logprobs` ([B, L, vocab])
        make most likely. A learner is then never told that a right answer other than the one the
        dataset stored is wrong (see `several_answers`)."""
        raise ValueError(f"a {self.title} has one right answer: there is none to choose")

    def check_generate(self, size: int, difficulty: str | None) -> None:
        """ValueError when `generate` cannot make a puzzle of this size and difficulty (ones `describe`
        offers; None: the kind's default; a kind without difficulty levels ignores it)."""
        raise ValueError(f"{self.title} puzzles cannot be generated")

    def generate(
        self, size: int, difficulty: str | None, rng: np.random.Generator, min_path_length: int | None = None
    ) -> dict[str, Any]:
        """A new puzzle: {"text", "grid", "solution", ...}."""
        raise DataError(f"{self.title} puzzles cannot be generated")


def short(text: str, limit: int = 40) -> str:
    """A puzzle text shortened for messages."""
    flat = " ".join(text.split()) if "\n" in text else text
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
