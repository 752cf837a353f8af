from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared_data import SHARED


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU tests either way
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@dataclass
class DemoRun:
    """One run of `hrm demo`: its exit status, what it printed and the directory it wrote."""

    returncode: int
    out: str
    workdir: Path

    @property
    def run_dir(self) -> Path:
        (run,) = self.workdir.glob("run-*")
        return run


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """`hrm demo` run once per test session. Its 4x4 model is trained from the shipped sudoku4_cpu
    recipe, the run that the slow training test checks too: the longest training in the suite is done
    once for both."""
    from hrm.cli import main

    workdir = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returncode = main(["demo", "--dir", str(workdir)])
    return DemoRun(returncode, printed.getvalue(), workdir)
