"""Writing files so that a crash, a full disk or a read-only file system never leaves a half-written
one behind, and saying so in one line when it happens.

- `write_file(path, data)`: write one file (bytes or text) and fsync it.
- `fsync_file(path)`, `fsync_dir(path)`: flush a file's data, or a directory's entries (after a
  rename), to the disk.
- `atomic_write_text(path, text)`: a temporary file beside `path`, fsynced, renamed over it, and the
  directory fsynced: readers see the old content or the new, never a part.
- `describe_os_error(exc, action)`: one line saying what could not be done where, and what to do.
- `warn(message)`: one line on stderr.
- `json_safe(value)`: NaN and infinities as None, for strict JSON.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

# What to do about the failures a user can fix, by errno.
_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write to a writable location",
    errno.EACCES: "permission denied: check the permissions or write elsewhere",
    errno.EPERM: "operation not permitted: check the permissions or write elsewhere",
    errno.EIO: "an input/output error: check the disk",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


NON_FINITE_WARNING = (
    "the model produced non-finite values (NaN or infinity), given as null in JSON: its weights may be broken"
)

# The errors of writing that a user can fix (space, permissions, a read-only mount).
WRITE_ERRNOS = frozenset(_HINTS) - {errno.ENAMETOOLONG}


def warn(message: str) -> None:
    """One warning line on stderr (`hrm: warning: ...`)."""
    print(f"hrm: warning: {' '.join(message.splitlines())}", file=sys.stderr, flush=True)


def describe_os_error(exc: BaseException, action: str) -> str:
    """`cannot <action>: <reason> (<what to do>)` for an OSError or MemoryError, on one line."""
    if isinstance(exc, MemoryError):
        return f"cannot {action}: out of memory (free some memory or use a smaller configuration)"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename else ""
        hint = _HINTS.get(exc.errno or -1)
        return f"cannot {action}: {reason}{where}" + (f"; {hint}" if hint else "")
    return f"cannot {action}: {exc}"


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a file created or renamed in it) to the disk. Where directories
    cannot be opened (Windows) there is nothing to do."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (IsADirectoryError, PermissionError):  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory; nothing is lost by it
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_file(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` and fsync it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with open(path, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


def temporary_name(path: Path) -> Path:
    """The temporary file `atomic_write_text` writes beside `path` (a dot file, so it is never
    mistaken for the real one)."""
    return path.with_name(f".{path.name}.tmp")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` atomically and durably; on failure nothing but the old file remains."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write_file(tmp, text)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(path.parent)


def remove_quietly(path: Path) -> None:
    """Remove a file or a directory tree if it is there, ignoring any failure (best-effort cleanup)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (NaN, infinity) as None: strict JSON has no place for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def has_non_finite(value: Any) -> bool:
    """Whether `value` (numbers, dicts and lists of them) holds a NaN or an infinity."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_non_finite(v) for v in value)
    return False
