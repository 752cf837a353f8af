from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hrm import __version__
from hrm.cli import DISTRIBUTION, main

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hrm {__version__} ({DISTRIBUTION})"


def test_version_and_name_have_one_source():
    """The package metadata takes its version from `hrm.__version__`; `hrm --version` names the
    distribution pyproject declares."""
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["name"] == DISTRIBUTION
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hrm.__version__"}


def test_help_lists_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: hrm" in out
    assert "--version" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: hrm" in capsys.readouterr().out


def test_unknown_command_is_one_line(capsys):
    code = main(["no-such-command"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("hrm: error:")
    assert "no-such-command" in err


def test_unknown_option_is_one_line(capsys):
    code = main(["--frobnicate"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frobnicate" in err[0]


def _run(args, **env):
    return subprocess.run(
        [sys.executable, "-m", "hrm", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_console_entry_point_runs():
    proc = _run(["--version"])
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


def test_error_has_no_traceback_unless_debug():
    proc = _run(["bogus"], HRM_DEBUG="")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _run(["bogus"], HRM_DEBUG="1")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
