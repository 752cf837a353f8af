"""Fine-tuning pre-trained BabyAI agents on another level (default BabyAI-UnlockPickup) with a few bot
demonstrations. For each pre-training seed (the runs benchmarks/agent.py leaves in --bases) and each
of `--subsets` disjoint demonstration subsets, six policies are trained on the same demonstrations:

- HRM pre-trained, HRM from scratch, HRM pre-trained with its planner kept fixed (freeze=H) or its
  doer kept fixed (freeze=L), the flat baseline pre-trained and from scratch.

From-scratch runs use the pre-training seed as their initialisation seed, so every cell of the table
is over seeds x subsets runs. Success and steps vs the bot on held-out seeds of the level. One CPU
thread.

    OMP_NUM_THREADS=1 python benchmarks/agent.py --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/agent_finetune.py --demos 10 50 --seeds 0 1 2 --subsets 3

Writes benchmarks/results/agent-finetune-<level>-<demos>.json and prints a Markdown table (mean and
min..max over runs); `--table FILE...` prints the table of earlier result files together.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine
from hrm.agent import demos
from hrm.agent.evaluate import run_episodes, summarize
from hrm.agent.policy import load_policy
from hrm.agent.train import FINE_TUNE_STEPS, fine_tune_config, train

# name -> (base policy in --bases, or None for scratch; hierarchy; freeze)
VARIANTS: dict[str, tuple[str | None, bool, str | None]] = {
    "HRM pre-trained": ("hrm", True, None),
    "HRM scratch": (None, True, None),
    "HRM pre-trained, freeze=H (planner)": ("hrm", True, "H"),
    "HRM pre-trained, freeze=L (doer)": ("hrm", True, "L"),
    "flat pre-trained": ("flat", False, None),
    "flat scratch": (None, False, None),
}


def subset(ds: demos.DemoSet, first: int, n: int) -> demos.DemoSet:
    """Episodes first..first+n-1 of a demonstration set, as a set of its own."""
    lo, hi = int(ds.offsets[first]), int(ds.offsets[first + n])
    return demos.DemoSet(
        images=ds.images[lo:hi],
        directions=ds.directions[lo:hi],
        actions=ds.actions[lo:hi],
        subgoals=ds.subgoals[lo:hi],
        missions=ds.missions[first : first + n],
        offsets=ds.offsets[first : first + n + 1] - lo,
        seeds=ds.seeds[first : first + n],
        meta={**ds.meta, "episodes": n, "steps": hi - lo, "subset_first": first},
    )


NO_MIRROR = "no reflection"


def label(run: dict) -> str:
    """A run's row in the table: its variant, marked when it trained without the reflection."""
    return run["variant"] if run.get("mirror", True) else f"{run['variant']}, {NO_MIRROR}"


def cell(xs: list[float]) -> str:
    a = np.array(xs, dtype=float)
    return f"{a.mean():.3f} ({a.min():.3f}..{a.max():.3f}, n={len(a)})" if len(a) else "n/a"


def print_table(results: list[dict]) -> None:
    seen: dict[tuple, dict] = {}  # one run per configuration, when result files overlap
    for r in (r for res in results for r in res["runs"]):
        seen.setdefault((r["demos"], r["subset"], r["seed"], label(r)), r)
    runs = list(seen.values())
    counts = sorted({r["demos"] for r in runs})
    first = results[0]
    print(
        f"\nFine-tuned on {first['level']} for {first['steps']} steps; success on {first['test_episodes']} "
        "held-out seeds, mean (min..max, n runs) over pre-training seeds x demonstration subsets\n"
    )
    print("| policy | " + " | ".join(f"{n} demos" for n in counts) + " |")
    print("| --- |" + " --- |" * len(counts))
    names = [n for n in VARIANTS if any(label(r) == n for r in runs)]
    names += [f"{n}, {NO_MIRROR}" for n in VARIANTS if any(label(r) == f"{n}, {NO_MIRROR}" for r in runs)]
    for name in names:
        cells = [cell([r["success"] for r in runs if r["demos"] == n and label(r) == name]) for n in counts]
        print(f"| {name} | " + " | ".join(cells) + " |")
    base = {k: v for res in results for k, v in res.get("base_success", {}).items()}
    if base:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(base.items()))
        print(f"\nThe pre-trained policies on {first['level']} before fine-tuning: {shown}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bases", default="runs/bench-agent", help="benchmarks/agent.py's --work")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="pre-training seeds")
    ap.add_argument("--level", default="UnlockPickup")
    ap.add_argument("--demos", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--subsets", type=int, default=3, help="disjoint demonstration subsets per size")
    ap.add_argument(
        "--only-subsets", type=int, nargs="+", help="run these subsets only (to split the work; see --table)"
    )
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--test-episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=FINE_TUNE_STEPS, help="training steps per run")
    ap.add_argument(
        "--mirror", action=argparse.BooleanOptionalAction, default=True, help="reflection augmentation"
    )
    ap.add_argument("--work", default=None, help="demos and runs go here (replaced; default under runs/)")
    ap.add_argument("--table", nargs="+", metavar="FILE", help="only print the table of these result files")
    args = ap.parse_args()
    if args.table:
        print_table([json.loads(Path(f).read_text()) for f in args.table])
        return
    torch.set_num_threads(1)
    subsets = args.only_subsets if args.only_subsets is not None else list(range(args.subsets))
    if not all(0 <= k < args.subsets for k in subsets):
        sys.exit(f"--only-subsets: each must be 0..{args.subsets - 1}")
    tag = "-".join(str(n) for n in args.demos)
    if args.only_subsets is not None:
        tag += "-subsets" + "".join(str(k) for k in subsets)
    if not args.mirror:
        tag += "-nomirror"
    work = Path(args.work or f"runs/bench-agent-finetune-{tag}")
    shutil.rmtree(work, ignore_errors=True)
    bases = Path(args.bases)
    for seed in args.seeds:
        for kind in {v[0] for v in VARIANTS.values() if v[0]}:
            if not (bases / f"{kind}-seed{seed}").is_dir():
                sys.exit(f"{bases / f'{kind}-seed{seed}'}: missing; run benchmarks/agent.py --seeds first")
    t0 = time.perf_counter()
    pool = demos.generate(args.level, max(args.demos) * args.subsets, progress=False)
    test = demos.generate(args.level, args.test_episodes, split="test", progress=False)
    demo_s = time.perf_counter() - t0
    seeds = test.seeds.tolist()
    bot_steps = test.bot_steps()
    print(f"demos: {pool.episodes} train + {test.episodes} held-out in {demo_s:.0f}s", flush=True)
    base_success = {
        f"{kind}-seed{s}": summarize(
            run_episodes(load_policy(bases / f"{kind}-seed{s}").policy, args.level, seeds, shadow=False)
        )["success"]
        for s in args.seeds
        for kind in ("hrm", "flat")
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"agent-finetune-{args.level.lower()}-{tag}.json"
    runs: list[dict] = []
    for n in args.demos:
        for k in subsets:
            train_dir = demos.save(subset(pool, k * n, n), work / f"demos-{n}-{k}")
            for seed in args.seeds:
                for name in args.variants:
                    base, hierarchy, freeze = VARIANTS[name]
                    run_dir = work / f"run-{n}-{k}-{seed}-{list(VARIANTS).index(name)}"
                    cfg = fine_tune_config(
                        bases / f"{base or 'hrm'}-seed{seed}",
                        train_dir,
                        run_dir,
                        level=args.level,
                        steps=args.steps,
                        init=base is not None,
                        hierarchy=hierarchy,
                        freeze=freeze,
                        seed=seed,
                        overrides=[f"mirror={str(args.mirror).lower()}"],
                    )
                    cpu = time.process_time()
                    train(cfg)
                    train_s = time.process_time() - cpu
                    policy = load_policy(run_dir).policy
                    s = summarize(run_episodes(policy, args.level, seeds, shadow=False), bot_steps)
                    row = {
                        "mirror": args.mirror,
                        "demos": n,
                        "subset": k,
                        "seed": seed,
                        "variant": name,
                        "success": s["success"],
                        "steps_vs_bot": s.get("steps_vs_bot"),
                        "train_cpu_seconds": round(train_s, 1),
                    }
                    runs.append(row)
                    print(json.dumps(row), flush=True)
                    shutil.rmtree(run_dir)  # keep the work folder small: only the numbers stay
                    out = {
                        "bases": str(bases),
                        "level": args.level,
                        "test_episodes": args.test_episodes,
                        "steps": args.steps,
                        "subsets": args.subsets,
                        "seeds": args.seeds,
                        "demo_seconds": round(demo_s, 1),
                        "machine": machine(),
                        "base_success": base_success,
                        "runs": runs,
                    }
                    path.write_text(json.dumps(out, indent=1))
    print_table([json.loads(path.read_text())])
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
