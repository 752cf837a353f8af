"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class HRMError(Exception):
    """A problem with the user's input (a file, a puzzle, a config value), stated in one sentence."""


class ConfigError(HRMError):
    """A configuration key or value that is unknown, mistyped or out of range."""


class DataError(HRMError):
    """A puzzle, dataset file or dataset directory that is malformed."""


class CheckpointError(HRMError):
    """A checkpoint or weights file that cannot be read or does not fit the model."""


class StorageError(HRMError):
    """A file or directory that cannot be written or replaced: a full disk, a read-only file system,
    missing permissions, or a target that must not be replaced."""


def a_grid(rows: int, cols: int | None = None) -> str:
    """The size with its spoken article: "a 9x9", "an 8x8", "an 11x11", "an 18x30"."""
    first = str(rows)
    vowel = first.startswith("8") or (len(first) % 3 == 2 and first[:2] in ("11", "18"))
    return f"{'an' if vowel else 'a'} {rows}x{rows if cols is None else cols}"
