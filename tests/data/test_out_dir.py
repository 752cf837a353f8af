"""Where builds write: what --overwrite may replace, temporary folders left by killed builds, and
durable, all-or-nothing writes that fail in one line."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
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


# -- 2. temporary folders of killed builds -------------------------------------------------------

KILLED_BUILD = """
import os, sys
import hrm.data.format as fmt
from hrm.data.sudoku import build_sudoku_dataset
write = fmt._write_file
calls = []
def dying_write(path, fill):
    write(path, fill)
    calls.append(path)
    if len(calls) == 3:
        os._exit(9)  # as if killed in the middle of writing
fmt._write_file = dying_write
build_sudoku_dataset(sys.argv[1], count=4, size=4, difficulty="easy", overwrite=True)
"""


def killed_build(out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(out)], env=env, timeout=120)
    assert proc.returncode == 9


def test_a_killed_builds_temporary_folder_is_removed_by_the_next_build(tmp_path, capsys):
    out = tmp_path / "ds"
    killed_build(out)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".ds.tmp-")
    assert sudoku(out) == 0
    assert "removed 1 temporary folder(s) left by an interrupted build" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_only_dead_builders_own_folders_are_removed(tmp_path):
    out = tmp_path / "ds"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tag = fmt.host_tag()
    names = {
        f".ds.tmp-{dead.pid}-{tag}-abcd1234": False,  # removed
        f".ds.old-{dead.pid}-{tag}-abcd1234": False,  # removed
        f".ds.tmp-{os.getppid()}-{tag}-abcd1234": True,  # a live process's build
        f".ds.tmp-{os.getpid()}-{tag}-abcd1234": True,  # this process's
        f".ds.tmp-{dead.pid}-00000000-abcd1234": True,  # another machine's
        f".other.tmp-{dead.pid}-{tag}-abcd1234": True,  # another output's
        ".ds.tmp-abcd1234": True,  # not named by a builder of this version
        "ds.tmp-1-x": True,
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    write_dataset(out, *tiny_dataset_args())
    kept = {name for name in names if (tmp_path / name).exists()}
    assert kept == {name for name, keep in names.items() if keep}


# -- 3. durable, all-or-nothing writes -----------------------------------------------------------


def test_every_file_and_folder_is_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    out = tmp_path / "ds"
    write_dataset(out, *tiny_dataset_args())
    tmp = Path(synced[0]).parents[1]  # the temporary folder the first file was written in
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert {str(tmp / f) for f in files} <= set(synced)
    dirs = [str(tmp / "train"), str(tmp / "test"), str(tmp), str(tmp_path)]
    assert all(d in synced for d in dirs)
    # the files before their folders, the temporary folder before the rename, the parent last
    assert max(synced.index(str(tmp / f)) for f in files) < synced.index(str(tmp))
    assert synced[-1] == str(tmp_path)


def count_calls(monkeypatch, obj, name: str, replace: bool) -> int:
    """How many times a write (replacing a dataset or not) calls ``obj.name``."""
    calls = []
    real = getattr(obj, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    with tempfile.TemporaryDirectory() as scratch:
        if replace:
            write_dataset(Path(scratch) / "ds", *tiny_dataset_args())
        with monkeypatch.context() as m:
            m.setattr(obj, name, counting)
            write_dataset(Path(scratch) / "ds", *tiny_dataset_args(), overwrite=True)
    return len(calls)


def fail_at(monkeypatch, obj, name: str, k: int, exc: BaseException) -> None:
    calls = []
    real = getattr(obj, name)

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, failing)


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize(
    ("target", "exc", "says"),
    [
        ("_write_file", OSError(errno.ENOSPC, "No space left on device"), "free some disk space"),
        ("_write_file", MemoryError(), "out of memory"),
        ("fsync", OSError(errno.EIO, "Input/output error"), "Input/output error"),
        ("replace", OSError(errno.EROFS, "Read-only file system"), "read-only"),
    ],
)
def test_a_failing_write_leaves_nothing_and_says_so_in_one_line(
    tmp_path, monkeypatch, capsys, target, exc, says, replace
):
    obj = fmt if target == "_write_file" else os
    total = count_calls(monkeypatch, obj, target, replace)
    assert total > 0
    out = tmp_path / "ds"
    if replace:
        write_dataset(out, *tiny_dataset_args())
    before = listing(tmp_path)
    old_inputs = (out / "train" / "all__inputs.npy").read_bytes() if replace else None
    for k in range(1, total + 1):
        with monkeypatch.context() as m:
            fail_at(m, obj, target, k, exc)
            with pytest.raises(DataError) as info:
                write_dataset(out, *tiny_dataset_args(), overwrite=True)
        message = str(info.value)
        assert "\n" not in message and str(out) in message and says in message, message
        if target == "fsync" and k == total:  # the parent's fsync, after the rename
            assert "in place but may not survive a crash" in message
            continue
        assert "nothing was written" in message
        assert listing(tmp_path) == before, k
        if replace:
            assert (out / "train" / "all__inputs.npy").read_bytes() == old_inputs


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_at_each_file(tmp_path, monkeypatch):
    """Whichever file the disk fills up on, one line and nothing left (builtins.open patched)."""
    import builtins

    real_open = builtins.open
    opened: list[str] = []
    fail_on = [0]

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if str(file).startswith(str(tmp_path)) and ("w" in mode or "x" in mode):
            opened.append(str(file))
            if len(opened) == fail_on[0]:
                return FullDisk(f)
        return f

    monkeypatch.setattr(builtins, "open", open_)
    write_dataset(tmp_path / "probe" / "ds", *tiny_dataset_args())
    total = len(opened)
    assert total == 13  # 2 x (metadata + 5 arrays) + identifiers.json
    out = tmp_path / "ds"
    for k in range(1, total + 1):
        opened.clear()
        fail_on[0] = k
        with pytest.raises(DataError, match="No space left on device") as info:
            write_dataset(out, *tiny_dataset_args())
        assert "\n" not in str(info.value) and str(out) in str(info.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["probe"], k


def test_no_space_through_the_command_line(tmp_path, monkeypatch, capsys):
    fail_at(monkeypatch, fmt, "_write_file", 5, OSError(errno.ENOSPC, "No space left on device"))
    assert sudoku(tmp_path / "deeper" / "ds") == 1
    err = one_error_line(capsys)
    assert "No space left on device" in err and str(tmp_path / "deeper" / "ds") in err
    assert list(tmp_path.iterdir()) == []  # the parent it made is gone too


def test_read_only_file_system(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    assert sudoku(tmp_path / "ds") == 1
    assert "read-only: choose another --out" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert sudoku(folder / "ds") == 1
        assert "Permission denied" in one_error_line(capsys)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)
