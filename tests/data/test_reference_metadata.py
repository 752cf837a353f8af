"""dataset.json as the reference loaders read it: TRM's metadata model requires every field, including
total_puzzles; HRM's lacks total_puzzles, and datasets it wrote are read all the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydantic
import pytest

from hrm.data import format as fmt


class TRMMetadata(pydantic.BaseModel):
    """The fields of TRM's PuzzleDatasetMetadata (dataset/common.py), all required; extra fields are
    refused here so that the file holds exactly these."""

    model_config = pydantic.ConfigDict(extra="forbid")

    pad_id: int
    ignore_label_id: int | None
    blank_identifier_id: int
    vocab_size: int
    seq_len: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    total_puzzles: int
    sets: list[str]


def _arc(out: Path, tmp: Path) -> None:
    from hrm.data.arc import build_arc_dataset

    rng = np.random.default_rng(0)
    for sub, name in (("training", "a"), ("evaluation", "b")):
        (tmp / "src" / sub).mkdir(parents=True, exist_ok=True)
        pairs = [{"input": g.tolist(), "output": g.T.tolist()} for g in rng.integers(0, 10, size=(4, 3, 2))]
        (tmp / "src" / sub / f"{name}.json").write_text(json.dumps({"train": pairs[:3], "test": pairs[3:]}))
    build_arc_dataset(out, sources=[str(tmp / "src")], num_aug=3, seed=0)


def _sudoku(out: Path, tmp: Path) -> None:
    from hrm.data.sudoku import build_sudoku_dataset

    build_sudoku_dataset(out, count=12, size=4, difficulty="easy", num_aug=2, seed=0)


def _maze(out: Path, tmp: Path) -> None:
    from hrm.data.maze import build_maze_dataset

    build_maze_dataset(out, count=6, test_count=3, size=7, aug=True, seed=0)


@pytest.mark.parametrize("build", [_arc, _sudoku, _maze], ids=["arc", "sudoku", "maze"])
def test_every_builder_writes_what_trm_loads(tmp_path, build):
    out = tmp_path / "ds"
    build(out, tmp_path)
    assert fmt.validate_dataset(out) == []
    for split in fmt.list_splits(out):
        raw = json.loads((out / split / fmt.METADATA_FILE).read_text())
        meta = TRMMetadata.model_validate(raw)
        _, sets = fmt.load_split(out, split)
        assert meta.total_puzzles == sum(s.num_puzzles for s in sets.values())
        assert list(raw) == list(TRMMetadata.model_fields)  # TRM's field order


def test_a_dataset_without_total_puzzles_is_read(tmp_path):
    out = tmp_path / "ds"
    _sudoku(out, tmp_path)
    meta_file = out / "train" / fmt.METADATA_FILE
    raw = json.loads(meta_file.read_text())
    puzzles = raw.pop("total_puzzles")
    meta_file.write_text(json.dumps(raw))
    assert fmt.load_metadata(out, "train").total_puzzles is None
    assert fmt.validate_dataset(out) == []
    with pytest.raises(pydantic.ValidationError, match="total_puzzles"):
        TRMMetadata.model_validate(raw)

    meta_file.write_text(json.dumps({**raw, "total_puzzles": puzzles + 1}))
    problems = fmt.validate_dataset(out)
    assert len(problems) == 1 and f"total_puzzles is {puzzles + 1}" in problems[0]


def test_write_dataset_counts_total_puzzles_when_not_given(tmp_path):
    arrays = fmt.PuzzleSetArrays(
        inputs=np.ones((5, 4), dtype=np.uint8),
        labels=np.ones((5, 4), dtype=np.uint8),
        puzzle_identifiers=np.zeros(3, dtype=np.int32),
        puzzle_indices=np.array([0, 2, 4, 5], dtype=np.int32),
        group_indices=np.array([0, 1, 3], dtype=np.int32),
    )
    meta = fmt.DatasetMetadata(
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        vocab_size=3,
        seq_len=4,
        num_puzzle_identifiers=1,
        total_groups=2,
        mean_puzzle_examples=5 / 3,
        sets=["all"],
    )
    fmt.write_dataset(tmp_path / "ds", {"train": {"all": arrays}}, {"train": meta}, ["<blank>"])
    raw = json.loads((tmp_path / "ds" / "train" / fmt.METADATA_FILE).read_text())
    assert TRMMetadata.model_validate(raw).total_puzzles == 3
