"""Learning curves by training time: the exact accuracy of every kept checkpoint of one or more 9x9
Sudoku runs on the same held-out puzzles, against the training seconds it took to reach it. Run two
recipes on the same machine with the same thread count and this answers "which learns faster per CPU
hour, which ends higher" (HRM against TRM in docs/BENCHMARKS.md).

    python benchmarks/cpu_time_curves.py runs/sudoku9_hrm_cpu runs/pilot_trm_1t --every 500 --no-ema
    python benchmarks/cpu_time_curves.py runs/a runs/b --levels easy --count 100 --every 1000

Besides exact accuracy (whole puzzles), `LEVEL_blanks` is the share of blank cells filled with the
right digit: a model that only copies the givens scores 0 there, one that guesses 1/9. The training
time of a checkpoint is summed from the run's metrics.jsonl (each logged interval's steps over its
measured steps per second), so pauses between a stop and a resume do not count. Each checkpoint is
solved with its EMA weights (what `hrm export` ships; `--no-ema`: the raw weights, since the EMA lags
early in a run) and all of its segments (`--halt max`); the puzzles are benchmarks/sudoku9_accuracy.py's
held-out sets (same seed, same cache)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import exact_accuracy, save, table
from hrm import load_model, solve_many
from hrm.checkpoint import checkpoint_dirs, checkpoint_step
from hrm.data.sudoku import parse_difficulties, solve_exact
from sudoku9_accuracy import held_out


def training_seconds(run_dir: Path) -> list[tuple[int, float]]:
    """(step, training seconds up to that step) for every logged training interval of a run."""
    points: list[tuple[int, float]] = []
    last_step, total = 0, 0.0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") != "train" or not row.get("steps_per_s"):
            continue
        step = int(row["step"])
        if step <= last_step:  # a resumed run logs steps again from its checkpoint: keep the first pass
            continue
        total += (step - last_step) / float(row["steps_per_s"])
        points.append((step, total))
        last_step = step
    return points


def seconds_at(points: list[tuple[int, float]], step: int) -> float | None:
    """Training seconds at `step`, interpolated between logged intervals (None beyond the log)."""
    if not points or step > points[-1][0]:
        return None
    steps = [0] + [s for s, _ in points]
    secs = [0.0] + [t for _, t in points]
    return float(np.interp(step, steps, secs))


def blank_accuracy(puzzles: list[str], solutions: list[np.ndarray], sols) -> float:
    """The share of blank cells the model filled with the right digit, over all puzzles."""
    right = total = 0
    for puzzle, truth, sol in zip(puzzles, solutions, sols):
        blank = np.array([c == "0" for c in puzzle])
        answer = np.asarray(sol.answer).reshape(-1)
        right += int((answer[blank] == truth[blank]).sum())
        total += int(blank.sum())
    return right / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (with metrics.jsonl and checkpoints)")
    ap.add_argument("--levels", default="easy,medium")
    ap.add_argument("--count", type=int, default=200, help="held-out puzzles per level")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", type=Path, default=Path("data/sudoku9-heldout"))
    ap.add_argument("--every", type=int, default=0, help="only steps divisible by this (0: all)")
    ap.add_argument(
        "--no-ema",
        action="store_true",
        help="the raw weights instead of the EMA (which lags ~1/(1-rate) steps)",
    )
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--name", default="cpu_time_curves", help="results file name under benchmarks/results")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    levels = parse_difficulties(args.levels)
    sets = {level: held_out(level, args.count, args.seed, args.cache) for level in levels}
    truths = {
        level: [solve_exact([int(c) for c in p], limit=1).solutions[0] for p in puzzles]
        for level, puzzles in sets.items()
    }
    rows = []
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            raise SystemExit(f"{run}: not a run directory (no metrics.jsonl)")
        points = training_seconds(run)
        for ckpt in checkpoint_dirs(run):
            step = checkpoint_step(ckpt)
            assert step is not None
            seconds = seconds_at(points, step)
            if seconds is None or (args.every and step % args.every):
                continue
            loaded = load_model(ckpt, use_ema=not args.no_ema)
            row: dict = {"run": str(run), "step": step, "train_min": seconds / 60, "ema": not args.no_ema}
            start = time.perf_counter()
            for level, puzzles in sets.items():
                sols = solve_many(loaded, puzzles, halt="max", batch_size=args.batch)
                row[f"{level}_exact"] = exact_accuracy(sols)
                row[f"{level}_blanks"] = blank_accuracy(puzzles, truths[level], sols)
            row["eval_s"] = time.perf_counter() - start
            rows.append(row)
            print(table([row], list(row)), flush=True)
    if not rows:
        raise SystemExit("no checkpoint with a logged training time in " + ", ".join(map(str, args.runs)))
    print(table(rows, list(rows[0])))
    extra = {
        "seed": args.seed,
        "count": args.count,
        "ema": not args.no_ema,
        "threads": torch.get_num_threads(),
    }
    path = save(args.name, rows, extra)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
