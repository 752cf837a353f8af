"""One validation layer for `hrm data validate`, training (`PuzzleDataset`) and `hrm eval`: .npy
headers against file sizes, every path inside the dataset, tokens inside the vocabulary, metadata
numbers in range."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydantic
import pytest

from hrm.cli import main
from hrm.data.dataset import PuzzleDataset, PuzzleDatasetConfig
from hrm.data.format import (
    DatasetMetadata,
    PuzzleSetArrays,
    check_split,
    load_metadata,
    validate_dataset,
    write_dataset,
)
from hrm.errors import DataError

GOOD_META = {
    "pad_id": 0,
    "ignore_label_id": 0,
    "blank_identifier_id": 0,
    "vocab_size": 5,
    "seq_len": 4,
    "num_puzzle_identifiers": 1,
    "total_groups": 3,
    "mean_puzzle_examples": 1.0,
    "sets": ["all"],
}


def make(out: Path, ignore_label_id: int | None = 0, labels: np.ndarray | None = None) -> Path:
    arrays = PuzzleSetArrays(
        inputs=np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 1, 1, 1]]),
        labels=np.array([[2, 2, 3, 3], [1, 3, 2, 4], [0, 0, 1, 1]]) if labels is None else labels,
        puzzle_identifiers=np.zeros(3, dtype=np.int32),
        puzzle_indices=np.arange(4),
        group_indices=np.arange(4),
    )
    meta = DatasetMetadata(**(GOOD_META | {"ignore_label_id": ignore_label_id}))
    write_dataset(out, {"train": {"all": arrays}, "test": {"all": arrays}}, {"train": meta, "test": meta},
                  ["<blank>"])  # fmt: skip
    return out


def dataset(path: Path, split: str = "train", test: bool = False) -> PuzzleDataset:
    config = PuzzleDatasetConfig(dataset_path=str(path), global_batch_size=2, test_set_mode=test)
    return PuzzleDataset(config, split)


def cli_validate_fails(path: Path, capsys, says: str) -> None:
    assert main(["data", "validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert says in captured.out, captured.out


def npy_header(shape: tuple[int, ...], descr: str = "<i1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


# -- .npy files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inputs", "labels", "puzzle_indices", "group_indices"])
def test_an_empty_npy_fails_in_one_line(tmp_path, capsys, name):
    out = make(tmp_path / "ds")
    (out / "train" / f"all__{name}.npy").write_bytes(b"")
    cli_validate_fails(out, capsys, "is empty (0 bytes)")
    with pytest.raises(DataError, match="empty"):
        next(iter(dataset(out)))


@pytest.mark.parametrize("name", ["inputs", "puzzle_indices", "puzzle_identifiers"])
def test_a_lying_npy_header_fails_fast(tmp_path, capsys, name):
    out = make(tmp_path / "ds")
    # A header claiming an array of 745 GiB, followed by 16 bytes.
    (out / "train" / f"all__{name}.npy").write_bytes(npy_header((800_000, 1_000_000)) + bytes(16))
    start = time.perf_counter()
    cli_validate_fails(out, capsys, "does not match its header")
    with pytest.raises(DataError, match=r"745|800\.0 GB"):
        check_split(out, "train")
    assert time.perf_counter() - start < 2


def test_truncated_and_padded_npy_files(tmp_path, capsys):
    out = make(tmp_path / "ds")
    file = out / "test" / "all__labels.npy"
    data = file.read_bytes()
    file.write_bytes(data[:-1])
    cli_validate_fails(out, capsys, "does not match its header")
    file.write_bytes(data + b"x")
    cli_validate_fails(out, capsys, "does not match its header")
    file.write_bytes(b"not numpy at all")
    cli_validate_fails(out, capsys, "not a readable .npy array")
    file.write_bytes(npy_header((3, 4), "|O") + bytes(3 * 4 * 8))
    cli_validate_fails(out, capsys, "not numbers")


# -- paths stay inside the dataset ----------------------------------------------------------------


def test_sets_naming_other_places_are_refused(tmp_path, capsys):
    other = make(tmp_path / "other")
    out = make(tmp_path / "ds")
    meta_file = out / "train" / "dataset.json"
    meta = json.loads(meta_file.read_text())
    for name in ["../../other/train/all", str(other / "train" / "all"), "a/b", "..", ".hidden", ""]:
        meta_file.write_text(json.dumps(meta | {"sets": [name]}))
        cli_validate_fails(out, capsys, "not a plain name")
        with pytest.raises(DataError, match="sets"):
            dataset(out)


def test_a_file_linking_out_of_the_dataset_is_refused(tmp_path, capsys):
    other = make(tmp_path / "other")
    out = make(tmp_path / "ds")
    for rel in ("train/all__inputs.npy", "identifiers.json"):
        (out / rel).unlink()
        (out / rel).symlink_to(other / rel)
        cli_validate_fails(out, capsys, "lies outside the dataset directory")
        (out / rel).unlink()
        (out / rel).write_bytes((other / rel).read_bytes())
    (out / "train" / "dataset.json").unlink()
    (out / "train" / "dataset.json").symlink_to(other / "train" / "dataset.json")
    with pytest.raises(DataError, match="lies outside"):
        dataset(out)


# -- tokens inside the vocabulary ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [("inputs", 5), ("inputs", -1), ("labels", 9)])
def test_tokens_outside_the_vocabulary_fail_before_training(tmp_path, capsys, name, value):
    out = make(tmp_path / "ds")
    file = out / "train" / f"all__{name}.npy"
    arr = np.load(file).astype(np.int16)
    arr[1, 2] = value
    np.save(file, arr)
    cli_validate_fails(out, capsys, f"{name} values")
    data = dataset(out)
    with pytest.raises(DataError, match=f"{name} values .* outside 0..4"):
        next(iter(data))  # at the first load, not in the middle of a run


def test_the_ignore_label_may_lie_outside_the_vocabulary(tmp_path):
    labels = np.array([[2, 2, 3, 3], [1, 3, 2, 4], [-100, -100, 1, 1]])
    out = make(tmp_path / "ds", ignore_label_id=-100, labels=labels)
    assert validate_dataset(out) == []
    batches = [batch for _, batch, _ in dataset(out, "test", test=True)]
    assert min(int(batch["labels"].min()) for batch in batches) == -100
    labels[0, 0] = -5  # but no other value
    np.save(out / "train" / "all__labels.npy", labels.astype(np.int8))
    problems = validate_dataset(out)
    assert len(problems) == 1 and "values -5..4 outside 0..4 (besides the ignore label -100)" in problems[0]


# -- metadata numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mean_puzzle_examples", math.nan),
        ("mean_puzzle_examples", math.inf),
        ("mean_puzzle_examples", -1.0),
        ("vocab_size", 0),
        ("vocab_size", 2**40),
        ("seq_len", 0),
        ("seq_len", -4),
        ("pad_id", -1),
        ("pad_id", 5),  # outside the vocabulary
        ("blank_identifier_id", 1),  # outside the identifiers
        ("num_puzzle_identifiers", 0),
        ("total_groups", -1),
        ("ignore_label_id", 2**40),
        ("sets", []),
        ("sets", ["all", "all"]),
    ],
)
def test_impossible_metadata_is_rejected(tmp_path, field, value):
    with pytest.raises(pydantic.ValidationError):
        DatasetMetadata(**(GOOD_META | {field: value}))
    out = make(tmp_path / "ds")
    text = json.dumps(GOOD_META | {field: value})  # NaN and Infinity as Python's json writes them
    (out / "train" / "dataset.json").write_text(text)
    with pytest.raises(DataError, match=r"dataset\.json") as info:
        load_metadata(out, "train")
    assert "\n" not in str(info.value)
    assert any("dataset.json" in p for p in validate_dataset(out))


# -- hrm eval --------------------------------------------------------------------------------------


def test_eval_validates_the_test_split_before_evaluating(tmp_path, monkeypatch):
    import hrm.checkpoint
    from hrm.evaluate import evaluate_cli

    out = make(tmp_path / "ds")
    file = out / "test" / "all__inputs.npy"
    arr = np.load(file)
    arr[0, 0] = 7  # outside the vocabulary of 5
    np.save(file, arr)
    model = SimpleNamespace(config=SimpleNamespace(seq_len=4, vocab_size=5))
    loaded = SimpleNamespace(model=model, source=tmp_path / "ckpt", card=SimpleNamespace(loss_type="x"))
    monkeypatch.setattr(hrm.checkpoint, "load_model", lambda *args, **kwargs: loaded)
    with pytest.raises(DataError, match=r"inputs values 1\.\.7 outside 0\.\.4"):
        evaluate_cli(str(tmp_path / "ckpt"), data=str(out), device="cpu")
