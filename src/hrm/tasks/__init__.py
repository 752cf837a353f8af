"""Puzzle kinds: one `Task` per kind (Sudoku, maze, ARC), and the lookups that pick one.

    from hrm.tasks import task_for, task_named
    task = task_for(config=model.config)          # the kind a model fits, when exactly one does
    puzzle = task_named("maze").parse(open("maze.txt").read())   # DataError naming what is wrong

A new kind is a `Task` subclass added to `TASKS`; nothing else branches on kinds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hrm.errors import ConfigError, DataError
from hrm.tasks.arc import ARCTask
from hrm.tasks.base import (
    MAX_VIEWER_SIDE,
    Answer,
    DatasetScore,
    Encoding,
    Grid,
    Puzzle,
    RowAnswers,
    SolveOptions,
    Task,
)
from hrm.tasks.maze import MazeTask
from hrm.tasks.sudoku import SudokuTask

if TYPE_CHECKING:  # pragma: no cover
    from hrm.models.losses import AnswerLabels

# In the order text is recognised: a JSON object is ARC, maze marks make a maze, digits a Sudoku.
TASKS: tuple[Task, ...] = (ARCTask(), MazeTask(), SudokuTask())
KINDS: tuple[str, ...] = tuple(t.name for t in TASKS)


def describe_tasks() -> list[dict[str, Any]]:
    """Every kind's `Task.describe()`, in the order the viewer lists them (`Task.menu_order`)."""
    return [task.describe() for task in sorted(TASKS, key=lambda t: t.menu_order)]


def task_named(name: str) -> Task:
    """The task of a kind name; DataError for an unknown one."""
    for task in TASKS:
        if task.name == name:
            return task
    raise DataError(f"unknown puzzle kind {name!r}; expected one of {', '.join(KINDS)}")


def tasks_fitting(seq_len: int, vocab_size: int) -> list[Task]:
    return [t for t in TASKS if t.fits(int(seq_len), int(vocab_size))]


def task_for_shape(seq_len: int, vocab_size: int) -> Task | None:
    """The one task a model or dataset of this shape is (None when none or several fit)."""
    found = tasks_fitting(seq_len, vocab_size)
    return found[0] if len(found) == 1 else None


def answer_labels_for(
    targets: str, seq_len: int, vocab_size: int, data: str, option: str
) -> AnswerLabels | None:
    """The loss head's choice of labels among right answers for `targets` (see `hrm.config.Targets`):
    None for the dataset's labels; for closest_answer, the `Task.closest_answer_labels` of the
    dataset's kind (`data`, of this shape). ConfigError naming `data` and `option` (how the user asked
    for it) when that kind's puzzles have one right answer."""
    if targets == "label":
        return None
    task = task_for_shape(seq_len, vocab_size)
    if task is None or not task.several_answers:
        holds = (
            f"{task.title} puzzles, which have one right answer" if task else "puzzles of no one known kind"
        )
        raise ConfigError(
            f"{option} needs puzzles with several right answers (mazes), but {data} holds {holds}"
        )
    return task.closest_answer_labels


def task_for(puzzle: Any = None, config: Any = None, suffix: str = "") -> Task:
    """The task of a puzzle: an object a task accepts (an ARC task dict), a file suffix a task owns
    (`.json`), text told from its characters; where they cannot tell, the one the model config
    (`seq_len`, `vocab_size`) fits; Sudoku when nothing tells."""
    for task in TASKS:
        if (suffix and suffix in task.file_suffixes) or task.accepts(puzzle):
            return task
    if isinstance(puzzle, str):
        for task in TASKS:
            if task.claims(puzzle):
                return task
    if config is not None:
        fitting = task_for_shape(config.seq_len, config.vocab_size)
        if fitting is not None:
            return fitting
    return task_named("sudoku")


__all__ = [
    "KINDS",
    "MAX_VIEWER_SIDE",
    "TASKS",
    "Answer",
    "DatasetScore",
    "Encoding",
    "Grid",
    "Puzzle",
    "RowAnswers",
    "SolveOptions",
    "Task",
    "describe_tasks",
    "task_for",
    "task_for_shape",
    "task_named",
    "tasks_fitting",
]
