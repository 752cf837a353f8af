"""Where builds write: what --overwrite may replace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hrm.data.format as fmt
from hrm.cli import main
from hrm.data.format import (
    DatasetMetadata,
    PuzzleSetArrays,
    check_out_dir,
    not_a_dataset_reason,
    validate_dataset,
    write_dataset,
)
from hrm.errors import DataError

SRC = Path(fmt.__file__).resolve().parents[2]


def sudoku(out: Path | str, *extra: str) -> int:
    return main(["data", "sudoku", "--count", "6", "--size", "4", "--difficulty", "easy", "--num-aug", "1",
                 "--no-progress", "--out", str(out), *extra])  # fmt: skip


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("hrm: error:"), captured.err
    assert "Traceback" not in captured.err
    return captured.err


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def tiny_dataset_args() -> tuple:
    arrays = PuzzleSetArrays(
        inputs=np.array([[1, 2], [2, 1]]),
        labels=np.array([[2, 1], [1, 2]]),
        puzzle_identifiers=np.array([0, 0]),
        puzzle_indices=np.array([0, 1, 2]),
        group_indices=np.array([0, 2]),
    )
    meta = DatasetMetadata(
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        vocab_size=3,
        seq_len=2,
        num_puzzle_identifiers=1,
        total_groups=1,
        mean_puzzle_examples=1.0,
        sets=["all"],
    )
    return {"train": {"all": arrays}, "test": {"all": arrays}}, {"train": meta, "test": meta}, ["<blank>"]


# -- 1. --overwrite replaces a dataset, nothing else ---------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    assert sudoku(folder, "--overwrite") == 1
    err = one_error_line(capsys)
    assert str(folder) in err and "not a dataset directory" in err and "thesis.tex" in err
    assert (folder / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["papers"]


@pytest.mark.parametrize(
    "foreign",
    [
        "notes.txt",
        "train/notes.txt",
        "train/nested/x.npy",
        ".hidden.json",
        "logs/",
        "test/all__inputs.npy.bak",
    ],
)
def test_overwrite_refuses_a_dataset_with_anything_foreign(tmp_path, capsys, foreign):
    out = tmp_path / "ds"
    assert sudoku(out) == 0
    target = out / foreign
    if foreign.endswith("/"):
        target.mkdir()
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("mine")
    before = listing(out)
    capsys.readouterr()
    assert sudoku(out, "--overwrite", "--seed", "1") == 1
    assert "not a dataset directory" in one_error_line(capsys)
    assert listing(out) == before


def test_overwrite_replaces_a_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert sudoku(out) == 0
    (out / "test_puzzles.json").write_text("{}")  # extra JSON files belong to datasets (ARC writes one)
    assert not_a_dataset_reason(out) is None
    assert sudoku(out, "--overwrite", "--seed", "1") == 0
    assert validate_dataset(out) == []
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_a_folder_without_splits_is_not_a_dataset(tmp_path):
    (tmp_path / "identifiers.json").write_text("[]")
    assert "neither train/dataset.json nor test/dataset.json" in not_a_dataset_reason(tmp_path)
    (tmp_path / "other").mkdir()
    assert "not a split" in not_a_dataset_reason(tmp_path)


@pytest.mark.parametrize("out", [".", "..", "{cwd}", "sub/..", "{cwd}/../.."])
def test_current_directory_and_its_parents_are_refused(tmp_path, monkeypatch, capsys, out):
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    assert sudoku(work / "ds") == 0  # the current directory itself is a dataset: still refused
    monkeypatch.chdir(work / "ds")
    (work / "ds" / "sub").mkdir()
    (work / "ds" / "sub" / "dataset.json").write_text("{}")
    before = listing(tmp_path)
    capsys.readouterr()
    assert sudoku(out.format(cwd=work / "ds"), "--overwrite") == 1
    err = one_error_line(capsys)
    assert "current directory or one of its parents" in err
    assert listing(tmp_path) == before  # nothing deleted, no '..old-*' folder


def test_a_folder_holding_the_input_is_refused(tmp_path, capsys):
    out = tmp_path / "ds"
    assert sudoku(out) == 0
    capsys.readouterr()
    source = out / "identifiers.json"
    code = main(["data", "sudoku", "--from", str(source), "--out", str(out), "--overwrite", "--no-progress"])
    assert code == 1
    assert "holds the input" in one_error_line(capsys)
    tasks = tmp_path / "arc" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "t.json").write_text(json.dumps({"train": [{"input": [[1]], "output": [[2]]}],
                                              "test": [{"input": [[1]], "output": [[2]]}]}))  # fmt: skip
    code = main(["data", "arc", "--source", f"dir:{tasks}", "--num-aug", "0", "--out", str(tmp_path / "arc"),
                 "--overwrite"])  # fmt: skip
    assert code == 1
    assert "holds the input" in one_error_line(capsys)
    assert (tasks / "t.json").is_file()


def test_check_out_dir_api(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(DataError, match="already exists"):
        check_out_dir(tmp_path / "x")
    with pytest.raises(DataError, match="not a dataset directory"):
        check_out_dir(tmp_path / "x", overwrite=True)
    with pytest.raises(DataError, match="not a dataset directory"):
        write_dataset(tmp_path / "x", *tiny_dataset_args(), overwrite=True)
    assert (tmp_path / "x" / "f").exists()
    check_out_dir(tmp_path / "new", overwrite=True)  # a new directory is fine
