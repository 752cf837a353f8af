"""Halting rules for a Sudoku model, compared on held-out puzzles: each puzzle is run for all of its
segments once, every segment's answer and Q values are kept, and each rule is then applied to the
same record (the answer of a rule is the one of the segment where it stops):

- max: all segments (as the reference evaluates); with `--segments N` all of N, and max@K the first K
  (K: the model's own count and every power of two from 8 below N), so one run shows how accuracy
  grows with the segments run
- adaptive: the model's own Q halting (Q-halt > Q-continue, or Q-halt > 0 without Q-continue)
- q>T: Q-halt logit above T
- stable-K: the answer unchanged for K segments in a row
- valid: the answer keeps the givens and satisfies every rule (the task's check; no solution used)
- valid|q>T, valid|stable-K: whichever stops first

Exact accuracy and mean segments per rule and set; the summary row pools all sets. Sets as in
benchmarks/sudoku9_accuracy.py (same seeds, same cache); every puzzle has one solution, so an answer
that keeps the givens and satisfies the rules is the solution (exact accuracy).

    python benchmarks/halting.py --model sudoku-9x9 --count 1000 --extreme-count 200 --real-count 1000
    python benchmarks/halting.py --model sudoku-9x9 --segments 256 --out halting-sudoku-9x9-256

Writes benchmarks/results/halting-<model>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common import save, table
from hrm import load_model
from hrm.inference import run_until_halted
from hrm.inference.solve import parse_puzzle
from hrm.tasks import task_named
from hrm.tasks.base import SolveOptions
from sudoku9_accuracy import add_set_arguments, held_out_sets


class Recorder:
    """Every segment's argmax answer and Q logits for all rows (with halt="max" no row leaves)."""

    def __init__(self) -> None:
        self.preds: list[torch.Tensor] = []
        self.q_halt: list[torch.Tensor] = []
        self.q_continue: list[torch.Tensor] = []

    def begin(self, carry, active) -> None:
        pass

    def hook(self, kind, index, z_H, z_L) -> None:
        pass

    def end(self, outputs, halted) -> None:
        self.preds.append(outputs["logits"].argmax(-1).cpu())
        self.q_halt.append(outputs["q_halt_logits"].float().cpu())
        self.q_continue.append(outputs["q_continue_logits"].float().cpu())


def record_set(loaded, puzzles: list[str], batch: int, segments: int | None) -> dict[str, np.ndarray]:
    """Per puzzle and segment: valid (the answer passes the rule check, hence is the one solution),
    Q-halt and Q-continue logits, and whether the answer is the same as the segment before's."""
    c = loaded.model.config
    task = task_named("sudoku")
    parsed = [parse_puzzle(p, "sudoku", c, f"puzzle {i}") for i, p in enumerate(puzzles)]
    options = SolveOptions(1, 0, None, 0, None)
    enc = [task.encode(p, options) for p in parsed]
    rows = np.concatenate([e.rows for e in enc])
    ids = np.concatenate([e.identifiers for e in enc])
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("valid", "exact", "q_halt", "q_continue", "same")}
    for lo in range(0, len(parsed), batch):
        hi = min(len(parsed), lo + batch)
        rec = Recorder()
        run_until_halted(
            loaded.model,
            {
                "inputs": torch.from_numpy(rows[lo:hi].astype(np.int32)),
                "puzzle_identifiers": torch.from_numpy(ids[lo:hi].astype(np.int32)),
            },
            halt="max",
            max_segments=segments,
            on_segment=rec,
        )
        preds = torch.stack(rec.preds, 1).numpy()  # [b, segments, 81]
        valid = np.zeros(preds.shape[:2], dtype=bool)
        for r in range(hi - lo):
            p = parsed[lo + r]
            for s in range(preds.shape[1]):
                valid[r, s] = bool(task.check_grid(p.grid, task.decode(p, preds[r, s]))["valid"])
        same = np.zeros(preds.shape[:2], dtype=bool)
        same[:, 1:] = (preds[:, 1:] == preds[:, :-1]).all(-1)
        out["valid"].append(valid)
        out["exact"].append(valid)  # every puzzle here has one solution: a valid answer is it
        out["q_halt"].append(torch.stack(rec.q_halt, 1).numpy())
        out["q_continue"].append(torch.stack(rec.q_continue, 1).numpy())
        out["same"].append(same)
    return {k: np.concatenate(v) for k, v in out.items()}


def stops(rec: dict[str, np.ndarray], no_continue: bool, cuts: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """For each rule, per puzzle, the boolean [N, segments] of where it would stop (the last segment
    always stops); `cuts`: segment counts K below the last for the max@K rules."""
    q, qc, valid, same = rec["q_halt"], rec["q_continue"], rec["valid"], rec["same"]
    rules: dict[str, np.ndarray] = {"max": np.zeros_like(valid)}
    for k in cuts:
        rules[f"max@{k}"] = np.zeros_like(valid)
        rules[f"max@{k}"][:, k - 1] = True
    rules["adaptive"] = q > 0 if no_continue else q > qc
    for t in (0.5, 1.0, 2.0, 4.0):
        rules[f"q>{t:g}"] = q > t
    for k in (2, 3, 4):
        run = np.zeros(valid.shape, dtype=np.int64)  # segments in a row with the same answer
        for s in range(1, valid.shape[1]):
            run[:, s] = np.where(same[:, s], run[:, s - 1] + 1, 0)
        rules[f"stable-{k}"] = run >= k - 1
    rules["valid"] = valid
    for name in ("q>1", "q>2", "stable-3", "adaptive"):
        rules[f"valid|{name}"] = valid | rules[name]
    for r in rules.values():
        r[:, -1] = True
    return rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sudoku-9x9")
    add_set_arguments(ap)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--segments",
        type=int,
        default=None,
        help="run every puzzle for N segments (default: the model's own)",
    )
    ap.add_argument("--out", default=None, help="results name (default: halting-<model>)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = held_out_sets(args)
    if not sets:
        raise SystemExit("no puzzles to run: --levels is empty and no real 17-clue puzzles were asked for")
    loaded = load_model(args.model)
    own = loaded.model.config.halt_max_steps
    last = args.segments or own
    cuts = tuple(sorted({k for k in (own, *(2**e for e in range(3, 9))) if k < last}))
    no_continue = bool(getattr(loaded.model.config, "no_ACT_continue", False))
    meta = {"model": args.model, "seed": args.seed, "segments": last}
    name_out = args.out or "halting-" + Path(args.model).name
    records: dict[str, dict[str, np.ndarray]] = {}
    for name, puzzles in sets.items():
        start = time.perf_counter()
        records[name] = record_set(loaded, puzzles, args.batch, args.segments)
        print(
            f"{name}: {len(puzzles)} puzzles x all segments in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        # Saved after every set, so a long run keeps what it has measured.
        rows = result_rows(records, no_continue, cuts)
        path = save(name_out, rows, meta)
    print(table(rows, list(rows[0])))
    print(f"wrote {path}")


def result_rows(
    records: dict[str, dict[str, np.ndarray]], no_continue: bool, cuts: tuple[int, ...]
) -> list[dict]:
    """Exact accuracy and mean segments per set and rule, then the same over all the sets pooled."""
    pooled = {k: np.concatenate([r[k] for r in records.values()]) for k in next(iter(records.values()))}
    rows = []
    for name, rec in [*records.items(), ("all sets", pooled)]:
        for rule, stop in stops(rec, no_continue, cuts).items():
            seg = stop.argmax(1)  # the first segment where the rule stops
            n = len(seg)
            rows.append(
                {
                    "set": name,
                    "puzzles": n,
                    "rule": rule,
                    "exact_accuracy": float(rec["exact"][np.arange(n), seg].mean()),
                    "mean_segments": float((seg + 1).mean()),
                }
            )
    return rows


if __name__ == "__main__":
    main()
