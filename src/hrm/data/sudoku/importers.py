"""Reading sudokus: one-puzzle-per-line text files (each puzzle solved, within the exact solver's
search-step budget, to check it has one solution), the published Sudoku-Extreme CSV, and its optional
download.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hrm.data.build import CSV_HEADER
from hrm.data.sudoku.collection import SudokuCollection
from hrm.data.sudoku.solver import (
    SIZES,
    SolveStats,
    find_conflict,
    gave_up_reason,
    rate_difficulty,
    solve_exact_many,
    valid_grids,
)
from hrm.errors import DataError, a_grid

HF_REPO = "sapientinc/sudoku-extreme"
_SIZE_OF_LENGTH = {n * n: n for n in SIZES}  # a text line of 16, 36 or 81 cells


def _rating_from(guesses: int, hidden: int) -> str:
    return rate_difficulty(SolveStats(guesses=guesses, hidden_singles=hidden))


def read_text(
    path: str | os.PathLike[str],
    text: str | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> SudokuCollection:
    """One puzzle per line (``.`` or ``0`` for blanks; ``#`` comments and blank lines ignored), sizes 4, 6
    or 9 from the length; each is solved, and must have exactly one solution."""
    name = str(path)
    if text is None:
        text = _read(path)
    size: int | None = None
    size_line = 0
    rows: list[np.ndarray] = []
    lines: list[int] = []
    skipped = 0

    def bad(lineno: int, problem: str) -> None:
        nonlocal skipped
        if not skip_invalid:
            raise DataError(f"{name}, line {lineno}: {problem}")
        skipped += 1

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        n = _SIZE_OF_LENGTH.get(len(line))
        if n is None:
            bad(lineno, f"expected 16, 36 or 81 cells (a 4x4, 6x6 or 9x9 sudoku), got {len(line)} characters")
            continue
        allowed = ".0" + "".join(str(d) for d in range(1, n + 1))
        wrong = next((ch for ch in line if ch not in allowed), None)
        if wrong is not None:
            bad(
                lineno,
                f"character {wrong!r} is not allowed in {a_grid(n)} sudoku "
                f"(use 1-{n}, and '.' or '0' for blanks)",
            )
            continue
        if size is None:
            size, size_line = n, lineno
        elif n != size:
            bad(lineno, f"{a_grid(n)} sudoku, but line {size_line} started a file of {size}x{size} sudokus")
            continue
        cells = np.frombuffer(line.replace(".", "0").encode(), dtype=np.uint8) - ord("0")
        conflict = find_conflict(cells, n)
        if conflict:
            bad(lineno, f"contradictory givens: {conflict}")
            continue
        rows.append(cells)
        lines.append(lineno)
    if size is None:
        return SudokuCollection.empty(9, "text", name, skipped)
    puzzles = np.stack(rows) if rows else np.zeros((0, size * size), np.uint8)
    results = solve_exact_many(puzzles, workers=workers, progress=progress, desc=f"solving {Path(name).name}")
    keep, solutions, ratings = [], [], []
    for k, outcome in enumerate(results):
        if outcome.gave_up:
            bad(lines[k], gave_up_reason(outcome.nodes))
            continue
        if outcome.num_solutions != 1:
            count = outcome.num_solutions
            bad(
                lines[k],
                "the puzzle has no solution" if count == 0 else "the puzzle has more than one solution",
            )
            continue
        keep.append(k)
        solutions.append(np.frombuffer(outcome.solution, dtype=np.uint8))
        ratings.append(_rating_from(outcome.guesses, outcome.hidden_singles))
    keep_idx = np.array(keep, dtype=np.int64)
    return SudokuCollection(
        puzzles=puzzles[keep_idx] if len(keep) else np.zeros((0, size * size), np.uint8),
        solutions=np.stack(solutions) if solutions else np.zeros((0, size * size), np.uint8),
        ratings=ratings,
        lines=np.array(lines, dtype=np.int64)[keep_idx] if len(keep) else np.zeros(0, np.int64),
        size=size,
        kind="text",
        skipped=skipped,
        source=name,
    )


def read_csv(
    path: str | os.PathLike[str], text: str | None = None, skip_invalid: bool = False
) -> SudokuCollection:
    """The published Sudoku-Extreme CSV (``source,question,answer,rating``; 9x9, ``.`` for blanks).

    Answers are checked (a valid grid agreeing with the question's givens) with vectorised numpy; the
    puzzles are not re-solved, as there are millions and their uniqueness is part of how they were made.
    """
    name = str(path)
    if text is None:
        text = _read(path)
    reader = csv.reader(io.StringIO(text))
    skipped = 0

    def bad(lineno: int, problem: str) -> None:
        nonlocal skipped
        if not skip_invalid:
            raise DataError(f"{name}, line {lineno}: {problem}")
        skipped += 1

    def rows() -> Iterator[list[str]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a quote left open runs on until the field size limit
                raise DataError(
                    f"{name}, line {reader.line_num}: unreadable CSV ({exc}); is a quote left open?"
                ) from None
            yield row

    records = rows()
    header = next(records, None)
    if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
        raise DataError(
            f"{name}, line 1: expected the header {','.join(CSV_HEADER)!r}, got {','.join(header or [])!r}"
        )
    questions: list[str] = []
    answers: list[str] = []
    ratings: list[int] = []
    lines: list[int] = []
    for row in records:
        lineno = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 4:
            bad(lineno, f"expected 4 fields (source,question,answer,rating), got {len(row)}")
            continue
        _, q, a, r = row
        if len(q) != 81 or len(a) != 81:
            bad(lineno, f"question and answer must have 81 cells, got {len(q)} and {len(a)}")
            continue
        try:
            rating = int(r)
        except ValueError:
            bad(lineno, f"rating {r!r} is not an integer")
            continue
        if not -(2**63) <= rating < 2**63:
            bad(lineno, f"rating {r!r} is too large")
            continue
        questions.append(q)
        answers.append(a)
        ratings.append(rating)
        lines.append(lineno)
    if not questions:
        return SudokuCollection.empty(9, "csv", name, skipped)
    q_arr = np.frombuffer("".join(questions).encode("ascii", "replace"), dtype=np.uint8).reshape(-1, 81)
    a_arr = np.frombuffer("".join(answers).encode("ascii", "replace"), dtype=np.uint8).reshape(-1, 81)
    q_ok = np.all((q_arr == ord(".")) | ((q_arr >= ord("0")) & (q_arr <= ord("9"))), axis=1)
    a_ok = np.all((a_arr >= ord("1")) & (a_arr <= ord("9")), axis=1)
    puzzles = np.where(q_arr == ord("."), 0, q_arr.astype(np.int16) - ord("0")).clip(0, 9).astype(np.uint8)
    solutions = (a_arr.astype(np.int16) - ord("0")).clip(0, 9).astype(np.uint8)
    agrees = np.all((puzzles == 0) | (puzzles == solutions), axis=1)
    valid = valid_grids(solutions, 9)
    good = q_ok & a_ok & agrees & valid
    for k in np.flatnonzero(~good):
        if not q_ok[k]:
            problem = "the question has characters other than '.' and 0-9"
        elif not a_ok[k]:
            problem = "the answer has characters other than 1-9"
        elif not valid[k]:
            problem = "the answer is not a valid sudoku solution"
        else:
            problem = "the answer does not match the question's givens"
        bad(lines[k], problem)
    keep = np.flatnonzero(good)
    return SudokuCollection(
        puzzles=puzzles[keep],
        solutions=solutions[keep],
        ratings=np.array(ratings, dtype=np.int64)[keep],
        lines=np.array(lines, dtype=np.int64)[keep],
        size=9,
        kind="csv",
        skipped=skipped,
        source=name,
    )


def _read(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file") from None


def read_sudoku_file(
    path: str | os.PathLike[str],
    skip_invalid: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> SudokuCollection:
    """A text file of puzzles or a Sudoku-Extreme CSV, told apart by content: the CSV starts with its
    header, and a first line with commas is taken for a CSV (so a wrong header is reported as such)."""
    text = _read(path)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if "," in first:
        return read_csv(path, text=text, skip_invalid=skip_invalid)
    return read_text(path, text=text, skip_invalid=skip_invalid, progress=progress, workers=workers)


def download_sudoku_extreme(split: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch ``train.csv`` or ``test.csv`` of the published set through huggingface_hub (network)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DataError(
            "--download needs the huggingface_hub package; install it with 'pip install huggingface_hub' "
            "or download the CSVs yourself and pass --from/--test-from"
        ) from None
    try:
        return Path(hf_hub_download(HF_REPO, f"{split}.csv", repo_type="dataset", cache_dir=cache_dir))
    except Exception as exc:  # network and hub errors come in many types; report them in one line
        raise DataError(f"could not download {split}.csv of {HF_REPO}: {type(exc).__name__}: {exc}") from None
