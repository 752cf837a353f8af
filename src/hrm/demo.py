"""`hrm demo`: the CPU quick start.

1. builds a small 4x4 Sudoku dataset (generated, seeded, offline);
2. trains a fresh HRM on it from scratch with the shipped `sudoku4_cpu` recipe, with a progress bar,
   and says whether it reached 95% exact accuracy on the held-out puzzles;
3. solves new puzzles of rising difficulty (fewer givens than it trained on), printing each
   segment's grid as it improves;
4. writes a self-contained HTML report (the training curve and the reasoning traces) and prints its path.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 0.95


def run_demo(
    workdir: str | Path = "runs/demo", seed: int = 0, clue_counts: tuple[int, ...] = (10, 8, 6)
) -> dict[str, Any]:
    from hrm.config import load_config
    from hrm.data.sudoku import build_sudoku_dataset, generate_sudoku
    from hrm.solve import format_sudoku, solve
    from hrm.train import train

    started = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data-sudoku4"
    print("1/4  building 4x4 sudokus (400 training puzzles x 50 augmentations, 200 held out)")
    summary = build_sudoku_dataset(
        data,
        count=400,
        size=4,
        difficulty="easy",
        min_clues=10,
        test_count=200,
        num_aug=50,
        seed=seed,
        overwrite=True,
    )
    print("     " + summary.format().replace("\n", "\n     "))

    print("2/4  training a fresh HRM from scratch (recipe sudoku4_cpu)")
    run_dir = workdir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = load_config("sudoku4_cpu", [f"data_path={data}", f"run_dir={run_dir}", f"seed={seed}"])
    result = train(cfg)
    exact = result.eval_metrics.get("all", {}).get("exact_accuracy", 0.0)
    verdict = "reached" if exact >= TARGET else "did NOT reach"
    print(f"     exact accuracy on 200 held-out puzzles: {exact:.1%} ({verdict} the {TARGET:.0%} target)")

    print(f"3/4  solving new puzzles with {', '.join(map(str, clue_counts))} givens (it trained on 10)")
    rng = np.random.default_rng(seed + 1)
    solutions = []
    for clues in clue_counts:
        puzzle = generate_sudoku(4, "easy", rng, min_clues=clues)
        text = "".join(str(int(v)) for v in puzzle.puzzle.reshape(-1))
        sol = solve(result.run_dir, text, halt="max", trace=True)
        solutions.append(sol)
        print(f"\n     {clues} givens: {sol.verdict()}")
        for segment in sol.trace["segments"]:
            print(f"     segment {segment['index']}: q_halt {segment['q_halt']:+.2f}")
            print(_indent(format_sudoku(segment["answer"]), 8))

    print("\n4/4  writing the report")
    report = workdir / "report.html"
    _write_report(report, result.history, solutions, exact)
    seconds = time.perf_counter() - started
    print(f"     {report.resolve()}")
    print(f"done in {seconds:.0f} s")
    return {
        "exact_accuracy": exact,
        "report": str(report),
        "run_dir": str(result.run_dir),
        "seconds": seconds,
    }


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


# -- the HTML report ----------------------------------------------------------------------------


def _polyline(points: list[tuple[float, float]], width: int, height: int, colour: str, ymax: float) -> str:
    if not points:
        return ""
    xmax = max(x for x, _ in points) or 1
    coords = " ".join(
        f"{x / xmax * (width - 40) + 30:.1f},{height - 20 - y / ymax * (height - 30):.1f}" for x, y in points
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'


def _curve_svg(history: list[dict[str, Any]]) -> str:
    train = [r for r in history if r.get("kind") == "train"]
    loss = [(r["step"], r.get("lm_loss", 0.0)) for r in train]
    exact = [(r["step"], r.get("exact_accuracy", 0.0)) for r in train]
    ymax = max([y for _, y in loss] + [1.0])
    w, h = 640, 240
    axes = (
        f'<line x1="30" y1="{h - 20}" x2="{w - 10}" y2="{h - 20}" stroke="#999"/>'
        f'<line x1="30" y1="10" x2="30" y2="{h - 20}" stroke="#999"/>'
        f'<text x="34" y="20" font-size="12">max {ymax:.2f}</text>'
        f'<text x="{w - 60}" y="{h - 5}" font-size="12">step {train[-1]["step"] if train else 0}</text>'
    )
    return (
        f'<svg width="{w}" height="{h}" role="img" aria-label="training curve">{axes}'
        f"{_polyline(loss, w, h, '#c0392b', ymax)}{_polyline(exact, w, h, '#27ae60', ymax)}</svg>"
        '<p class="legend"><span style="color:#c0392b">training loss (lm)</span> · '
        '<span style="color:#27ae60">training exact accuracy</span></p>'
    )


def _grid_html(grid: list[list[int]], puzzle: list[list[int]], final: list[list[int]] | None) -> str:
    rows = []
    for r, row in enumerate(grid):
        cells = []
        for c, v in enumerate(row):
            cls = (
                "given" if puzzle[r][c] else ("same" if final is not None and final[r][c] == v else "changed")
            )
            cells.append(f'<td class="{cls}">{v or ""}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<table class="grid">' + "".join(rows) + "</table>"


def _residual_svg(segment: dict[str, Any]) -> str:
    steps = segment.get("steps", [])
    if not steps:
        return ""
    w, h = 260, 90
    top = max(s["residual"] for s in steps) or 1.0
    bar = (w - 20) / len(steps)
    bars = []
    for i, s in enumerate(steps):
        height = s["residual"] / top * (h - 25)
        colour = "#2980b9" if s["kind"] == "L" else "#8e44ad"
        x, y = 10 + i * bar, h - 15 - height
        label = f"{s['kind']} step {s['index']}: residual {s['residual']:.3f}"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar * 0.8:.1f}" height="{height:.1f}" '
            f'fill="{colour}"><title>{label}</title></rect>'
        )
    return f'<svg width="{w}" height="{h}" role="img" aria-label="residual norms">{"".join(bars)}</svg>'


def _write_report(path: Path, history: list[dict[str, Any]], solutions: list[Any], exact: float) -> None:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hrm demo report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}",
        ".grid{border-collapse:collapse;margin:.3em}.grid td{border:1px solid #888;width:1.6em;height:1.6em;",
        "text-align:center}.given{background:#eee;font-weight:bold}.changed{background:#fdd}.same{background:#dfd}",
        ".seg{display:inline-block;vertical-align:top;margin:0 1em 1em 0}.legend{font-size:.9em}",
        "</style></head><body><h1>hrm demo</h1>",
        f"<p>A fresh HRM trained from scratch on 4x4 Sudoku: <b>{exact:.1%}</b> exact accuracy on 200 "
        "held-out puzzles.</p><h2>Training</h2>",
        _curve_svg(history),
        "<h2>Reasoning, segment by segment</h2><p class='legend'>Grey: givens. Green: the cell already "
        "holds its final value. Red: it will still change. Bars: residual norm of each inner update "
        "(<span style='color:#2980b9'>L</span>, <span style='color:#8e44ad'>H</span>).</p>",
    ]
    for sol in solutions:
        trace = sol.trace
        puzzle = trace["puzzle"]["grid"]
        final = trace["final"]["answer"]
        parts.append(f"<h3>{html.escape(trace['puzzle']['name'])}: {html.escape(sol.verdict())}</h3><div>")
        for segment in trace["segments"]:
            parts.append(
                f"<div class='seg'><div>segment {segment['index']} · q_halt {segment['q_halt']:+.2f} · "
                f"q_continue {segment['q_continue']:+.2f}</div>"
                f"{_grid_html(segment['answer'], puzzle, final)}{_residual_svg(segment)}</div>"
            )
        parts.append("</div>")
    parts.append(
        "<h2>Data</h2><script type='application/json' id='traces'>"
        + html.escape(json.dumps([s.trace for s in solutions]), quote=False)
        + "</script></body></html>"
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(parts))
    os.replace(tmp, path)
