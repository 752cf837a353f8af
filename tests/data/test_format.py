from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from hrm.data.dataset import PuzzleDataset, PuzzleDatasetConfig, sample_batch
from hrm.data.format import (
    DatasetMetadata,
    PuzzleSetArrays,
    load_metadata,
    smallest_dtype,
    validate_dataset,
    write_dataset,
)
from hrm.errors import DataError

SEQ = 6
VOCAB = 5


def make_set(examples_per_puzzle: list[int], puzzles_per_group: list[int], seed: int = 0) -> PuzzleSetArrays:
    rng = np.random.default_rng(seed)
    n_examples = sum(examples_per_puzzle)
    assert sum(puzzles_per_group) == len(examples_per_puzzle)
    # Each example's first token is its own index mod VOCAB-1 (+1) so batches can be traced back.
    inputs = rng.integers(1, VOCAB, size=(n_examples, SEQ))
    labels = rng.integers(0, VOCAB, size=(n_examples, SEQ))
    return PuzzleSetArrays(
        inputs=inputs,
        labels=labels,
        puzzle_identifiers=rng.integers(1, 3, size=len(examples_per_puzzle)),
        puzzle_indices=np.concatenate([[0], np.cumsum(examples_per_puzzle)]),
        group_indices=np.concatenate([[0], np.cumsum(puzzles_per_group)]),
    )


def make_meta(arrays: PuzzleSetArrays) -> DatasetMetadata:
    return DatasetMetadata(
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        vocab_size=VOCAB,
        seq_len=SEQ,
        num_puzzle_identifiers=3,
        total_groups=arrays.num_groups,
        mean_puzzle_examples=arrays.num_examples / arrays.num_puzzles,
        sets=["all"],
    )


@pytest.fixture
def dataset_dir(tmp_path):
    train = make_set([1, 2, 3, 1, 4, 2, 1, 1], [2, 1, 3, 2])
    test = make_set([1] * 7, [1] * 7, seed=1)
    out = tmp_path / "ds"
    write_dataset(
        out,
        {"train": {"all": train}, "test": {"all": test}},
        {"train": make_meta(train), "test": make_meta(test)},
        ["<blank>", "a", "b"],
        extra_files={"test_puzzles.json": {"x": [1, 2]}},
    )
    return out


def test_write_and_validate_roundtrip(dataset_dir):
    assert validate_dataset(dataset_dir) == []
    assert json.loads((dataset_dir / "identifiers.json").read_text()) == ["<blank>", "a", "b"]
    assert json.loads((dataset_dir / "test_puzzles.json").read_text()) == {"x": [1, 2]}
    inputs = np.load(dataset_dir / "train" / "all__inputs.npy")
    assert inputs.dtype == np.uint8  # smallest fitting dtype
    assert load_metadata(dataset_dir, "train").total_groups == 4
    assert not [p for p in dataset_dir.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_smallest_dtype():
    assert smallest_dtype(np.array([0, 255])) == np.uint8
    assert smallest_dtype(np.array([-1, 100])) == np.int8
    assert smallest_dtype(np.array([0, 30000])) == np.int16
    assert smallest_dtype(np.array([0, 60000])) == np.uint16
    assert smallest_dtype(np.array([0, 2**31 - 1])) == np.int32
    assert smallest_dtype(np.array([0, 2**40])) == np.int64


def test_refuses_existing_dir_and_overwrites_when_asked(dataset_dir):
    train = make_set([1, 1], [2])
    args = ({"train": {"all": train}}, {"train": make_meta(train)}, ["<blank>", "a", "b"])
    with pytest.raises(DataError, match="already exists"):
        write_dataset(dataset_dir, *args)
    assert (dataset_dir / "test").is_dir()  # untouched
    write_dataset(dataset_dir, *args, overwrite=True)
    assert not (dataset_dir / "test").exists()
    assert validate_dataset(dataset_dir) == []
    assert [p.name for p in dataset_dir.parent.iterdir()] == ["ds"]


def test_invalid_arrays_are_refused_and_nothing_written(tmp_path):
    train = make_set([1, 2], [2])
    train.puzzle_indices = np.array([0, 2, 1])
    with pytest.raises(DataError, match="puzzle_indices"):
        write_dataset(
            tmp_path / "ds", {"train": {"all": train}}, {"train": make_meta(make_set([1, 2], [2]))}, ["a"] * 3
        )
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_nothing(tmp_path):
    train = make_set([1, 1], [2])
    with pytest.raises(TypeError):
        write_dataset(
            tmp_path / "ds",
            {"train": {"all": train}},
            {"train": make_meta(train)},
            ["<blank>", "a", "b"],
            extra_files={"bad.json": object()},  # not JSON-serialisable: fails after the arrays are written
        )
    assert list(tmp_path.iterdir()) == []


def test_validate_reports_problems(dataset_dir):
    np.save(dataset_dir / "train" / "all__puzzle_indices.npy", np.array([0, 1, 3, 6, 7, 11, 13, 14, 99]))
    np.save(dataset_dir / "train" / "all__labels.npy", np.full((15, SEQ), VOCAB, dtype=np.int64))
    np.save(dataset_dir / "test" / "all__puzzle_identifiers.npy", np.full(7, 3))
    meta = json.loads((dataset_dir / "test" / "dataset.json").read_text())
    meta["total_groups"] = 9
    (dataset_dir / "test" / "dataset.json").write_text(json.dumps(meta))
    (dataset_dir / "identifiers.json").write_text("[]")
    problems = validate_dataset(dataset_dir)
    text = "\n".join(problems)
    assert "puzzle_indices ends at 99" in text
    assert "labels values" in text
    assert "puzzle_identifiers 3..3 outside" in text
    assert "total_groups is 9" in text
    assert "identifiers.json lists 0" in text


def test_validate_float_dtype_and_missing(tmp_path, dataset_dir):
    np.save(dataset_dir / "train" / "all__inputs.npy", np.zeros((15, SEQ), dtype=np.float32))
    assert any("expected an integer dtype" in p for p in validate_dataset(dataset_dir))
    (dataset_dir / "test" / "all__group_indices.npy").unlink()
    assert any("not found" in p for p in validate_dataset(dataset_dir))
    assert validate_dataset(tmp_path / "nothing") == [f"{tmp_path / 'nothing'} is not a directory"]


def test_load_metadata_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_metadata(tmp_path, "train")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "dataset.json").write_text('{"pad_id": "x"}')
    with pytest.raises(DataError, match="bad field"):
        load_metadata(tmp_path, "train")


# -- PuzzleDataset --------------------------------------------------------------------------------


def make_dataset(path, split="train", **overrides):
    config = {"dataset_path": str(path), "global_batch_size": 4, "seed": 3} | overrides
    return PuzzleDataset(PuzzleDatasetConfig(**config), split=split)


def test_batch_size_must_divide_replicas(dataset_dir):
    with pytest.raises(DataError, match="multiple of num_replicas"):
        make_dataset(dataset_dir, global_batch_size=5, num_replicas=2)


def test_train_batches_full_and_typed(dataset_dir):
    ds = make_dataset(dataset_dir, epochs_per_iter=3)
    batches = list(ds)
    assert batches
    for set_name, batch, effective in batches:
        assert set_name == "all" and effective == 4
        assert set(batch) == {"inputs", "labels", "puzzle_identifiers"}
        assert all(v.dtype == torch.int32 for v in batch.values())
        assert batch["inputs"].shape == (4, SEQ)
        assert not (batch["labels"] == 0).any()  # ignore_label_id 0 became -100
        assert ((batch["labels"] == -100) | (batch["labels"] > 0)).all()


def test_sample_batch_one_puzzle_per_group_and_capped():
    pidx = np.array([0, 3, 10, 12])
    gidx = np.array([0, 1, 3])
    rng = np.random.default_rng(0)
    start, examples, puzzles = sample_batch(rng, np.array([0, 1, 0]), pidx, gidx, 0, 5)
    assert examples.size == puzzles.size == 5
    assert start in (2, 3)
    assert np.array_equal(examples[:3], np.sort(examples[:3])) or len(set(examples[:3].tolist())) == 3
    for e, p in zip(examples, puzzles):
        assert pidx[p] <= e < pidx[p + 1]
    assert len(set(examples.tolist())) == 5  # no example twice in one batch


def test_train_is_reproducible_and_resumable(dataset_dir):
    def run(ds, passes):
        return [[b["inputs"].clone() for _, b, _ in ds] for _ in range(passes)]

    first = make_dataset(dataset_dir)
    a = run(first, 3)
    again = run(make_dataset(dataset_dir), 3)
    assert all(torch.equal(x, y) for pa, pb in zip(a, again) for x, y in zip(pa, pb))
    assert first.state_dict() == {"iters": 3}
    resumed = make_dataset(dataset_dir)
    resumed.load_state_dict({"iters": 2})
    third = run(resumed, 1)[0]
    assert len(third) == len(a[2]) and all(torch.equal(x, y) for x, y in zip(third, a[2]))
    assert any(not torch.equal(x, y) for x, y in zip(a[0], a[1]))  # passes differ


def test_train_two_ranks_split_the_global_batch(dataset_dir):
    whole = list(make_dataset(dataset_dir, global_batch_size=4))
    r0 = list(make_dataset(dataset_dir, global_batch_size=4, num_replicas=2, rank=0))
    r1 = list(make_dataset(dataset_dir, global_batch_size=4, num_replicas=2, rank=1))
    assert len(whole) == len(r0) == len(r1)
    for (_, w, ew), (_, b0, e0), (_, b1, e1) in zip(whole, r0, r1):
        assert ew == e0 == e1 == 4
        assert torch.equal(torch.cat([b0["inputs"], b1["inputs"]]), w["inputs"])
        assert torch.equal(
            torch.cat([b0["puzzle_identifiers"], b1["puzzle_identifiers"]]), w["puzzle_identifiers"]
        )


def test_test_mode_walks_everything_with_padding(dataset_dir):
    ds = make_dataset(dataset_dir, split="test", test_set_mode=True, global_batch_size=4)
    batches = list(ds)
    assert [e for _, _, e in batches] == [4, 3]
    inputs = torch.cat([b["inputs"] for _, b, _ in batches])
    stored = np.load(dataset_dir / "test" / "all__inputs.npy")
    assert torch.equal(inputs[:7], torch.from_numpy(stored.astype(np.int32)))
    last = batches[-1][1]
    assert (last["inputs"][3] == 0).all() and (last["labels"][3] == -100).all()
    assert last["puzzle_identifiers"][3] == 0
    ids = np.load(dataset_dir / "test" / "all__puzzle_identifiers.npy")
    assert torch.equal(
        torch.cat([b["puzzle_identifiers"] for _, b, _ in batches])[:7],
        torch.from_numpy(ids.astype(np.int32)),
    )


def test_test_mode_two_ranks_disjoint_cover(dataset_dir):
    parts = []
    for rank in (0, 1):
        ds = make_dataset(
            dataset_dir, split="test", test_set_mode=True, global_batch_size=4, num_replicas=2, rank=rank
        )
        parts.append(list(ds))
    stored = torch.from_numpy(np.load(dataset_dir / "test" / "all__inputs.npy").astype(np.int32))
    rows = []
    for (_, b0, e0), (_, b1, e1) in zip(*parts):
        assert e0 == e1
        rows.append(torch.cat([b0["inputs"], b1["inputs"]])[:e0])
    assert torch.equal(torch.cat(rows), stored)


def test_multi_example_puzzle_identifiers(tmp_path):
    train = make_set([3, 2, 4], [1, 1, 1])
    out = tmp_path / "ds"
    write_dataset(out, {"test": {"all": train}}, {"test": make_meta(train)}, ["<blank>", "a", "b"])
    batches = list(make_dataset(out, split="test", test_set_mode=True, global_batch_size=4))
    ids = torch.cat([b["puzzle_identifiers"] for _, b, _ in batches])[:9]
    expected = np.repeat(train.puzzle_identifiers, [3, 2, 4]).astype(np.int32)
    assert torch.equal(ids, torch.from_numpy(expected))


def test_puzzle_dataset_pickles(dataset_dir):
    ds = make_dataset(dataset_dir)
    clone = pickle.loads(pickle.dumps(ds))
    assert isinstance(clone, PuzzleDataset)
    assert isinstance(ds, torch.utils.data.IterableDataset)
