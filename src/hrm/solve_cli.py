"""`hrm solve`: argument parsing, reading puzzle files and printing; the work is in hrm.solve.

hrm solve --model runs/sudoku4 "1.3.|..1. 4...|.1.."
hrm solve --model runs/maze30 --file mazes.csv --halt max --json
hrm solve --model runs/arc --trace trace.json path/to/task.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

KIND_CHOICES = ("sudoku", "maze", "arc")
CSV_QUESTION = "question"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="solve a puzzle (or a file of puzzles) with a trained model and check the answer",
        description=(
            "Solve a Sudoku (16/36/81 cells, '.' or '0' blanks, separators | - + and spaces ignored), "
            "a maze (rows over '# SGo', or one line of N*N characters) or an ARC task (a task JSON file), "
            "print the answer, the rule check, the segments used and the halting confidence."
        ),
    )
    p.add_argument(
        "puzzle",
        nargs="?",
        help="the puzzle text, a file holding one puzzle (an ARC task .json, a maze as text), "
        "or '-' for stdin",
    )
    p.add_argument(
        "--model",
        "-m",
        required=True,
        help="run dir, checkpoint dir, weights file, packaged model name, or reference checkpoint dir",
    )
    p.add_argument(
        "--file",
        "-f",
        metavar="FILE",
        help="many puzzles: one per line (Sudoku lines, maze lines of N*N characters, or a CSV with a "
        "'question' column), or an ARC task JSON / Kaggle challenges JSON",
    )
    p.add_argument(
        "--kind", choices=KIND_CHOICES, help="puzzle kind (default: told from the input and model)"
    )
    p.add_argument(
        "--halt",
        choices=("adaptive", "max"),
        default="adaptive",
        help="adaptive: stop when the Q head says so (default); max: run every segment, as evaluation does",
    )
    p.add_argument(
        "--halt-margin",
        type=float,
        default=None,
        metavar="M",
        help="adaptive halting stops once Q-halt exceeds Q-continue (or 0) by M "
        "(default: the model card's halt_margin, else 0, the reference rule)",
    )
    p.add_argument("--trace", metavar="PATH", help="write the reasoning trace of the puzzle as JSON")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (default 256)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even if EMA weights exist")
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        help="forward dtype (default: the model card's)",
    )
    p.add_argument(
        "--identifiers",
        metavar="FILE",
        help="ARC: the training identifiers.json (default: found beside the checkpoint or in its run's data)",
    )
    p.add_argument(
        "--colour-perms",
        type=int,
        default=0,
        metavar="K",
        help="ARC task unknown to the model: K random colour permutations per dihedral view (default 0)",
    )
    p.add_argument("--max-views", type=int, default=None, metavar="V", help="ARC: use at most V views")
    p.add_argument(
        "--segments",
        type=int,
        default=None,
        metavar="N",
        help="run at most N segments (default: the model's halt_max_steps, as trained)",
    )
    p.add_argument(
        "--views",
        type=int,
        default=1,
        metavar="K",
        help="Sudoku: also solve K-1 random symmetric transforms of the puzzle and keep an answer that "
        "satisfies the rules, else the one most views gave (default 1: the puzzle as given)",
    )
    p.set_defaults(handler=run)


def _is_comment(line: str) -> bool:
    """'#' lines are comments in Sudoku files; a maze row also starts with '#' but holds S and G."""
    if not line.startswith("#"):
        return False
    return not (set(line) <= set("# SGo") and "S" in line and "G" in line)


def read_puzzle_file(path: str | Path) -> list[tuple[str, Any]]:
    """(name, puzzle) pairs of a file: an ARC task JSON (or a Kaggle challenges JSON of many tasks),
    a CSV with a 'question' column, or one puzzle per line ('#' comment lines and blank lines skipped)."""
    from hrm.errors import DataError
    from hrm.inference.solve import read_text
    from hrm.tasks import task_for

    path = Path(path)
    if path.is_dir():
        raise DataError(f"--file {path}: is a directory, not a puzzle file")
    text = read_text(path)
    collection = task_for(text, suffix=path.suffix).read_collection(text, str(path))
    if collection is not None:
        return list(collection)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: no puzzles in the file")
    header = [h.strip().lower() for h in lines[first].split(",")]
    if CSV_QUESTION in header and len(header) > 1:
        column = header.index(CSV_QUESTION)
        out = []
        reader = csv.reader(io.StringIO("\n".join(lines[first + 1 :])))
        try:
            for offset, row in enumerate(reader, start=first + 2):
                if not row or not any(field.strip() for field in row):
                    continue
                if len(row) <= column:
                    raise DataError(
                        f"{path} line {offset}: has {len(row)} fields, no '{CSV_QUESTION}' column"
                    )
                out.append((f"{path} line {offset}", row[column]))
        except csv.Error as exc:
            raise DataError(f"{path}: unreadable CSV ({exc})") from None
        if not out:
            raise DataError(f"{path}: no puzzles in the file")
        return out
    out = [
        (f"{path} line {n}", line.rstrip("\r\n"))
        for n, line in enumerate(lines, start=1)
        if line.strip() and not _is_comment(line)
    ]
    if not out:
        raise DataError(f"{path}: no puzzles in the file")
    return out


def _one_puzzle(text: str) -> tuple[str, Any]:
    """The positional PUZZLE: '-' (stdin), a file of one puzzle, or the puzzle text itself."""
    if text == "-":
        return "puzzle from stdin", sys.stdin.read()
    path = Path(text)
    if "\n" not in text and len(text) < 4096 and (path.suffix == ".json" or path.is_file()):
        return str(path), path
    return "", text


def check_options(args: argparse.Namespace) -> None:
    """ConfigError for a count out of its range (the maxima are in `hrm.limits`), before any work."""
    from hrm.errors import ConfigError
    from hrm.limits import MAX_BATCH_ROWS, MAX_SEGMENTS, MAX_VIEWS

    ranges = [
        ("--batch-size", args.batch_size, 1, MAX_BATCH_ROWS),
        ("--colour-perms", args.colour_perms, 0, MAX_VIEWS // 8 - 1),  # 8 dihedral views each
        ("--max-views", args.max_views, 1, MAX_VIEWS),
        ("--segments", args.segments, 1, MAX_SEGMENTS),
        ("--views", args.views, 1, MAX_VIEWS),
    ]
    for flag, value, low, high in ranges:
        if value is not None and value < low:
            least = "zero or positive" if low == 0 else f"at least {low}"
            raise ConfigError(f"{flag} must be {least}, got {value}")
        if value is not None and value > high:
            raise ConfigError(f"{flag} must be at most {high}, got {value}")


def run(args: argparse.Namespace) -> int:
    from hrm.checkpoint import load_model
    from hrm.distributed import pick_device
    from hrm.errors import ConfigError
    from hrm.fileio import NON_FINITE_WARNING, json_safe, warn
    from hrm.inference import solve_many, write_trace

    if (args.puzzle is None) == (args.file is None):
        raise ConfigError("give one puzzle (PUZZLE) or a file of puzzles (--file FILE), not both or neither")
    check_options(args)
    if args.file is not None:
        entries = read_puzzle_file(args.file)
    else:
        entries = [_one_puzzle(args.puzzle)]
    if args.trace and len(entries) != 1:
        raise ConfigError(f"--trace records one puzzle, but {args.file} holds {len(entries)}")
    names: list[str] = []
    puzzles: list[Any] = []
    for name, puzzle in entries:
        names.append(name or "")
        puzzles.append(puzzle)

    loaded = load_model(
        args.model, device=pick_device(args.device), use_ema=not args.no_ema, forward_dtype=args.dtype
    )
    solutions = solve_many(
        loaded,
        puzzles,
        halt=args.halt,
        trace=bool(args.trace),
        kind=args.kind,
        batch_size=args.batch_size,
        names=[n or None for n in names],
        identifiers=args.identifiers,
        arc_colour_perms=args.colour_perms,
        arc_max_views=args.max_views,
        views=args.views,
        segments=args.segments,
        halt_margin=args.halt_margin,
    )
    if args.trace:
        write_trace(solutions[0].trace, args.trace)
    if any(not math.isfinite(s.q_halt) for s in solutions):
        warn(NON_FINITE_WARNING)
    checked = [s for s in solutions if s.valid is not None]
    valid = sum(bool(s.valid) for s in checked)
    if args.json:
        report: dict[str, Any] = {
            "model": str(loaded.source),
            "halt": args.halt,
            "solutions": [s.to_dict() for s in solutions],
            "summary": {
                "puzzles": len(solutions),
                "checked": len(checked),
                "valid": valid,
                "mean_segments": sum(s.segments for s in solutions) / len(solutions),
                "seconds": round(sum(s.seconds for s in solutions), 6),
            },
        }
        if args.trace:
            report["trace"] = str(args.trace)
        json.dump(json_safe(report), sys.stdout, ensure_ascii=False, allow_nan=False)
        print()
        return 0
    if len(solutions) == 1 and args.file is None:
        s = solutions[0]
        print(s.format())
        print(s.summary())
    else:
        for s in solutions:
            answer = s.format_line()
            if "\n" in answer:
                print(f"{s.name}: {s.verdict()}; segments {s.segments}; confidence {s.confidence:.3f}")
                print(answer)
            else:
                print(
                    f"{s.name}: {answer} {s.verdict()}; segments {s.segments}; confidence {s.confidence:.3f}"
                )
        share = f" ({100.0 * valid / len(checked):.1f}%)" if checked else ""
        mean_segments = sum(s.segments for s in solutions) / len(solutions)
        print(
            f"valid: {valid} of {len(checked)} checked{share}; {len(solutions)} puzzles; "
            f"mean segments {mean_segments:.2f} ({args.halt} halting); "
            f"{sum(s.seconds for s in solutions):.2f} s"
        )
    if args.trace:
        print(f"wrote trace {args.trace}")
    return 0
