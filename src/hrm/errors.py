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
