"""`hrm demo`: the CPU quick start.

1. the shipped 9x9 model (`sudoku-9x9`) solves held-out Sudokus of rising difficulty, printing each
   segment's grid as the answer improves and where the Q head decides to halt;
2. builds a small 4x4 Sudoku dataset (generated, seeded, offline);
3. trains a fresh HRM on it from scratch with the shipped `sudoku4_cpu` recipe, with a progress bar,
   says whether it reached 95% exact accuracy on the held-out puzzles, and lets it solve new puzzles
   with fewer givens than it trained on;
4. writes a self-contained HTML report (the reasoning traces and the training curve) and prints its path;
then, with the agent extra, the shipped BabyAI agent (`agent-unlocklocal`) plays held-out episodes
and is fine-tuned on UnlockPickup from 10 bot demonstrations (success before and after).
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
SHIPPED = "sudoku-9x9"
LEVELS = ("easy", "medium", "hard")


def run_demo(
    workdir: str | Path = "runs/demo",
    seed: int = 0,
    clue_counts: tuple[int, ...] = (10, 8, 6),
    model: str = SHIPPED,
    levels: tuple[str, ...] = LEVELS,
) -> dict[str, Any]:
    from hrm.checkpoint import load_model
    from hrm.config import load_config
    from hrm.data.sudoku import build_sudoku_dataset, generate_sudoku
    from hrm.inference import solve
    from hrm.training import train

    started = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    print(f"1/4  the shipped 9x9 model ({model}) solves new puzzles: {', '.join(levels)}")
    loaded = load_model(model)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 9]))  # not the training data's seeds
    shipped = []
    for level in levels:
        puzzle = generate_sudoku(9, level, rng).puzzle
        sol = solve(loaded, "".join(map(str, puzzle)), halt="adaptive", trace=True)
        assert sol.trace is not None
        sol.trace["puzzle"]["name"] = f"9x9 {level}"
        shipped.append(sol)
        print(
            f"\n     {level}, {np.count_nonzero(puzzle)} givens: {sol.verdict()}; halted after segment "
            f"{sol.segments} of {sol.max_segments} "
            f"(confidence {sol.confidence:.2f}, {sol.seconds * 1e3:.0f} ms)"
        )
        print(_indent(segments_text(sol.trace), 5))

    data = workdir / "data-sudoku4"
    print("\n2/4  building 4x4 sudokus (400 training puzzles x 50 augmentations, 200 held out)")
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

    print("3/4  training a fresh HRM from scratch (recipe sudoku4_cpu)")
    run_dir = workdir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = load_config("sudoku4_cpu", [f"data_path={data}", f"run_dir={run_dir}", f"seed={seed}"])
    result = train(cfg)
    exact = result.eval_metrics.get("all", {}).get("exact_accuracy", 0.0)
    verdict = "reached" if exact >= TARGET else "did NOT reach"
    print(f"     exact accuracy on 200 held-out puzzles: {exact:.1%} ({verdict} the {TARGET:.0%} target)")
    print(f"     solving new puzzles with {', '.join(map(str, clue_counts))} givens (it trained on 10):")
    rng = np.random.default_rng(seed + 1)
    fresh = []
    for clues in clue_counts:
        puzzle = generate_sudoku(4, "easy", rng, min_clues=clues).puzzle
        sol = solve(result.run_dir, "".join(map(str, puzzle)), halt="max", trace=True)
        assert sol.trace is not None
        sol.trace["puzzle"]["name"] = f"4x4, {clues} givens"
        fresh.append(sol)
        print(f"\n     {clues} givens: {sol.verdict()}")
        print(_indent(segments_text(sol.trace), 5))

    print("\n4/4  writing the report")
    report = workdir / "report.html"
    _write_report(report, result.history, shipped, fresh, exact, model)
    print(f"     {report.resolve()}")
    agent = agent_part(workdir)
    seconds = time.perf_counter() - started
    print(f"done in {seconds:.0f} s")
    return {
        "agent": agent,
        "exact_accuracy": exact,
        "shipped_valid": [bool(s.valid) for s in shipped],
        "report": str(report),
        "run_dir": str(result.run_dir),
        "seconds": seconds,
    }


AGENT = "agent-unlocklocal"
AGENT_EPISODES = 20


def agent_part(workdir: Path) -> dict[str, Any] | None:
    """The shipped BabyAI agent on held-out UnlockLocal seeds (skipped without the agent extra)."""
    try:
        import minigrid  # noqa: F401
    except ImportError:
        print("\n+    the BabyAI agent: skipped (pip install 'hierarchical-reasoning-model[agent]')")
        return None
    from hrm.agent import demos
    from hrm.agent.evaluate import run_episodes, summarize
    from hrm.agent.play import play, write_trace
    from hrm.agent.policy import load_policy

    print(f"\n+    the shipped BabyAI agent ({AGENT}) on {AGENT_EPISODES} held-out UnlockLocal episodes")
    policy = load_policy(AGENT).policy
    bot = demos.generate("UnlockLocal", AGENT_EPISODES, split="test", progress=False)
    seeds = bot.seeds.tolist()
    summary = summarize(run_episodes(policy, "UnlockLocal", seeds), bot.bot_steps())
    trace = play(policy, "UnlockLocal", seeds[0], model=AGENT)
    path = write_trace(trace, workdir / "agent-trace.json")
    print(
        f"     success {summary['success']:.0%}, {summary.get('steps_vs_bot', float('nan')):.2f}x the bot's "
        f"steps, agrees with a shadow bot on {summary['shadow_agreement']:.0%} of steps"
    )
    print(f"     one episode ({trace['mission']!r}, {trace['steps']} steps): {path.resolve()}")
    return {**summary, "fine_tune": fine_tune_part(workdir)}


FINE_TUNE_LEVEL = "UnlockPickup"
FINE_TUNE_DEMOS = 10
FINE_TUNE_EPISODES = 50


def fine_tune_part(workdir: Path) -> dict[str, Any]:
    """The shipped agent fine-tuned on a new level from a few bot demonstrations: success on held-out
    seeds before and after."""
    from hrm.agent import demos
    from hrm.agent.evaluate import eval_seeds, run_episodes, summarize
    from hrm.agent.policy import load_policy
    from hrm.agent.train import fine_tune_config, train
    from hrm.fileio import remove_quietly

    level, n = FINE_TUNE_LEVEL, FINE_TUNE_DEMOS
    print(f"+    fine-tuning it on {level} from {n} bot demonstrations (1 CPU thread)")
    root = workdir / "agent-finetune"
    remove_quietly(root)
    train_dir = demos.save(demos.generate(level, n, progress=False), root / "demos")
    seeds = eval_seeds(FINE_TUNE_EPISODES)
    before = summarize(run_episodes(load_policy(AGENT).policy, level, seeds, shadow=False))["success"]
    started = time.perf_counter()
    cfg = fine_tune_config(AGENT, train_dir, root / "run", level=level)
    train(cfg)
    seconds = time.perf_counter() - started
    after = summarize(run_episodes(load_policy(root / "run").policy, level, seeds, shadow=False))["success"]
    print(
        f"     success on {len(seeds)} held-out {level} episodes: {before:.0%} before, {after:.0%} after "
        f"({cfg.steps} steps, {seconds:.0f} s): {(root / 'run').resolve()}"
    )
    return {"level": level, "demos": n, "before": before, "after": after, "seconds": seconds}


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def segments_text(trace: dict[str, Any], per_row: int = 4) -> str:
    """Each segment's grid, side by side, headed by its number, Q-halt logit and how many cells changed."""
    from hrm.tasks.sudoku import format_sudoku

    blocks, previous = [], None
    for segment in trace["segments"]:
        answer = np.asarray(segment["answer"])
        changed = "" if previous is None else f" Δ{int(np.count_nonzero(answer != previous))}"
        previous = answer
        blocks.append([f"segment {segment['index']}: q {segment['q_halt']:+.1f}{changed}"])
        blocks[-1] += format_sudoku(answer).splitlines()
    width = max(len(line) for block in blocks for line in block) + 3
    rows = []
    for first in range(0, len(blocks), per_row):
        group = blocks[first : first + per_row]
        height = max(len(b) for b in group)
        for i in range(height):
            rows.append("".join((b[i] if i < len(b) else "").ljust(width) for b in group).rstrip())
        rows.append("")
    return "\n".join(rows[:-1])


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


def _write_report(
    path: Path,
    history: list[dict[str, Any]],
    shipped: list[Any],
    fresh: list[Any],
    exact: float,
    model: str = SHIPPED,
) -> None:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hrm demo report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}",
        ".grid{border-collapse:collapse;margin:.3em}.grid td{border:1px solid #888;width:1.6em;height:1.6em;",
        "text-align:center}.given{background:#eee;font-weight:bold}.changed{background:#fdd}.same{background:#dfd}",
        ".seg{display:inline-block;vertical-align:top;margin:0 1em 1em 0}.legend{font-size:.9em}",
        "</style></head><body><h1>hrm demo</h1>",
        "<p class='legend'>Grids: grey cells are givens; green cells already hold their final value; red "
        "ones will still change. Bars: residual norm of each inner update "
        "(<span style='color:#2980b9'>L</span>, <span style='color:#8e44ad'>H</span>).</p>",
        f"<h2>The shipped model ({html.escape(model)}) on new 9x9 puzzles</h2>",
        *_traces_html(shipped),
        f"<h2>A fresh HRM trained from scratch on 4x4 Sudoku</h2><p><b>{exact:.1%}</b> exact accuracy "
        "on 200 held-out puzzles.</p>",
        _curve_svg(history),
        *_traces_html(fresh),
    ]
    solutions = [*shipped, *fresh]
    parts.append(
        "<h2>Data</h2><script type='application/json' id='traces'>"
        + html.escape(json.dumps([s.trace for s in solutions]), quote=False)
        + "</script></body></html>"
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(parts))
    os.replace(tmp, path)


def _traces_html(solutions: list[Any]) -> list[str]:
    parts = []
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
    return parts
