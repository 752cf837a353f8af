"""The built wheel works outside the source tree: `make dist`'s build, installed into a fresh virtual
environment in a temporary directory, runs `hrm --version`, solves a Sudoku with the shipped model
(its trace checked against the shipped schema), builds a tiny dataset and trains `sudoku4_cpu` on it
for a few steps, and serves the viewer's page and its static files.

Offline throughout: the wheel is built with this environment's setuptools (`--no-isolation`) and
installed with `--no-deps --no-index`; the new environment sees this one's installed packages (torch
and the other dependencies) through a .pth file, never this checkout's `src`. The commands run from a
temporary directory with a minimal environment (no PYTHONPATH), with HTTP(S) proxies pointing at a
closed port so that any attempt to reach the network fails.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request
import venv
from pathlib import Path

import pytest

from hrm import __version__
from hrm.cli import DISTRIBUTION

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
TIMEOUT = 180  # seconds for any one command


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the wheel cannot be tested: {reason}", pytrace=False)
    pytest.skip(reason)


def _check(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _outer_site_dirs() -> list[str]:
    """This interpreter's installed-package directories (where torch and the rest live; the project's
    own .venv may sit inside the checkout), never the checkout's sources: the new environment imports
    its dependencies from them, and `hrm` from its own wheel."""
    dirs = []
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path.name in ("site-packages", "dist-packages") and path.is_dir():
            dirs.append(str(path))
    return list(dict.fromkeys(dirs))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh environment with the wheel installed; returns (python, env, work dir)."""
    try:
        import build  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as exc:
        _fail_or_skip(f"building the wheel needs `build` and setuptools (the dev extra): {exc}")
    root = tmp_path_factory.mktemp("dist")
    dist = root / "dist"
    _check(
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    )
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + f"-{__version__}-")

    env_dir = root / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = _check(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    ).strip()
    outer = _outer_site_dirs()
    assert outer, "no site-packages directory on sys.path to take the dependencies from"
    # Plain paths appended after the environment's own site-packages: this environment's packages are
    # importable there, the wheel's `hrm` comes first, and .pth files in those directories (an
    # editable install of this checkout) are not read.
    (Path(site) / "_dependencies.pth").write_text("\n".join(outer) + "\n")

    work = root / "work"
    work.mkdir()
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port: a network access fails at once
    env = {
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(work),
        "TMPDIR": str(root),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "http_proxy": dead,
        "https_proxy": dead,
        "NO_PROXY": "",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INDEX": "1",
        "HF_HUB_OFFLINE": "1",
    }
    # --ignore-installed: a copy of this project installed where the dependencies live (an editable
    # install in CI) is neither reused nor uninstalled.
    install = ["install", "--no-deps", "--no-index", "--ignore-installed", "--no-cache-dir", "--quiet"]
    _check(
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), *install, str(wheel)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
            cwd=work,
        )
    )
    return python, env, work


def run(installed, *args: str) -> str:
    python, env, work = installed
    exe = python.parent / args[0]
    return _check(
        subprocess.run(
            [str(exe), *args[1:]], capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=work
        )
    )


def test_the_installed_package_is_the_wheel(installed):
    python, _, _ = installed
    probe = (
        "import json, sys, hrm\n"
        "from importlib.metadata import distribution\n"
        "from hrm.inference.trace import SCHEMA_PATH\n"
        f"d = distribution({DISTRIBUTION!r})\n"
        "print(json.dumps({'file': hrm.__file__, 'version': hrm.__version__, 'meta': d.version,\n"
        "    'files': [str(f) for f in d.files], 'schema': SCHEMA_PATH.is_file(),\n"
        "    'path': sys.path}))\n"
    )
    info = json.loads(run(installed, "python", "-c", probe))
    env_dir = python.parent.parent
    assert Path(info["file"]).is_relative_to(env_dir), info["file"]
    assert not any(p and Path(p).resolve() == REPO / "src" for p in info["path"])
    assert info["version"] == info["meta"] == __version__
    assert info["schema"]
    files = info["files"]
    for needed in (
        "hrm/py.typed",
        "hrm/trace_schema.json",
        "hrm/configs/sudoku4_cpu.yaml",
        "hrm/viz/static/index.html",
        "hrm/viz/static/app.js",
        "hrm/viz/static/style.css",
        "hrm/pretrained/sudoku-9x9/model.json",
        "hrm/pretrained/sudoku-9x9/model.safetensors",
        "hrm/pretrained/maze-hard/model.json",
        "hrm/pretrained/maze-hard/model.safetensors",
        "hrm/pretrained/sudoku-9x9-hrm/model.json",
        "hrm/pretrained/sudoku-9x9-hrm/model.safetensors",
    ):
        assert needed in files, needed
    assert not [f for f in files if f.startswith(("tests/", "docs/", "benchmarks/"))]


def test_version(installed):
    assert run(installed, "hrm", "--version").strip() == f"hrm {__version__} ({DISTRIBUTION})"


def _valid_sudoku(puzzle: str, grid: list[list[int]]) -> bool:
    digits = set(range(1, 10))
    rows = [set(r) for r in grid]
    cols = [{grid[r][c] for r in range(9)} for c in range(9)]
    boxes = [
        {grid[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)}
        for br in (0, 3, 6)
        for bc in (0, 3, 6)
    ]
    kept = all(ch in ".0" or int(ch) == grid[i // 9][i % 9] for i, ch in enumerate(puzzle))
    return kept and all(group == digits for group in rows + cols + boxes)


def test_solve_with_the_shipped_model(installed):
    _, _, work = installed
    out = run(installed, "hrm", "solve", "-m", "sudoku-9x9", PUZZLE, "--trace", "trace.json")
    grid = [[int(d) for d in re.findall(r"\d", line)] for line in out.splitlines() if re.match(r"\d ", line)]
    assert len(grid) == 9 and all(len(row) == 9 for row in grid), out
    assert _valid_sudoku(PUZZLE, grid), out
    summary = [line for line in out.splitlines() if "segments" in line]
    assert summary and "valid" in summary[0] and "not valid" not in summary[0], out
    # The trace follows the schema that ships in the wheel.
    run(
        installed,
        "python",
        "-c",
        "import json; from hrm.inference import validate_trace; "
        "validate_trace(json.load(open('trace.json')))",
    )
    assert (work / "trace.json").stat().st_size > 0


def test_solve_a_maze_with_the_shipped_maze_model(installed):
    _, _, work = installed
    from test_shipped_maze import HARD9

    (work / "maze.txt").write_text(HARD9 + "\n")
    out = run(installed, "hrm", "solve", "-m", "maze-hard", "maze.txt")
    assert "valid" in out and "not valid" not in out, out
    grid = out.splitlines()[:9]
    assert sum(line.count("o") for line in grid) + 1 >= 34, out  # a path of at least 34 moves is marked


def test_solve_with_the_shipped_hrm(installed):
    from test_shipped_sudoku_hrm import EASY9

    out = run(installed, "hrm", "solve", "-m", "sudoku-9x9-hrm", EASY9)
    grid = [[int(d) for d in re.findall(r"\d", line)] for line in out.splitlines() if re.match(r"\d ", line)]
    assert len(grid) == 9 and _valid_sudoku(EASY9, grid), out


def test_data_and_a_few_training_steps(installed):
    _, _, work = installed
    data = "hrm data sudoku --size 4 --count 40 --difficulty easy --test-count 10 --num-aug 2 --no-progress"
    out = run(installed, *data.split(), "--out", "sudoku4")
    assert "wrote sudoku4" in out, out
    train = "hrm train sudoku4_cpu data_path=sudoku4 max_steps=5 global_batch_size=16 log_interval=1"
    run(installed, *train.split(), "run_dir=run")
    steps = [json.loads(line)["step"] for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 5
    assert (work / "run" / "checkpoints" / "step_0000005" / "model.safetensors").is_file()


def test_viewer_serves_its_page(installed):
    python, env, work = installed
    proc = subprocess.Popen(
        [str(python.parent / "hrm"), "viz", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
        cwd=work,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, seen, deadline = None, [], time.monotonic() + 60
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            url = found.group(0) if found else None
        assert url, "hrm viz did not print its URL:\n" + "".join(seen)
        # The test's own requests go straight to the server, not through the dead proxy.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        page = ""
        while time.monotonic() < deadline:
            try:
                with opener.open(url, timeout=10) as resp:
                    assert resp.status == 200
                    assert resp.headers["content-type"].startswith("text/html")
                    page = resp.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "<title>hrm viz</title>" in page, page[:500]
        for name in ("app.js", "style.css"):
            with opener.open(f"{url}static/{name}", timeout=10) as resp:
                assert resp.status == 200 and len(resp.read()) > 1000
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
