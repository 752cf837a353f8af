"""Arguments and input files that used to give a wrong dataset with exit 0, a traceback, or a build
that never ends: each now ends in one line on stderr, with nothing written."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest

from hrm.cli import main
from hrm.data import arc, maze
from hrm.data.build import MAX_SPLIT_EXAMPLES, check_build_size
from hrm.errors import DataError

SUDOKU = ["data", "sudoku", "--size", "4", "--difficulty", "easy", "--no-progress"]


def fails_in_one_line(capsys, args: list[str], parent: Path, says: str, code: int = 1) -> str:
    before = sorted(p.name for p in parent.iterdir())
    assert main(args) == code
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("hrm: error:"), captured.err
    assert "Traceback" not in captured.err
    assert says in captured.err, captured.err
    assert sorted(p.name for p in parent.iterdir()) == before
    return captured.err


def maze_csv(path: Path, rows: int = 6) -> Path:
    rng = np.random.default_rng(0)
    inputs, labels = maze.generate_mazes(rows, 7, rng)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "question", "answer", "rating"])
        for q, a in zip(inputs, labels):
            writer.writerow(["gen", maze.decode_maze(q), maze.decode_maze(a), 0])
    return path


# -- 4. wrong results with exit 0 ------------------------------------------------------------------


def test_maze_negative_test_count_is_refused(tmp_path, capsys):
    source = maze_csv(tmp_path / "mazes.csv")
    for extra in (["--from", str(source)], ["--count", "3", "--size", "7"]):
        args = ["data", "maze", *extra, "--test-count", "-2", "--out", str(tmp_path / "ds")]
        fails_in_one_line(capsys, args, tmp_path, "--test-count must not be negative")


@pytest.mark.parametrize("extra", [["--count", "4"], ["--count", "4", "--test-count", "0"]])
def test_sudoku_negative_test_count_is_refused(tmp_path, capsys, extra):
    args = [*SUDOKU, *extra, "--test-count", "-1", "--out", str(tmp_path / "ds")]
    fails_in_one_line(capsys, args, tmp_path, "--test-count")


@pytest.mark.parametrize(("size", "clues"), [(4, 16), (4, 99), (9, 81), (6, -1)])
def test_min_clues_outside_the_grid_is_refused(tmp_path, capsys, size, clues):
    args = [
        *SUDOKU,
        "--size",
        str(size),
        "--count",
        "3",
        "--min-clues",
        str(clues),
        "--out",
        str(tmp_path / "ds"),
    ]
    fails_in_one_line(capsys, args, tmp_path, f"--min-clues must be between 0 and {size * size - 1}")


# -- 5. tracebacks --------------------------------------------------------------------------------


def test_csv_with_an_unclosed_quote(tmp_path, capsys):
    rows = [f"x,{'.' * 81},{'1' * 81},1"] * 2000
    source = tmp_path / "sudoku.csv"
    source.write_text(
        "source,question,answer,rating\n" + f'x,"{"." * 81},{"1" * 81},1\n' + "\n".join(rows) + "\n"
    )
    args = ["data", "sudoku", "--from", str(source), "--out", str(tmp_path / "ds"), "--no-progress"]
    err = fails_in_one_line(capsys, args, tmp_path, "unreadable CSV")
    assert "line " in err and "quote" in err


def test_csv_rating_too_large(tmp_path, capsys):
    source = tmp_path / "sudoku.csv"
    sudoku = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
    source.write_text(f"source,question,answer,rating\nx,{'.' * 81},{sudoku},{'9' * 30}\n")
    args = ["data", "sudoku", "--from", str(source), "--out", str(tmp_path / "ds"), "--no-progress"]
    fails_in_one_line(capsys, args, tmp_path, "is too large")


def test_sudoku_negative_seed(tmp_path, capsys):
    args = [*SUDOKU, "--count", "3", "--seed", "-1", "--out", str(tmp_path / "ds")]
    fails_in_one_line(capsys, args, tmp_path, "--seed must not be negative")


@pytest.mark.parametrize(
    "args",
    [
        [*SUDOKU, "--count", "12", "--num-aug", str(10**12)],
        [*SUDOKU, "--count", str(10**13)],
        [*SUDOKU, "--count", "12", "--test-count", str(10**13)],
        ["data", "maze", "--count", str(10**12), "--size", "7"],
        ["data", "maze", "--count", "1", "--test-count", str(10**12), "--size", "7"],
        ["data", "maze", "--count", "10", "--size", str(10**6)],
        ["data", "arc", "--num-aug", str(10**12)],
    ],
)
def test_huge_sizes_are_refused_up_front(tmp_path, capsys, args):
    start = time.perf_counter()
    err = fails_in_one_line(
        capsys, [*args, "--out", str(tmp_path / "ds")], tmp_path, "more than the limit of"
    )
    assert time.perf_counter() - start < 5
    assert "lower --" in err


def test_num_aug_bound_from_a_file(tmp_path, capsys):
    source = tmp_path / "puzzles.txt"
    source.write_text("1234341221434321\n".replace("1234", "....", 1))
    args = ["data", "sudoku", "--from", str(source), "--num-aug", str(2**31), "--out", str(tmp_path / "ds")]
    fails_in_one_line(capsys, args, tmp_path, f"more than the limit of {MAX_SPLIT_EXAMPLES:,}")


def test_check_build_size():
    check_build_size({"train": 1000, "test": 10}, 81, "x")
    with pytest.raises(DataError, match="int32"):
        check_build_size({"train": 2**31}, 1, "lower --x")
    with pytest.raises(DataError, match="memory"):
        check_build_size({"train": 2**30}, 10**6, "lower --x")


def test_memory_error_while_building_is_one_line(tmp_path, capsys, monkeypatch):
    import hrm.data.sudoku.builder as builder

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(builder, "augment_tokens", no_memory)
    args = [*SUDOKU, "--count", "3", "--out", str(tmp_path / "ds")]
    fails_in_one_line(capsys, args, tmp_path, "ran out of memory")


def test_arc_json_nested_very_deep(tmp_path, capsys):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    args = ["data", "arc", "--source", f"dir:{tasks}", "--out", str(tmp_path / "ds")]
    err = fails_in_one_line(capsys, args, tmp_path, "nested too deeply")
    assert str(tasks / "deep.json") in err
    (tasks / "deep.json").unlink()
    (tasks / "deep_challenges.json").write_text('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")
    args = ["data", "arc", "--source", f"kaggle:{tasks / 'deep'}@eval", "--out", str(tmp_path / "ds")]
    fails_in_one_line(capsys, args, tmp_path, "nested too deeply")


def test_arc_task_id_that_is_not_printable(tmp_path, capsys):
    prefix = tmp_path / "k"
    task = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}
    Path(f"{prefix}_challenges.json").write_text(json.dumps({"a\nb": task}))
    args = ["data", "arc", "--source", f"kaggle:{prefix}@eval", "--out", str(tmp_path / "ds")]
    fails_in_one_line(capsys, args, tmp_path, "printable")


def tiny_task_dir(root: Path) -> Path:
    root.mkdir()
    # One colour on 1x1 grids: 9 distinct variants (the colour), whatever the dihedral transform.
    task = {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}
    (root / "tiny.json").write_text(json.dumps(task))
    return root


def test_arc_num_aug_far_above_the_distinct_variants_ends(tmp_path, capsys):
    tasks = tiny_task_dir(tmp_path / "tasks")
    start = time.perf_counter()
    args = ["data", "arc", "--source", f"dir:{tasks}", "--num-aug", "200000", "--out", str(tmp_path / "ds")]
    assert main(args) == 0
    assert time.perf_counter() - start < 5  # it drew a million times (minutes) before
    out = capsys.readouterr().out
    assert "1 tasks got fewer than --num-aug 200000 distinct variants (fewest: 8" in out
    names = json.loads((tmp_path / "ds" / "identifiers.json").read_text())
    assert len(names) == 1 + 9  # the blank, the task and its 8 recolourings


def test_arc_misses_never_change_a_dataset_of_up_to_2000_augmentations():
    assert arc.AUGMENT_MAX_MISSES >= arc.AUGMENT_RETRIES_FACTOR * 2000
    task = arc.parse_task(
        {
            "train": [{"input": [[1, 0]], "output": [[1, 1]]}],
            "test": [{"input": [[0, 1]], "output": [[1, 1]]}],
        },
        "t",
        "x",
    )
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    variants = arc.augment_task(task, 2000, rng_a)
    # What the loop did before the bound on misses: every one of the 5 x 2000 draws.
    for _ in range(arc.AUGMENT_RETRIES_FACTOR * 2000):
        rng_b.integers(0, arc.NUM_DIHEDRAL)
        arc.random_colour_permutation(rng_b)
    assert len(variants) < 2000 and rng_a.random() == rng_b.random()  # same draws, same rng state after
