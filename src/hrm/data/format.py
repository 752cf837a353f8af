"""The on-disk dataset format (that of the reference HRM code): metadata, writing, reading, validation.

A dataset directory holds::

    DIR/identifiers.json                      puzzle identifier names, index = id
    DIR/<split>/dataset.json                  DatasetMetadata
    DIR/<split>/<set>__inputs.npy             [N_examples, seq_len] token ids
    DIR/<split>/<set>__labels.npy             [N_examples, seq_len] token ids (ignore_label_id = no loss)
    DIR/<split>/<set>__puzzle_identifiers.npy [N_puzzles]
    DIR/<split>/<set>__puzzle_indices.npy     [N_puzzles + 1]  puzzle p = examples [idx[p], idx[p+1])
    DIR/<split>/<set>__group_indices.npy      [N_groups + 1]   group g = puzzles  [idx[g], idx[g+1])
    DIR/<extra>.json                          optional extra files (e.g. ARC's test_puzzles.json)

Every path a dataset names stays inside its directory: set names are plain names, and a file that
resolves elsewhere (a symbolic link out of it) is refused. Reading checks each ``.npy`` header
against the file's size before anything is loaded or mapped, and `check_split` (what `PuzzleDataset`
and ``hrm eval`` run) applies the checks of `validate_dataset` to one split.

Writing (`write_dataset`) goes through a temporary folder beside the output, each file and folder
fsynced, then renamed into place; ``overwrite`` only ever replaces a dataset directory (see
`check_out_dir`), and temporary folders left by a killed build are removed by the next one.

This module is torch-free; batches for training come from `hrm.data.dataset.PuzzleDataset`.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pydantic

from hrm.errors import DataError

FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
IGNORE_LABEL_ID = -100  # what the loss ignores; labels equal to metadata.ignore_label_id become this
IDENTIFIERS_FILE = "identifiers.json"
METADATA_FILE = "dataset.json"
# A set or split name is part of file and folder names: a plain name, so no path leaves the dataset.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_ARRAY_FILE = re.compile(rf"{PLAIN_NAME.pattern}__(?:{'|'.join(FIELDS)})\.npy")
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


@dataclass
class PuzzleSetArrays:
    """One named set of one split, in the reference layout."""

    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    puzzle_indices: np.ndarray
    group_indices: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in FIELDS}

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_puzzles(self) -> int:
        return int(self.puzzle_identifiers.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.group_indices.shape[0]) - 1


class DatasetMetadata(pydantic.BaseModel):
    """The reference's dataset.json, same field names and order, each number in the range it can have.
    ``total_puzzles`` (the puzzles of the split, augmented ones included) is TRM's addition, required
    by its loader; HRM's files lack it, so it may be missing when read (None). `write_dataset` always
    writes it.

    Token ids, identifiers and the sequence length become int32 tensors, hence their bounds;
    ``pad_id`` is a token of the vocabulary and ``blank_identifier_id`` an identifier; ``sets`` are
    distinct plain names (they name files of the split's folder).
    """

    pad_id: int = pydantic.Field(ge=0, le=_INT32_MAX)
    ignore_label_id: int | None = pydantic.Field(ge=-(2**31), le=_INT32_MAX)
    blank_identifier_id: int = pydantic.Field(ge=0, le=_INT32_MAX)
    vocab_size: int = pydantic.Field(ge=1, le=2**31)
    seq_len: int = pydantic.Field(ge=1, le=_INT32_MAX)
    num_puzzle_identifiers: int = pydantic.Field(ge=1, le=2**31)
    total_groups: int = pydantic.Field(ge=0, le=_INT64_MAX)
    mean_puzzle_examples: float = pydantic.Field(ge=0, allow_inf_nan=False)
    total_puzzles: int | None = pydantic.Field(default=None, ge=0, le=_INT64_MAX)
    sets: list[str] = pydantic.Field(min_length=1)

    @pydantic.field_validator("sets")
    @classmethod
    def _plain_set_names(cls, sets: list[str]) -> list[str]:
        for name in sets:
            if not PLAIN_NAME.fullmatch(name):
                raise ValueError(
                    f"set name {name!r} is not a plain name (letters, digits, '_', '.', '-'; not "
                    "starting with '.'), so its files could lie outside the dataset"
                )
        if len(set(sets)) != len(sets):
            raise ValueError(f"set names repeat: {sets}")
        return sets

    @pydantic.model_validator(mode="after")
    def _ids_in_range(self) -> DatasetMetadata:
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id {self.pad_id} is outside the vocabulary of {self.vocab_size}")
        if self.blank_identifier_id >= self.num_puzzle_identifiers:
            raise ValueError(
                f"blank_identifier_id {self.blank_identifier_id} is outside "
                f"0..{self.num_puzzle_identifiers - 1} (num_puzzle_identifiers)"
            )
        return self


@dataclass
class SplitSummary:
    examples: int = 0
    puzzles: int = 0
    groups: int = 0


@dataclass
class DatasetSummary:
    """What `write_dataset` wrote: where, how much, and the files."""

    path: Path
    splits: dict[str, SplitSummary] = field(default_factory=dict)
    num_bytes: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        parts = [
            f"{name}: {s.examples:,} examples, {s.puzzles:,} puzzles, {s.groups:,} groups"
            for name, s in self.splits.items()
        ]
        lines = [f"wrote {self.path} ({_human_bytes(self.num_bytes)}, {len(self.files)} files)"]
        lines += [f"  {p}" for p in parts]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64)


def smallest_dtype(array: np.ndarray) -> np.dtype:
    """The smallest integer dtype holding every value of ``array`` (uint8 for an empty array)."""
    if array.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(array.min()), int(array.max())
    for dtype in _DTYPES:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    raise DataError(f"values {lo}..{hi} do not fit in a 64-bit integer")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def check_out_dir(
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse an output path that `write_dataset` must not write: the current directory or one of
    its parents, a directory holding one of ``inputs`` (the files a build reads), a file, or a
    non-empty directory unless ``overwrite`` is given and it is a dataset directory (see
    `not_a_dataset_reason`): ``overwrite`` replaces a dataset, never anything else. Builders call it
    first, to fail before any work."""
    out = Path(out_dir)
    real = out.resolve()
    here = Path.cwd().resolve()
    if real == here or real in here.parents:
        raise DataError(
            f"refusing to write a dataset to {out}: it is the current directory or one of its parents; "
            "name a new directory with --out"
        )
    for item in inputs:
        source = Path(item).resolve()
        if source == real or real in source.parents:
            raise DataError(
                f"refusing to write a dataset to {out}: it holds the input {item}; choose another --out"
            )
    if out.exists() and not out.is_dir():
        raise DataError(f"cannot write a dataset to {out}: it exists and is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise DataError(
            f"{out} already exists and is not empty; pass --overwrite (overwrite=True) to replace it"
        )
    reason = "it is a symbolic link" if out.is_symlink() else not_a_dataset_reason(out)
    if reason:
        raise DataError(
            f"refusing to overwrite {out}: it is not a dataset directory ({reason}); --overwrite only "
            "replaces a dataset, so remove it yourself or choose another --out"
        )


def not_a_dataset_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a directory that `write_dataset` could have written (None when it is one),
    which is what ``overwrite`` may replace.

    A dataset directory holds ``train/dataset.json`` or ``test/dataset.json`` and nothing foreign:
    every entry is either a JSON file with a plain name (``identifiers.json``, extra files such as
    ARC's ``test_puzzles.json``) or a split folder, which holds ``dataset.json`` and
    ``<set>__<field>.npy`` files only; no symbolic links, nothing else.
    """
    root = Path(path)
    for entry in sorted(root.iterdir()):
        name = entry.name
        if entry.is_symlink():
            return f"{name!r} is a symbolic link"
        if entry.is_file():
            if PLAIN_NAME.fullmatch(name) and name.endswith(".json"):
                continue
            return f"it holds {name!r}, which no dataset builder writes"
        if not entry.is_dir():
            return f"it holds {name!r}, which is neither a file nor a folder"
        if not (entry / METADATA_FILE).is_file():
            return f"its folder {name!r} is not a split (no {METADATA_FILE})"
        for inner in sorted(entry.iterdir()):
            known = inner.name == METADATA_FILE or _ARRAY_FILE.fullmatch(inner.name)
            if inner.is_symlink() or not inner.is_file() or not known:
                return f"it holds {f'{name}/{inner.name}'!r}, which no dataset builder writes"
    if not any((root / split / METADATA_FILE).is_file() for split in ("train", "test")):
        return f"it has neither train/{METADATA_FILE} nor test/{METADATA_FILE}"
    return None


def _check_set(where: str, arrays: PuzzleSetArrays, meta: DatasetMetadata) -> list[str]:
    return _set_problems(where, arrays.as_dict(), meta)


def write_dataset(
    out_dir: str | os.PathLike[str],
    splits: dict[str, dict[str, PuzzleSetArrays]],
    metadata: dict[str, DatasetMetadata],
    identifiers: list[str],
    extra_files: dict[str, object] | None = None,
    overwrite: bool = False,
) -> DatasetSummary:
    """Write a dataset directory atomically and durably: everything goes to a temporary folder beside
    ``out_dir`` (each file fsynced as it is written, then the folders), which is renamed into place
    (then the parent folder is fsynced), so a failure leaves nothing half-written. An OSError (a full
    disk, a read-only or forbidden folder) or MemoryError on the way is a DataError naming the
    directory and what to do.

    Arrays are checked first (the same checks as `validate_dataset`) and stored in the smallest integer
    dtype that holds them. An existing non-empty ``out_dir`` is refused unless ``overwrite`` and it is
    a dataset directory (`check_out_dir`). Temporary folders that an earlier, killed build of the same
    ``out_dir`` left on this machine are removed first.
    """
    given = Path(out_dir)
    check_out_dir(given, overwrite)
    if set(splits) != set(metadata):
        raise DataError(f"splits {sorted(splits)} and metadata {sorted(metadata)} name different splits")
    problems: list[str] = []
    for split, sets in splits.items():
        meta = metadata[split]
        if not PLAIN_NAME.fullmatch(split):
            problems.append(f"split name {split!r} is not a plain name")
        if sorted(sets) != sorted(meta.sets):
            problems.append(f"{split}: metadata sets {meta.sets} but arrays for {sorted(sets)}")
        for set_name, arrays in sets.items():
            problems += _check_set(f"{split}/{set_name}", arrays, meta)
        problems += _metadata_problems(split, sets, meta)
        if meta.num_puzzle_identifiers != len(identifiers):
            problems.append(
                f"{split}: num_puzzle_identifiers is {meta.num_puzzle_identifiers} "
                f"but {len(identifiers)} identifiers were given"
            )
    if extra_files:
        for name in extra_files:
            if not PLAIN_NAME.fullmatch(name) or name in splits or name == IDENTIFIERS_FILE:
                problems.append(
                    f"extra file name {name!r} is not a plain file name or clashes with the layout"
                )
    if problems:
        raise DataError(f"refusing to write an invalid dataset to {given}: {problems[0]}")

    out = Path(os.path.abspath(given))
    created = _make_parents(out.parent, given)
    summary = DatasetSummary(path=given)
    removed = remove_stale_temp_dirs(out)
    if removed:
        summary.notes.append(f"removed {len(removed)} temporary folder(s) left by an interrupted build")
    tmp: Path | None = None
    stage = f"creating a temporary folder in {out.parent}"
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "tmp"), dir=out.parent))
        for split, sets in splits.items():
            split_dir = tmp / split
            stage = f"creating {split}/"
            split_dir.mkdir()
            stage = f"writing {split}/{METADATA_FILE}"
            meta = metadata[split]
            if meta.total_puzzles is None:  # written all the same: TRM's loader requires it
                meta = meta.model_copy(update={"total_puzzles": sum(a.num_puzzles for a in sets.values())})
            _write_json(split_dir / METADATA_FILE, meta.model_dump())
            total = SplitSummary()
            for set_name in metadata[split].sets:
                arrays = sets[set_name]
                for name, array in arrays.as_dict().items():
                    file_name = f"{set_name}__{name}.npy"
                    stage = f"writing {split}/{file_name}"
                    stored = np.ascontiguousarray(array, smallest_dtype(array))
                    _write_file(split_dir / file_name, functools.partial(np.save, arr=stored))
                total.examples += arrays.num_examples
                total.puzzles += arrays.num_puzzles
                total.groups += arrays.num_groups
            summary.splits[split] = total
        stage = f"writing {IDENTIFIERS_FILE}"
        _write_json(tmp / IDENTIFIERS_FILE, list(identifiers))
        for name, content in (extra_files or {}).items():
            stage = f"writing {name}"
            _write_json(tmp / name, content)
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                summary.files.append(str(path.relative_to(tmp)))
                summary.num_bytes += path.stat().st_size
        stage = "syncing it to disk"
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        for split in splits:
            _fsync_dir(tmp / split)
        _fsync_dir(tmp)
        stage = f"moving it into place in {out.parent}"
        old = _replace_dir(tmp, out)
        tmp = None  # in place now
        try:
            stage = "syncing its folder to disk"
            _fsync_dir(out.parent)
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except (OSError, MemoryError) as exc:
        moved = tmp is None
        _discard(tmp, created)
        raise DataError(_write_error(given, stage, exc, moved)) from None
    except BaseException:
        _discard(tmp, created)
        raise
    return summary


def _write_error(out: Path, stage: str, exc: OSError | MemoryError, moved: bool = False) -> str:
    """One line for a failed write: the directory, the cause, what was being done, what to do."""
    outcome = "it is in place but may not survive a crash" if moved else "nothing was written"
    if isinstance(exc, MemoryError):
        return (
            f"cannot write the dataset {out}: out of memory (while {stage}); build a smaller dataset "
            f"(fewer puzzles or augmentations); {outcome}"
        )
    advice = {
        errno.ENOSPC: "free some disk space or choose another --out",
        errno.EDQUOT: "free some space within your disk quota or choose another --out",
        errno.EROFS: "the file system is read-only: choose another --out",
        errno.EACCES: "choose a directory you may write to with --out",
        errno.EPERM: "choose a directory you may write to with --out",
    }.get(exc.errno or 0, "check the directory and try again")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot write the dataset {out}: {reason} (while {stage}); {advice}; {outcome}"


def _make_parents(parent: Path, given: Path) -> list[Path]:
    """Create ``parent`` and its missing ancestors; the ones created, deepest first (a failed write
    removes them again)."""
    created = []
    p = parent
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _discard(None, created)
        raise DataError(_write_error(given, f"creating {parent}", exc)) from None
    return created


def _discard(tmp: Path | None, created: list[Path]) -> None:
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    for folder in created:  # deepest first; only if still empty
        try:
            folder.rmdir()
        except OSError:
            break


def _write_file(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Create ``path``, fill it with ``write(file)`` and fsync it: every file of a dataset is written here."""
    with open(path, "xb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, content: object) -> None:
    text = json.dumps(content, indent=2) + "\n"
    _write_file(path, lambda f: f.write(text.encode("utf-8")))


def _fsync_dir(path: Path) -> None:
    """fsync a directory, so the entries made in it (files, renames) survive a crash."""
    if os.name == "nt":  # no directory handles to fsync there
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # file systems without it
            raise
    finally:
        os.close(fd)


def _replace_dir(tmp: Path, out: Path) -> Path | None:
    """Move ``tmp`` to ``out``. An existing ``out`` is moved aside first, into the folder returned,
    which the caller deletes once the new one is durable (it is moved back if the move fails)."""
    if not out.exists():
        os.replace(tmp, out)
        return None
    old = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "old"), dir=out.parent))
    try:
        os.replace(out, old / "d")
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)
        raise
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old / "d", out)
        shutil.rmtree(old, ignore_errors=True)
        raise
    return old


# Temporary folders are named ".<out name>.tmp-<pid>-<host>-<random>" (".old-" for a replaced
# dataset on its way out), so a later build can tell those of a process that is gone.
@functools.cache
def host_tag() -> str:
    """A short tag of this machine, in the names of temporary build folders."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def _temp_prefix(out: Path, kind: str) -> str:
    return f".{out.name}.{kind}-{os.getpid()}-{host_tag()}-"


def _process_alive(pid: int) -> bool:
    if pid <= 0 or os.name == "nt":  # not a process of ours; on Windows os.kill would end it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_temp_dirs(out_dir: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary folders that builds of ``out_dir`` left beside it when they were killed:
    only folders named as `write_dataset` names them, made on this machine by a process that no
    longer runs. Returns the names removed."""
    out = Path(os.path.abspath(out_dir))
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:tmp|old)-(\d+)-{host_tag()}-[a-z0-9_]+")
    try:
        entries = sorted(out.parent.iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _process_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry.name)
    return removed


# --------------------------------------------------------------------------------------------------
# Reading and validation
# --------------------------------------------------------------------------------------------------


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _inside(root: Path, file: Path) -> Path:
    """``file``, after checking that it resolves to a place inside ``root`` (no symbolic link out)."""
    real_root = root.resolve()
    real = file.resolve()
    if real != real_root and real_root not in real.parents:
        raise DataError(
            f"{file} lies outside the dataset directory {root} (it resolves to {real}); "
            "a dataset's files must be inside it"
        )
    return file


def load_metadata(path: str | os.PathLike[str], split: str) -> DatasetMetadata:
    """Read ``path/split/dataset.json``; DataError when it is missing or malformed, or any of its
    numbers is out of range (see `DatasetMetadata`)."""
    if not PLAIN_NAME.fullmatch(split):
        raise DataError(f"split name {split!r} is not a plain name")
    file = Path(path) / split / METADATA_FILE
    if not file.is_file():
        raise DataError(f"{file} not found: {path} is not a dataset directory with a '{split}' split")
    _inside(Path(path), file)
    try:
        return DatasetMetadata.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{file} is not valid JSON: {_one_line(exc)}") from None
    except RecursionError:
        raise DataError(f"{file} is not valid metadata: its JSON is nested too deeply") from None
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = _one_line(first["msg"]).removeprefix("Value error, ")
        if not loc:
            raise DataError(f"{file}: {msg}") from None
        raise DataError(f"{file} has a bad field {loc!r}: {msg}") from None


def _npy_header(file: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file, after checking that the file holds exactly the data its header
    describes: an empty or truncated file, or a header claiming a huge array, fails here, before
    anything is allocated or mapped."""
    try:
        size = file.stat().st_size
        if size == 0:
            raise DataError(f"{file} is empty (0 bytes), not a .npy array")
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported here")
            offset = f.tell()
    except OSError as exc:
        raise DataError(f"{file} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, EOFError, SyntaxError, TypeError, RecursionError, MemoryError) as exc:
        raise DataError(f"{file} is not a readable .npy array: {_one_line(exc)}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{file} holds {dtype} records, not numbers")
    data = math.prod(shape) * dtype.itemsize
    if size - offset != data:
        raise DataError(
            f"{file} does not match its header: the header describes an array of shape {tuple(shape)} "
            f"of {dtype} ({_human_bytes(data)} of data) but the file holds {size - offset:,} bytes "
            "after it (truncated, or not written by numpy)"
        )
    return tuple(shape), dtype


def _load_array(file: Path, mmap: bool) -> np.ndarray:
    _npy_header(file)
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"{file} is not a readable .npy array: {_one_line(exc)}") from None


def load_split(
    path: str | os.PathLike[str], split: str, mmap: bool = True
) -> tuple[DatasetMetadata, dict[str, PuzzleSetArrays]]:
    """Metadata and arrays of one split; inputs/labels memory-mapped when ``mmap``. Each file must
    lie inside ``path`` and match its .npy header; the arrays' values are checked by `check_split`."""
    root = Path(path)
    meta = load_metadata(root, split)
    sets = {}
    for set_name in meta.sets:
        loaded = {}
        for name in FIELDS:
            file = root / split / f"{set_name}__{name}.npy"
            if not file.is_file():
                raise DataError(f"{file} not found; the dataset is incomplete")
            _inside(root, file)
            loaded[name] = _load_array(file, mmap and name in ("inputs", "labels"))
        sets[set_name] = PuzzleSetArrays(**loaded)
    return meta, sets


def split_problems(split: str, meta: DatasetMetadata, sets: dict[str, PuzzleSetArrays]) -> list[str]:
    """Every problem of one loaded split's arrays against its metadata (shapes, dtypes, tokens inside
    the vocabulary, identifiers, indices, counts), one sentence each. Reads each array once (min/max)."""
    problems: list[str] = []
    for set_name, arrays in sets.items():
        problems += _set_problems(f"{split}/{set_name}", arrays.as_dict(), meta)
    problems += _metadata_problems(split, sets, meta)
    return problems


def check_split(
    path: str | os.PathLike[str], split: str, mmap: bool = True
) -> tuple[DatasetMetadata, dict[str, PuzzleSetArrays]]:
    """`load_split`, then the checks `validate_dataset` makes of that split: what training
    (`PuzzleDataset`) and ``hrm eval`` run before they use the arrays. DataError with the first
    problem."""
    meta, sets = load_split(path, split, mmap)
    problems = split_problems(split, meta, sets)
    if problems:
        more = (
            f" (and {len(problems) - 1} more problem(s); 'hrm data validate {path}' lists them)"
            if len(problems) > 1
            else ""
        )
        raise DataError(f"{path} is not a valid dataset: {problems[0]}{more}")
    return meta, sets


def list_splits(path: str | os.PathLike[str]) -> list[str]:
    root = Path(path)
    return sorted(
        p.name
        for p in root.iterdir()
        if PLAIN_NAME.fullmatch(p.name) and p.is_dir() and (p / METADATA_FILE).is_file()
    )


def _values_outside(arr: np.ndarray, vocab_size: int, allowed: int | None) -> tuple[int, int] | None:
    """The smallest and largest value of ``arr`` when some value is outside ``0..vocab_size-1`` (other
    than ``allowed``, the ignore label), else None."""
    if arr.size == 0:
        return None
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi < vocab_size:
        return None
    if allowed is None or 0 <= allowed < vocab_size:
        return lo, hi
    # The ignore label lies outside the vocabulary: look past it, a block of rows at a time.
    seen: list[int] = []
    rows = max(1, (1 << 22) // max(1, arr.shape[-1]))
    for start in range(0, arr.shape[0], rows):
        block = np.asarray(arr[start : start + rows])
        rest = block[block != allowed]
        if rest.size:
            seen += [int(rest.min()), int(rest.max())]
    if not seen or (min(seen) >= 0 and max(seen) < vocab_size):
        return None
    return min(seen), max(seen)


def _set_problems(where: str, a: dict[str, np.ndarray], meta: DatasetMetadata) -> list[str]:
    problems = []
    for name in FIELDS:
        if not np.issubdtype(a[name].dtype, np.integer):
            problems.append(f"{where}: {name} has dtype {a[name].dtype}, expected an integer dtype")
    if problems:
        return problems
    inputs, labels = a["inputs"], a["labels"]
    ids, pidx, gidx = a["puzzle_identifiers"], a["puzzle_indices"], a["group_indices"]
    for name in ("inputs", "labels"):
        arr = a[name]
        if arr.ndim != 2 or arr.shape[1] != meta.seq_len:
            problems.append(f"{where}: {name} has shape {arr.shape}, expected [N, {meta.seq_len}]")
        elif bad := _values_outside(arr, meta.vocab_size, meta.ignore_label_id if name == "labels" else None):
            besides = (
                f" (besides the ignore label {meta.ignore_label_id})"
                if name == "labels"
                and meta.ignore_label_id is not None
                and not 0 <= meta.ignore_label_id < meta.vocab_size
                else ""
            )
            problems.append(
                f"{where}: {name} values {bad[0]}..{bad[1]} outside 0..{meta.vocab_size - 1}{besides}"
            )
    if inputs.shape[:1] != labels.shape[:1]:
        problems.append(f"{where}: {inputs.shape[0]} inputs but {labels.shape[0]} labels")
    one_dim = True
    for name, arr in (("puzzle_identifiers", ids), ("puzzle_indices", pidx), ("group_indices", gidx)):
        if arr.ndim != 1:
            problems.append(f"{where}: {name} has shape {arr.shape}, expected one dimension")
            one_dim = False
    if not one_dim:
        return problems
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= meta.num_puzzle_identifiers):
        problems.append(
            f"{where}: puzzle_identifiers {int(ids.min())}..{int(ids.max())} "
            f"outside 0..{meta.num_puzzle_identifiers - 1}"
        )
    problems += _index_problems(where, "puzzle_indices", pidx, len(ids) + 1, inputs.shape[0], "examples")
    problems += _index_problems(where, "group_indices", gidx, None, len(ids), "puzzles")
    return problems


def _index_problems(
    where: str, name: str, idx: np.ndarray, length: int | None, end: int, what: str
) -> list[str]:
    if length is not None and idx.size != length:
        return [f"{where}: {name} has {idx.size} entries, expected {length} (one more than the puzzles)"]
    if idx.size == 0:
        return [f"{where}: {name} is empty, expected at least [0]"]
    problems = []
    if int(idx[0]) != 0:
        problems.append(f"{where}: {name} starts at {int(idx[0])}, expected 0")
    if int(idx[-1]) != end:
        problems.append(f"{where}: {name} ends at {int(idx[-1])}, expected {end} (the number of {what})")
    if idx.size > 1 and np.any(np.diff(idx.astype(np.int64)) <= 0):
        problems.append(f"{where}: {name} is not strictly increasing (an empty puzzle or group)")
    return problems


def _metadata_problems(split: str, sets: dict[str, Any], meta: DatasetMetadata) -> list[str]:
    problems = []
    groups = sum(
        int(np.asarray(s.group_indices if isinstance(s, PuzzleSetArrays) else s["group_indices"]).size) - 1
        for s in sets.values()
    )
    if groups != meta.total_groups:
        problems.append(f"{split}: total_groups is {meta.total_groups} but the sets hold {groups} groups")
    examples = puzzles = 0
    for s in sets.values():
        d = s.as_dict() if isinstance(s, PuzzleSetArrays) else s
        examples += int(d["inputs"].shape[0])
        puzzles += int(d["puzzle_identifiers"].shape[0])
    if meta.total_puzzles is not None and meta.total_puzzles != puzzles:
        problems.append(f"{split}: total_puzzles is {meta.total_puzzles} but the sets hold {puzzles} puzzles")
    if puzzles and not np.isclose(examples / puzzles, meta.mean_puzzle_examples, rtol=1e-3, atol=1e-6):
        problems.append(
            f"{split}: mean_puzzle_examples is {meta.mean_puzzle_examples} "
            f"but the sets hold {examples / puzzles:.4g} examples per puzzle"
        )
    return problems


def validate_dataset(path: str | os.PathLike[str]) -> list[str]:
    """Every problem found in a dataset directory, one sentence each; an empty list means valid.

    Per split: the metadata's fields and ranges (`load_metadata`), every file inside the directory and
    matching its .npy header (`load_split`), the arrays against the metadata (`split_problems`); and
    identifiers.json against the metadata."""
    root = Path(path)
    if not root.is_dir():
        return [f"{root} is not a directory"]
    splits = list_splits(root)
    if not splits:
        return [f"{root} holds no split (no */{METADATA_FILE})"]
    problems: list[str] = []
    identifiers_file = root / IDENTIFIERS_FILE
    identifiers: list[Any] | None = None
    if not identifiers_file.is_file():
        problems.append(f"{IDENTIFIERS_FILE} is missing")
    else:
        try:
            _inside(root, identifiers_file)
            identifiers = json.loads(identifiers_file.read_text(encoding="utf-8"))
            if not isinstance(identifiers, list):
                problems.append(f"{IDENTIFIERS_FILE} is not a JSON list")
                identifiers = None
        except DataError as exc:
            problems.append(str(exc))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            problems.append(f"{IDENTIFIERS_FILE} is not valid JSON")
    seq_lens = {}
    for split in splits:
        try:
            meta, sets = load_split(root, split)
        except DataError as exc:
            problems.append(str(exc))
            continue
        seq_lens[split] = meta.seq_len
        problems += split_problems(split, meta, sets)
        if identifiers is not None and len(identifiers) != meta.num_puzzle_identifiers:
            problems.append(
                f"{split}: num_puzzle_identifiers is {meta.num_puzzle_identifiers} "
                f"but {IDENTIFIERS_FILE} lists {len(identifiers)}"
            )
    if len(set(seq_lens.values())) > 1:
        problems.append(f"splits disagree on seq_len: {seq_lens}")
    return problems
