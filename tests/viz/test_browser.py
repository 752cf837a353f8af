"""End to end: `hrm viz` in a real browser (Debian's Chromium driven by Playwright for Python).

Starts the viewer as a subprocess (`python -m hrm.viz.cli ... --port 0`) with tiny random models
(4x4 Sudoku and 7x7 maze), a small Sudoku dataset and a run directory whose metrics.jsonl grows
during the test; solves puzzles in the page, steps through the segments, and checks that the grid,
the residual chart, the Q chart and the PCA plot show the trace's values (read back from data-*
attributes and compared with the trace fetched from the server). The shipped `sudoku-9x9-hrm` and
`maze-hard` solve a held-out puzzle each in the page too. Screenshots of every page go to
test-artifacts/viz/; those of the shipped models, the Run and Dataset pages and the exported ARC page
also go to docs/screenshots/ when HRM_UPDATE_SCREENSHOTS=1.

Setup: `bash tests/viz/install_browser.sh` (apt chromium, pip playwright). Without them the tests
skip, except under CI=true, where they fail: a green CI run has exercised the viewer. Optional, for
nicer screenshots: HRM_VIZ_SUDOKU_RUN=RUN_DIR (a trained 4x4 Sudoku run) and HRM_VIZ_SUDOKU_DATA=DIR
(its dataset) replace the random model and the small dataset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hrm.tasks import TASKS
from test_shipped_maze import HARD9 as HARD9_MAZE
from tiny_models import save_tiny, tiny_config

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "viz"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
PUZZLE4 = "....32....21...."
TIMEOUT_MS = 20_000

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "Playwright for Python is not installed (bash tests/viz/install_browser.sh)"
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed at /usr/bin/chromium (bash tests/viz/install_browser.sh)"
    return None


_MISSING = _skip_reason()
if _MISSING and os.environ.get("CI") != "true":
    pytest.skip(_MISSING, allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _browser_available():
    """Under CI=true a missing browser fails every test here (before any other fixture runs)."""
    if _MISSING:
        pytest.fail(f"CI=true and the browser tests cannot run: {_MISSING}", pytrace=False)


# ----------------------------------------------------------------------------------------------
# Fixtures: models, data, a growing run, servers, the browser
# ----------------------------------------------------------------------------------------------


def _metrics(step: int) -> dict:
    return {
        "step": step,
        "kind": "train",
        "time": 1.7e9 + step,
        "lm_loss": 1.2 * 0.985**step + 0.05,
        "q_halt_loss": 0.4 * 0.99**step,
        "accuracy": 1 - 0.7 * 0.985**step,
        "exact_accuracy": max(0.0, 1 - 1.1 * 0.99**step),
        "steps": 4 - 2.5 * (1 - 0.99**step),
        "lr": 2e-3 * min(1.0, step / 20) * (0.55 + 0.45 * (1 - step / 400)),
    }


def _eval(step: int) -> dict:
    acc = max(0.0, 1 - 1.1 * 0.99**step)
    return {
        "step": step,
        "kind": "eval",
        "all": {"accuracy": 0.8 + acc / 5, "exact_accuracy": acc, "steps": 2.1, "lm_loss": 0.3 * 0.99**step},
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from hrm import cli

    root = tmp_path_factory.mktemp("vizweb")
    sudoku = save_tiny(root / "sudoku4", tiny_config(16, 6, L_cycles=3, halt_max_steps=4), seed=0)
    real = os.environ.get("HRM_VIZ_SUDOKU_RUN")
    if real:  # a copy of a real run's logs, which the test then extends
        shutil.copyfile(Path(real) / "metrics.jsonl", sudoku / "metrics.jsonl")
        shutil.copyfile(Path(real) / "config.yaml", sudoku / "config.yaml")
    else:
        (sudoku / "config.yaml").write_text(
            "arch:\n  name: hrm\n  hidden_size: 32\nlr: 0.002\nmax_steps: 400\n"
        )
        with (sudoku / "metrics.jsonl").open("w") as f:
            for step in range(10, 310, 10):
                f.write(json.dumps(_metrics(step)) + "\n")
                if step % 100 == 0:
                    f.write(json.dumps(_eval(step)) + "\n")
    maze = save_tiny(root / "maze7", tiny_config(49, 6, L_cycles=3, halt_max_steps=4), seed=1)
    data = root / "data4"
    args = (
        "data sudoku --size 4 --count 8 --difficulty easy --test-count 30 --num-aug 3 --seed 0 --no-progress"
    )
    assert cli.main([*args.split(), "--out", str(data)]) == 0
    return {"root": root, "sudoku": sudoku, "maze": maze, "data": data}


class Server:
    def __init__(self, args: list[str]):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hrm.viz.cli", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.url = ""
        deadline = time.monotonic() + 120
        seen = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if found:
                self.url = found.group(0)
                break
        if not self.url:
            self.stop()
            raise RuntimeError("hrm viz did not start:\n" + "".join(seen))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def sudoku_server(workdir):
    run = os.environ.get("HRM_VIZ_SUDOKU_RUN") or str(workdir["sudoku"])
    data = os.environ.get("HRM_VIZ_SUDOKU_DATA") or str(workdir["data"])
    server = Server(["--model", run, "--run", str(workdir["sudoku"]), "--data", data])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def maze_server(workdir):
    server = Server(["--model", str(workdir["maze"])])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 940}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.on(
        "console",
        lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()


def shoot(page, name: str, full_page: bool = True, docs: bool = True) -> Path:
    """A screenshot in test-artifacts/viz/, and in docs/screenshots/ too when ``docs`` and
    HRM_UPDATE_SCREENSHOTS=1 (the README shows the shipped models, not the tiny random ones)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("HRM_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")
    return path


# ----------------------------------------------------------------------------------------------
# Reading what the page drew
# ----------------------------------------------------------------------------------------------


def attr_json(page, selector: str, name: str):
    return json.loads(page.locator(selector).first.get_attribute(name))


def wait_ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def solve_in_page(page, text: str, kind: str, halt: str = "max") -> dict:
    before = page.get_attribute("body", "data-trace-id")
    page.fill("#puzzle-text", text)
    page.select_option("#kind", kind)
    page.select_option("#halt", halt)
    page.click("#solve")
    wait_solved(page, before)
    return fetch_trace(page)


def wait_solved(page, before: str | None) -> None:
    """Wait for a new trace in the page; fail with the page's error message if one shows instead."""
    page.wait_for_function(
        "prev => (document.body.dataset.traceId && document.body.dataset.traceId !== prev)"
        " || document.querySelector('#status.error')",
        arg=before,
    )
    if page.locator("#status.error").count():
        pytest.fail("the page reports: " + page.inner_text("#status"))


def fetch_trace(page) -> dict:
    trace_id = page.get_attribute("body", "data-trace-id")
    response = page.request.get(page.url.split("#")[0] + f"api/trace/{trace_id}")
    assert response.ok
    return response.json()


def check_segment_views(page, trace: dict) -> None:
    """Step through every segment with the buttons and compare the drawn answer with the trace."""
    n = len(trace["segments"])
    page.click("#seg-first")
    for k in range(1, n + 1):
        if k > 1:
            page.click("#seg-next")
        page.wait_for_selector(f"#seg-label[data-segment='{k}']")
        seg = trace["segments"][k - 1]
        assert attr_json(page, "#grid-answer svg", "data-values") == seg["answer"]
        assert page.get_attribute("#grid-answer", "data-segment") == str(k)
        conf = page.locator("#grid-answer g.cell[data-r='0'][data-c='0']").get_attribute("data-confidence")
        assert float(conf) == pytest.approx(seg["confidence"][0][0])
        assert float(page.get_attribute("#seg-q", "data-q-halt")) == pytest.approx(seg["q_halt"])
        assert float(page.get_attribute("#seg-q", "data-q-continue")) == pytest.approx(seg["q_continue"])
    assert attr_json(page, "#grid-input svg", "data-values") == trace["puzzle"]["grid"]


def check_planner(page, trace: dict) -> None:
    page.click("#tabs button[data-tab='planner']")
    page.wait_for_selector("#residual-chart svg")
    drawn = page.eval_on_selector_all(
        "#residual-chart .pt",
        "els => els.map(e => [+e.dataset.seg, +e.dataset.step, e.dataset.kind, +e.dataset.residual])",
    )
    want = [
        [si + 1, st["index"], st["kind"], st["residual"]]
        for si, seg in enumerate(trace["segments"])
        for st in seg["steps"]
    ]
    assert [d[:3] for d in drawn] == [w[:3] for w in want]
    assert [d[3] for d in drawn] == pytest.approx([w[3] for w in want])
    # Click an H step of segment 2 (or 1): the readout and the step's grid follow.
    target_seg = min(2, len(trace["segments"]))
    step = next(st for st in trace["segments"][target_seg - 1]["steps"] if st["kind"] == "H")
    page.click(f"#residual-chart .pt[data-seg='{target_seg}'][data-step='{step['index']}']")
    page.wait_for_selector(f"#step-readout[data-segment='{target_seg}'][data-step='{step['index']}']")
    assert float(page.get_attribute("#step-readout", "data-residual")) == pytest.approx(step["residual"])
    assert attr_json(page, "#step-grid svg", "data-values") == step["answer"]
    strip = page.eval_on_selector_all(
        "#step-strip button", "els => els.map(e => e.dataset.kind + e.dataset.step)"
    )
    assert strip == [st["kind"] + str(st["index"]) for st in trace["segments"][target_seg - 1]["steps"]]
    # Hovering an L step shows its grid.
    first = trace["segments"][target_seg - 1]["steps"][0]
    page.hover(f"#step-strip button[data-step='{first['index']}']")
    page.wait_for_selector(f"#step-readout[data-step='{first['index']}']")
    assert attr_json(page, "#step-grid svg", "data-values") == first["answer"]
    page.mouse.move(5, 5)
    q = page.eval_on_selector_all("#q-chart .q-q_halt", "els => els.map(e => +e.dataset.value)")
    assert q == pytest.approx([s["q_halt"] for s in trace["segments"]])
    qc = page.eval_on_selector_all("#q-chart .q-q_continue", "els => els.map(e => +e.dataset.value)")
    assert qc == pytest.approx([s["q_continue"] for s in trace["segments"]])


def check_pca(page, trace: dict) -> None:
    page.click("#tabs button[data-tab='trajectories']")
    page.wait_for_selector("#pca-chart svg")
    pca = trace["pca"]
    for series in ("z_H", "z_L"):
        pts = page.eval_on_selector_all(
            f"#pca-chart .pca-{series}", "els => els.map(e => [+e.dataset.seg, +e.dataset.x, +e.dataset.y])"
        )
        assert [p[0] for p in pts] == [s[0] for s in pca["steps"]]
        assert [p[1] for p in pts] == pytest.approx([x for x, _ in pca[series]])
        assert [p[2] for p in pts] == pytest.approx([y for _, y in pca[series]])


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


def test_sudoku_solve_step_through_and_charts(page, sudoku_server):
    wait_ready(page, sudoku_server.url)
    assert "cells" in page.inner_text("#model-info")
    trace = solve_in_page(page, PUZZLE4, "sudoku", halt="max")
    assert trace["kind"] == "sudoku"
    check_segment_views(page, trace)
    # Box lines: a 4x4 Sudoku has 2x2 boxes, drawn as 3 + 3 thick lines.
    assert page.locator("#grid-answer svg > line").count() == 6
    page.click("#seg-first")
    shoot(page, "puzzle-sudoku4", docs=False)
    # Play runs to the last segment by itself.
    page.click("#seg-play")
    n = len(trace["segments"])
    page.wait_for_selector(f"#seg-label[data-segment='{n}']", timeout=3000 + 1000 * n)
    check_planner(page, trace)
    shoot(page, "planner-sudoku4", docs=False)
    check_pca(page, trace)
    shoot(page, "trajectories-sudoku4", docs=False)
    assert page.errors == []  # type: ignore[attr-defined]


def options(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(selector + " option", "els => els.map(e => [e.value, e.textContent])")


def test_generate_and_bad_puzzle(page, sudoku_server):
    wait_ready(page, sudoku_server.url)
    # The menus are built from the kinds' descriptions in /api/info.
    assert options(page, "#kind") == [
        ["", "auto"],
        ["sudoku", "Sudoku"],
        ["maze", "Maze"],
        ["arc", "ARC task (JSON)"],
    ]
    assert options(page, "#gen-kind") == [
        ["sudoku-4", "Sudoku 4x4"],
        ["sudoku-6", "Sudoku 6x6"],
        ["sudoku-9", "Sudoku 9x9"],
        ["maze", "Maze"],
    ]
    assert page.input_value("#gen-kind") == "sudoku-4"  # the 4x4 model's size
    assert [v for v, _ in options(page, "#gen-difficulty")] == ["easy", "medium", "hard"]
    assert page.is_visible("#gen-difficulty") and not page.is_visible("#gen-size")
    assert page.get_attribute("#puzzle-text", "placeholder") == (
        "Type or paste a puzzle: a Sudoku (16/36/81 cells, '.' or '0' for blanks), "
        "a maze (rows over '# SG'), or an ARC task as JSON"
    )
    page.select_option("#gen-kind", "sudoku-4")
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('puzzle-text').value.length === 16")
    text = page.input_value("#puzzle-text")
    assert re.fullmatch(r"[.1-4]{16}", text)
    page.fill("#puzzle-text", "12345")
    page.select_option("#kind", "sudoku")
    page.click("#solve")
    page.wait_for_selector("#status.error")
    assert "16, 36 or 81" in page.inner_text("#status")


def test_run_curves_refresh_while_training(page, sudoku_server, workdir):
    metrics = workdir["sudoku"] / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    wait_ready(page, sudoku_server.url)
    page.click("#tabs button[data-tab='run']")
    page.wait_for_selector(f"#run-info[data-records='{len(lines)}']")
    page.wait_for_selector("#chart-loss svg .series")
    train = [json.loads(x) for x in lines if json.loads(x)["kind"] == "train"]
    n_lm = page.get_attribute("#chart-loss .series[data-name='lm loss']", "data-n")
    assert int(n_lm) == len(train)
    assert float(page.get_attribute("#chart-lr .series[data-name='lr']", "data-last")) == pytest.approx(
        train[-1]["lr"]
    )
    evals = [json.loads(x) for x in lines if json.loads(x)["kind"] == "eval"]
    assert page.locator("#eval-table tbody tr").count() == len(evals)
    assert not page.locator("#chart-score").is_visible()  # no dataset score logged yet
    shoot(page, "run")
    # The run goes on: new records appear without reloading the page. This evaluation also logs a
    # task's dataset score (as training does on ARC), keyed by the task's name: its `score_series`
    # are plotted beside eval exact accuracy, its counts are not.
    task = next(t for t in TASKS if t.score_series)
    score = {"tasks": 3, "test_inputs": 4, **{key: 0.25 * (i + 1) for i, key in enumerate(task.score_series)}}
    step = json.loads(lines[-1])["step"] + 10
    with metrics.open("a") as f:
        f.write(json.dumps(_metrics(step)) + "\n")
        f.write(json.dumps({**_eval(step), task.name: score}) + "\n")
        f.write(f'{{"step": {step + 10}, "kind": "tr')  # a line still being written
    page.wait_for_selector(f"#run-info[data-records='{len(lines) + 2}']", timeout=15_000)
    page.wait_for_function(
        "n => document.querySelectorAll('#eval-table tbody tr').length === n", arg=len(evals) + 2
    )
    assert page.get_attribute("#eval-table tbody tr", "data-step") == str(step)
    assert page.get_attribute("#eval-table tbody tr", "data-score") == task.name
    page.wait_for_selector("#chart-score svg .series")
    names = page.eval_on_selector_all("#chart-score .series", "gs => gs.map((g) => g.dataset.name)")
    assert names == ["eval all exact"] + [f"{task.name} {key}" for key in task.score_series]
    for key in task.score_series:
        series = f"#chart-score .series[data-name='{task.name} {key}']"
        assert page.get_attribute(series, "data-n") == "1"
        assert float(page.get_attribute(series, "data-last") or "nan") == pytest.approx(score[key])
    shoot(page, "run-score", docs=False)
    with metrics.open("a") as f:
        f.write('ain", "lm_loss": 0.06, "lr": 0.0011}\n')
    page.wait_for_selector(f"#run-info[data-records='{len(lines) + 3}']", timeout=15_000)
    assert page.errors == []  # type: ignore[attr-defined]


def test_dataset_browser_and_solving_an_example(page, sudoku_server):
    wait_ready(page, sudoku_server.url)
    page.click("#tabs button[data-tab='dataset']")
    page.wait_for_selector("#data-items .card")
    assert page.locator("#data-items .card").count() == 12
    page.select_option("#data-split", "train")
    page.wait_for_selector("#data-items .card[data-index='0']")
    page.click("#data-next")
    page.wait_for_selector("#data-items[data-page='1']")
    page.click("#data-items .card[data-index='13']")
    page.wait_for_selector("#data-detail[data-index='13'] .variants figure")
    detail = page.request.get(
        sudoku_server.url + "api/dataset/example?split=train&index=13&variants=16"
    ).json()
    assert detail["variants"] and len(detail["variants"]) == min(16, detail["group_size"] - 1)
    shown = page.eval_on_selector_all(
        "#data-detail .variants figure", "els => els.map(e => +e.dataset.index)"
    )
    assert shown == [v["index"] for v in detail["variants"]]  # the group's other puzzles
    shoot(page, "dataset")
    page.click("#data-detail button.primary")
    page.wait_for_selector("#tab-puzzle.active #grid-answer svg")
    page.wait_for_function(
        "document.getElementById('expected-caption').textContent.includes('dataset label')"
    )
    trace = fetch_trace(page)
    example = page.request.get(sudoku_server.url + "api/dataset/example?split=train&index=13").json()
    assert trace["puzzle"]["grid"] == example["input"]
    assert attr_json(page, "#grid-expected svg", "data-values") == example["label"]
    assert page.errors == []  # type: ignore[attr-defined]


def test_maze(page, maze_server):
    wait_ready(page, maze_server.url)
    assert page.input_value("#gen-size") == "7"  # the model's side
    assert page.input_value("#gen-kind") == "maze"
    assert page.is_visible("#gen-size") and page.is_visible("#gen-difficulty")
    assert [v for v, _ in options(page, "#gen-difficulty")] == ["any", "hard"]
    assert (page.get_attribute("#gen-size", "min"), page.get_attribute("#gen-size", "max")) == ("5", "30")
    page.select_option("#gen-kind", "maze")
    page.select_option("#gen-difficulty", "hard")  # a hard 7x7 maze is refused, in words
    page.click("#generate")
    page.wait_for_selector("#status.error")
    assert "a hard maze is at least 9x9" in page.inner_text("#status")
    assert all("422" in e for e in page.errors)  # type: ignore[attr-defined]
    page.errors.clear()  # type: ignore[attr-defined]  (the refusal's own console line)
    page.select_option("#gen-difficulty", "any")
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('puzzle-text').value.includes('S')")
    text = page.input_value("#puzzle-text")
    page.select_option("#halt", "max")
    page.click("#solve")
    wait_solved(page, None)
    trace = fetch_trace(page)
    assert trace["kind"] == "maze" and "\n".join("".join(r) for r in trace["puzzle"]["grid"]) == text
    check_segment_views(page, trace)
    walls = sum(row.count("#") for row in trace["puzzle"]["grid"])
    assert page.locator("#grid-input g.cell[data-value='#']").count() == walls
    # the expected grid marks one shortest S->G path (no cell at all when S and G are neighbours)
    from hrm.data.maze import encode_maze, shortest_path

    path_cells = len(shortest_path(encode_maze(text.replace("\n", "")))) - 2
    assert page.locator("#grid-expected g.cell[data-value='o']").count() == path_cells
    assert page.locator("#grid-expected g.cell[data-value='G']").count() == 1
    shoot(page, "puzzle-maze7", docs=False)
    check_planner(page, trace)
    assert page.errors == []  # type: ignore[attr-defined]


# The shipped models at work, for the README's screenshots: puzzles they never trained on.
# sudoku-9x9-hrm: the 9th of benchmarks/sudoku9_accuracy.py's held-out hard puzzles (seed 2026),
# which it solves with its Q head halting after 6 of 8 segments; maze-hard: test_shipped_maze's maze.
HARD9_SUDOKU = "950000040200000070000000830024015080000000004060000000007002000500130900000506708"


@pytest.mark.parametrize(
    "name, kind, level, puzzle, shots",
    [
        ("sudoku-9x9-hrm", "sudoku", "easy", HARD9_SUDOKU, ("puzzle-sudoku", "planner", "trajectories")),
        ("maze-hard", "maze", "hard", HARD9_MAZE, ("puzzle-maze", None, None)),
    ],
)
def test_a_shipped_model_solves_in_the_page(page, name, kind, level, puzzle, shots):
    server = Server(["--model", name])
    try:
        wait_ready(page, server.url)
        # Generate offers the model's side, and the level its card names (sudoku-9x9-hrm names
        # none: the first level; maze-hard: hard mazes)
        assert page.input_value("#gen-kind") in (f"{kind}-9", kind)
        assert page.input_value("#gen-difficulty") == level
        trace = solve_in_page(page, puzzle, kind, halt="adaptive")
        assert trace["kind"] == kind
        n = len(trace["segments"])
        assert 1 <= n <= trace["model"]["halt_max_steps"]
        assert "valid" in page.inner_text("#status") and "invalid" not in page.inner_text("#status")
        check_segment_views(page, trace)
        page.wait_for_selector(f"#seg-label[data-segment='{n}']")
        puzzle_shot, planner_shot, pca_shot = shots
        shoot(page, puzzle_shot)
        check_planner(page, trace)
        if planner_shot:
            shoot(page, planner_shot)
        check_pca(page, trace)
        if pca_shot:
            shoot(page, pca_shot)
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        server.stop()


def test_exported_pages_open_without_a_server(page, tmp_path, workdir):
    """`hrm viz --export`: a Sudoku trace, and an ARC trace drawn in the ARC colours."""
    import torch

    from hrm.checkpoint import load_model
    from hrm.inference import solve, write_trace
    from hrm.viz.export import annotate, export_html, render_html

    sudoku = solve(load_model(workdir["sudoku"]), PUZZLE4, trace=True, halt="max")
    write_trace(sudoku.trace, tmp_path / "sudoku.json")
    export_html(tmp_path / "sudoku.json", tmp_path / "sudoku.html")
    page.route(
        "**/*", lambda route: route.abort() if route.request.url.startswith("http") else route.continue_()
    )
    page.goto((tmp_path / "sudoku.html").as_uri())
    page.wait_for_selector("body[data-ready='1'].offline")
    assert not page.locator("#tabs button[data-tab='run']").is_visible()
    assert attr_json(page, "#grid-answer svg", "data-values") == sudoku.trace["segments"][0]["answer"]
    # Drawn by the embedded description of the kind: Sudoku digits, givens and box lines.
    givens = sum(v != 0 for row in sudoku.trace["puzzle"]["grid"] for v in row)
    assert page.locator("#grid-input g.cell[data-state='given']").count() == givens
    assert page.locator("#grid-answer svg > line").count() == 6
    check_planner(page, sudoku.trace)

    from hrm.models import build_model

    torch.manual_seed(2)
    cfg = tiny_config(900, 12)
    arc_model = build_model("hrm", cfg)
    task = {
        "train": [{"input": [[1, 0, 0], [0, 2, 0], [0, 0, 3]], "output": [[3, 0, 0], [0, 2, 0], [0, 0, 1]]}],
        "test": [
            {
                "input": [[4, 4, 0, 0], [0, 5, 5, 0], [0, 0, 6, 6]],
                "output": [[6, 6, 0, 0], [0, 5, 5, 0], [0, 0, 4, 4]],
            }
        ],
    }
    arc = solve(arc_model, task, trace=True, halt="max", arc_max_views=2)
    # The trace holds no test output; the Python API takes it as the expected answer.
    expected = task["test"][0]["output"]
    html = render_html(arc.trace, annotate(arc.trace, expected, "the task's test output"))
    (tmp_path / "arc.html").write_text(html)
    page.goto((tmp_path / "arc.html").as_uri())
    page.wait_for_selector("body[data-ready='1'].offline")
    assert attr_json(page, "#grid-input svg", "data-values") == task["test"][0]["input"]
    colours = page.eval_on_selector_all(
        "#grid-input g.cell rect:first-child", "els => els.map(e => e.getAttribute('fill'))"
    )
    assert colours[0].upper() == "#FFDC00"  # colour 4 in the standard ARC palette
    assert attr_json(page, "#grid-expected svg", "data-values") == task["test"][0]["output"]
    shoot(page, "export-arc")
    assert page.errors == []  # type: ignore[attr-defined]
