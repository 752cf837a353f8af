"""`hrm data ...`: build datasets (sudoku, maze, arc) and validate dataset directories.

Everything heavy (numpy, the builders) is imported inside the handlers, so `hrm --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# Builders written beside this module that expose add_arguments(parser) and run(args) -> int. Each
# is registered only when its module exists, so a checkout without one still works.
OPTIONAL_BUILDERS = {
    "maze": ("hrm.data.maze", "build a maze path-finding dataset"),
    "arc": ("hrm.data.arc", "build an ARC-AGI dataset"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser(
        "data",
        help="build puzzle datasets and check dataset directories",
        description="Build puzzle datasets in the reference HRM format, or check a dataset directory.",
    )
    data.set_defaults(handler=lambda args: _print_help(data))
    sub = data.add_subparsers(dest="data_command", metavar="DATASET", parser_class=type(data))

    sudoku = sub.add_parser(
        "sudoku",
        help="build a sudoku dataset (from a file, the published Sudoku-Extreme set, or generated)",
        description=(
            "Build a sudoku dataset: train (augmented --num-aug times) and test (never augmented) splits. "
            "Puzzles come from --from FILE (one puzzle per line, or the Sudoku-Extreme CSV), --download "
            "(the published Sudoku-Extreme set, needs huggingface_hub and network), or are generated "
            "(--count N --size --difficulty). Same --seed, same bytes."
        ),
    )
    _sudoku_arguments(sudoku)
    sudoku.set_defaults(handler=_run_sudoku)

    validate = sub.add_parser(
        "validate",
        help="check a dataset directory (shapes, value ranges, indices, metadata)",
        description="Check a dataset directory; prints OK and a summary, or every problem found (exit 1).",
    )
    validate.add_argument("path", metavar="DIR", help="dataset directory")
    validate.set_defaults(handler=_run_validate)

    for name, (module_name, help_text) in OPTIONAL_BUILDERS.items():
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        module = importlib.import_module(module_name)
        parser = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(parser)
        parser.set_defaults(handler=module.run)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _sudoku_arguments(p: argparse.ArgumentParser) -> None:
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
    opts.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    opts.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed or unsolvable puzzles instead of stopping"
    )
    opts.add_argument("--out", required=True, metavar="DIR", help="dataset directory to write")
    opts.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    opts.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_sudoku(args: argparse.Namespace) -> int:
    from hrm.data.sudoku import build_sudoku_dataset

    summary = build_sudoku_dataset(
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
    )
    print(summary.format())
    return 0


def _run_validate(args: argparse.Namespace) -> int:
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
