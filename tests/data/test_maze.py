from __future__ import annotations

import argparse
import csv
import hashlib
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrm.data import cli as data_cli
from hrm.data import maze
from hrm.data.augment import dihedral_transform
from hrm.data.build import CSV_HEADER
from hrm.data.dataset import PuzzleDataset
from hrm.data.maze import GOAL, OPEN, PATH, START, WALL
from hrm.errors import DataError


def bfs(passable: np.ndarray, source: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Independent reference BFS (dict based) for the checks below."""
    h, w = passable.shape
    dist = {source: 0}
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < h and 0 <= nc < w and passable[nr, nc] and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                queue.append((nr, nc))
    return dist


def assert_label_is_shortest_path(question: np.ndarray, answer: np.ndarray) -> int:
    assert set(np.unique(question)) <= {WALL, OPEN, START, GOAL}
    assert (question == START).sum() == 1 and (question == GOAL).sum() == 1
    s = tuple(int(x) for x in np.argwhere(question == START)[0])
    g = tuple(int(x) for x in np.argwhere(question == GOAL)[0])
    # The label only turns open cells into path cells.
    changed = question != answer
    assert np.all(question[changed] == OPEN) and np.all(answer[changed] == PATH)
    best = bfs(question != WALL, s)[g]
    # The path cells chain from S to G one step at a time, with no extra cells.
    path_cells = {tuple(int(x) for x in rc) for rc in np.argwhere(answer == PATH)}
    assert len(path_cells) == best - 1
    on_path = bfs((answer == PATH) | (answer == START) | (answer == GOAL), s)
    assert on_path.get(g) == best
    for r, c in path_cells:
        assert question[r, c] == OPEN
    return best


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(5, 24),
    seed=st.integers(0, 2**32 - 1),
    loops=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    want=st.integers(1, 12),
)
def test_generated_labels_are_shortest_paths(size, seed, loops, want):
    want = min(want, size)  # a fully opened 5x5 maze has no path longer than 8
    q, a = maze.generate_maze(size, np.random.default_rng(seed), min_path_length=want, loop_fraction=loops)
    assert q.shape == (size, size) and q.dtype == np.uint8
    best = assert_label_is_shortest_path(q, a)
    assert best >= want
    assert maze.check_maze_pair(q, a) is None
    for tid in range(8):  # every dihedral image of a labelled maze is a labelled maze
        assert_label_is_shortest_path(dihedral_transform(q, tid), dihedral_transform(a, tid))


def test_solver_picks_one_shortest_path_deterministically_when_many_exist():
    q = np.full((6, 6), OPEN, dtype=np.uint8)  # an open room: many shortest paths
    q[0, 0], q[5, 5] = START, GOAL
    a1, a2 = maze.solve_maze(q), maze.solve_maze(q.copy())
    assert np.array_equal(a1, a2)
    assert assert_label_is_shortest_path(q, a1) == 10


def test_unreachable_goal_is_reported():
    q = maze.encode_maze("S#  " + "##  " + "   G" + "    ")
    assert maze.shortest_path(q) is None
    with pytest.raises(ValueError):
        maze.solve_maze(q)


@given(st.text(alphabet=maze.CHARSET, min_size=25, max_size=25))
def test_encode_decode_roundtrip(text):
    grid = maze.encode_maze(text)
    assert grid.shape == (5, 5) and grid.min() >= 1 and grid.max() <= 5
    assert maze.decode_maze(grid) == text


def test_encode_rejects_bad_text():
    with pytest.raises(ValueError, match="characters"):
        maze.encode_maze("S" * 10)
    with pytest.raises(ValueError, match="outside the charset"):
        maze.encode_maze("S#x " * 4)


def test_hard_mazes_have_long_paths_and_need_few_redraws():
    rng = np.random.default_rng(1)
    # Generation is cheap because a long path is common: no maze here needs more than 20 carvings.
    q, a = maze.generate_mazes(40, 30, rng, min_path_length=maze.PUBLISHED_HARD_MIN_PATH_LENGTH, max_tries=20)
    for i in range(len(q)):
        assert assert_label_is_shortest_path(q[i], a[i]) >= 111


@pytest.mark.slow
def test_thousand_hard_mazes_need_few_redraws():
    q, _ = maze.generate_mazes(1000, 30, np.random.default_rng(0), min_path_length=111, max_tries=30)
    assert q.shape == (1000, 30, 30)


def test_impossible_hardness_is_a_data_error():
    with pytest.raises(DataError, match="min-path-length"):
        maze.generate_maze(5, np.random.default_rng(0), min_path_length=100, max_tries=5)


# ---------------------------------------------------------------------------------------------
# CSV import
# ---------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[str, str]], header=CSV_HEADER) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for q, a in rows:
            w.writerow(["gen", q, a, "0"])
    return path


def sample_rows(n: int, size: int = 9, seed: int = 0) -> list[tuple[str, str]]:
    q, a = maze.generate_mazes(n, size, np.random.default_rng(seed), min_path_length=6)
    return [(maze.decode_maze(q[i]), maze.decode_maze(a[i])) for i in range(n)]


def test_csv_roundtrip(tmp_path):
    rows = sample_rows(5)
    table = maze.read_maze_csv(write_csv(tmp_path / "train.csv", rows))
    assert table.inputs.shape == (5, 9, 9)
    assert table.lines == [2, 3, 4, 5, 6]
    assert [maze.decode_maze(x) for x in table.inputs] == [q for q, _ in rows]
    assert [maze.decode_maze(x) for x in table.labels] == [a for _, a in rows]


def corrupt(rows, kind):
    q, a = rows[1]
    if kind == "length":
        q = q[:-1]
    elif kind == "char":
        q = "x" + q[1:]
    elif kind == "no_s":
        q, a = q.replace("S", " "), a.replace("S", " ")
    elif kind == "not_shortest":  # mark a path cell as open: the path breaks
        i = a.index("o")
        a = a[:i] + " " + a[i + 1 :]
    elif kind == "extra_o":
        i = a.index(" ")  # an open cell off the path
        a = a[:i] + "o" + a[i + 1 :]
    elif kind == "no_path":  # wall G in completely
        grid = maze.encode_maze(q)
        g = tuple(np.argwhere(grid == GOAL)[0])
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            r, c = g[0] + dr, g[1] + dc
            if 0 <= r < 9 and 0 <= c < 9:
                grid[r, c] = WALL
        q = maze.decode_maze(grid)
        a = q
    return [rows[0], (q, a), *rows[2:]]


@pytest.mark.parametrize(
    "kind, message",
    [
        ("length", "80 characters"),
        ("char", "outside the charset"),
        ("no_s", "0 'S' cells"),
        ("not_shortest", "do not connect"),
        ("extra_o", "moves but the shortest path has"),
        ("no_path", "cannot be reached"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, kind, message):
    path = write_csv(tmp_path / "bad.csv", corrupt(sample_rows(3), kind))
    with pytest.raises(DataError, match=message) as err:
        maze.read_maze_csv(path)
    text = str(err.value)
    assert f"{path} line 3:" in text and "\n" not in text
    table = maze.read_maze_csv(path, skip_invalid=True)
    assert table.skipped == 1 and len(table.inputs) == 2 and table.lines == [2, 4]


def test_bad_header(tmp_path):
    path = write_csv(tmp_path / "h.csv", sample_rows(1), header=("q", "a"))
    with pytest.raises(DataError, match=r"line 1: header"):
        maze.read_maze_csv(path)


# ---------------------------------------------------------------------------------------------
# End to end: the builder, the writer, validation, loading
# ---------------------------------------------------------------------------------------------

fmt = pytest.importorskip("hrm.data.format")


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    data_cli.add_maze_arguments(parser)
    return parser.parse_args(list(argv))


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_generated_dataset_is_valid_and_loads(tmp_path, capsys):
    out = tmp_path / "ds"
    args = cli_args("--count", "12", "--test-count", "4", "--size", "11", "--aug", "--out", str(out))
    assert data_cli.run_maze(args) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "12 train" in printed
    assert fmt.validate_dataset(out) == []
    meta, sets = fmt.load_split(out, "train")
    arrays = sets["all"]
    assert meta.vocab_size == 6 and meta.seq_len == 121 and meta.num_puzzle_identifiers == 1
    assert meta.sets == ["all"] and meta.total_groups == 12
    assert arrays.num_puzzles == 96 and arrays.num_examples == 96
    assert list(arrays.group_indices[:3]) == [0, 8, 16]
    for e in range(0, 96, 7):
        q = np.asarray(arrays.inputs[e]).reshape(11, 11)
        a = np.asarray(arrays.labels[e]).reshape(11, 11)
        assert_label_is_shortest_path(q, a)
    test_meta, test_sets = fmt.load_split(out, "test")
    assert test_sets["all"].num_puzzles == 4 and test_meta.total_groups == 4

    ds = PuzzleDataset({"dataset_path": str(out), "global_batch_size": 8}, split="train")
    set_name, batch, effective = next(iter(ds))
    assert set_name == "all" and batch["inputs"].shape == (8, 121) and effective == 8


def test_same_seed_same_bytes(tmp_path):
    common = ["--count", "6", "--test-count", "2", "--size", "9", "--aug", "--subsample", "5"]
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        data_cli.run_maze(cli_args(*common, "--seed", seed, "--out", str(tmp_path / name)))
    a, b, c = (tree_hashes(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def test_import_from_directory_and_single_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_csv(src / "train.csv", sample_rows(6, seed=1))
    write_csv(src / "test.csv", sample_rows(3, seed=2))
    data_cli.run_maze(cli_args("--from", str(src), "--aug", "--out", str(tmp_path / "d1")))
    assert fmt.validate_dataset(tmp_path / "d1") == []
    _, sets = fmt.load_split(tmp_path / "d1", "train")
    assert sets["all"].num_puzzles == 48
    _, sets = fmt.load_split(tmp_path / "d1", "test")
    assert sets["all"].num_puzzles == 3

    data_cli.run_maze(
        cli_args("--from", str(src / "train.csv"), "--test-count", "2", "--out", str(tmp_path / "d2"))
    )
    _, train = fmt.load_split(tmp_path / "d2", "train")
    _, test = fmt.load_split(tmp_path / "d2", "test")
    assert train["all"].num_puzzles == 4 and test["all"].num_puzzles == 2


def test_bad_csv_writes_nothing_unless_skipped(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", corrupt(sample_rows(3), "char"))
    out = tmp_path / "ds"
    with pytest.raises(DataError, match="line 3"):
        data_cli.run_maze(cli_args("--from", str(path), "--out", str(out)))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]  # no temp dirs left either
    data_cli.run_maze(cli_args("--from", str(path), "--out", str(out), "--skip-invalid"))
    assert "skipped 1 invalid rows" in capsys.readouterr().out
    assert fmt.validate_dataset(out) == []


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep").write_text("x")
    args = ["--count", "2", "--test-count", "1", "--size", "7", "--out", str(out)]
    with pytest.raises(DataError, match="overwrite"):
        data_cli.run_maze(cli_args(*args))
    with pytest.raises(DataError, match="not a dataset directory"):  # --overwrite replaces datasets only
        data_cli.run_maze(cli_args(*args, "--overwrite"))
    assert (out / "keep").read_text() == "x"
    (out / "keep").unlink()
    data_cli.run_maze(cli_args(*args))
    data_cli.run_maze(cli_args(*args[:1], "3", *args[2:], "--overwrite"))
    assert fmt.load_metadata(out, "train").total_groups == 3


def test_cli_prints_one_line_errors(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", corrupt(sample_rows(2), "no_s"))
    from hrm.cli import main

    assert main(["data", "maze", "--from", str(path), "--out", str(tmp_path / "ds")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hrm: error:") and "line 3" in err and "\n" not in err
    assert not (tmp_path / "ds").exists()


def test_hard_filter_scales_the_published_one_with_the_side():
    assert maze.hard_min_path_length(maze.PUBLISHED_HARD_SIZE) == maze.PUBLISHED_HARD_MIN_PATH_LENGTH
    assert [maze.hard_min_path_length(n) for n in (9, 11, 15)] == [34, 41, 56]


def test_cli_hard_keeps_only_long_paths(tmp_path):
    out = tmp_path / "ds"
    assert data_cli.run_maze(cli_args("--count", "8", "--test-count", "4", "--size", "11", "--hard",
                                      "--out", str(out))) == 0  # fmt: skip
    for split in ("train", "test"):
        _, sets = fmt.load_split(out, split)
        arrays = sets["all"]
        for e in range(arrays.num_examples):
            q = np.asarray(arrays.inputs[e]).reshape(11, 11)
            a = np.asarray(arrays.labels[e]).reshape(11, 11)
            assert assert_label_is_shortest_path(q, a) >= maze.hard_min_path_length(11)


def test_hardness_filters_do_not_apply_to_imports(tmp_path, capsys):
    path = write_csv(tmp_path / "m.csv", sample_rows(3))
    from hrm.cli import main

    for flag in (["--hard"], ["--min-path-length", "5"], ["--any-length-share", "0.5"]):
        assert main(["data", "maze", "--from", str(path), *flag, "--out", str(tmp_path / "ds")]) == 1
        err = capsys.readouterr().err.strip()
        assert "do not apply to --from" in err and "\n" not in err
    assert main(["data", "maze", "--hard", "--min-path-length", "5", "--out", str(tmp_path / "ds")]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_any_length_share_mixes_hard_and_ordinary_mazes():
    hard = maze.hard_min_path_length(9)
    rng = np.random.default_rng(3)
    inputs, labels = maze.generate_mazes(200, 9, rng, hard, any_length_share=0.5)
    lengths = np.array([assert_label_is_shortest_path(q, a) for q, a in zip(inputs, labels)])
    # Half of them were drawn without the filter; of those, few pass it by chance (about 1% at 9x9).
    assert 95 <= (lengths >= hard).sum() <= 110
    assert (lengths < hard).sum() >= 90
    # No share, no change: the same draws as before the option existed.
    plain = maze.generate_mazes(5, 9, np.random.default_rng(4), hard)
    unmixed = maze.generate_mazes(5, 9, np.random.default_rng(4), hard, any_length_share=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(plain, unmixed))


def test_cli_any_length_share_needs_a_filter_and_a_fraction(tmp_path, capsys):
    from hrm.cli import main

    out = tmp_path / "ds"
    for flags, message in (
        (["--any-length-share", "0.5"], "give one"),
        (["--hard", "--any-length-share", "1.5"], "between 0 and 1, got 1.5"),
        (["--hard", "--any-length-share", "nan"], "between 0 and 1, got nan"),
    ):
        assert main(["data", "maze", "--size", "9", "--count", "4", *flags, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert not out.exists()
    args = ("--count", "6", "--test-count", "4", "--size", "9", "--hard", "--any-length-share", "0.5")
    assert data_cli.run_maze(cli_args(*args, "--out", str(out))) == 0
    for split, count in (("train", 6), ("test", 4)):
        arrays = fmt.load_split(out, split)[1]["all"]
        lengths = [
            assert_label_is_shortest_path(
                np.asarray(arrays.inputs[e]).reshape(9, 9), np.asarray(arrays.labels[e]).reshape(9, 9)
            )
            for e in range(arrays.num_examples)
        ]
        assert len(lengths) == count and sum(n >= maze.hard_min_path_length(9) for n in lengths) >= count // 2
