"""The real puzzle data beside the repository (`../shared`, or $HRM_SHARED_DIR): a test that needs a
file from it skips when it is missing, except under CI=true, where it fails, so that a green CI run
has used the data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HRM_SHARED_DIR", REPO.parent / "shared"))


def need(path: Path) -> Path:
    """`path` when it exists; otherwise skip the test, or fail it under CI=true."""
    if not path.exists():
        message = f"{path} is not available (the shared data beside the repository, or $HRM_SHARED_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return path
