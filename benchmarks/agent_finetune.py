"""Fine-tuning the shipped UnlockLocal agent on another level (default BabyAI-UnlockPickup) with a few
bot demonstrations, against the same policy trained from scratch on the same demonstrations, and the
pre-trained policy with its planner (freeze=H) or doer (freeze=L) kept fixed. Success on held-out
seeds. Each configuration runs on `--subsets` disjoint demonstration subsets; the table gives the
mean and the spread (min..max). One CPU thread.

    OMP_NUM_THREADS=1 python benchmarks/agent_finetune.py --demos 10 50 --subsets 3 --test-episodes 200

Writes benchmarks/results/agent-finetune-<level>.json and prints a Markdown table.
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
from hrm.agent.train import load_agent_config, train

VARIANTS = {
    "pre-trained": {"init": True, "freeze": None},
    "scratch": {"init": False, "freeze": None},
    "pre-trained, freeze=H": {"init": True, "freeze": "H"},
    "pre-trained, freeze=L": {"init": True, "freeze": "L"},
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", default="agent-unlocklocal", help="the pre-trained policy")
    ap.add_argument("--level", default="UnlockPickup")
    ap.add_argument("--demos", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--subsets", type=int, default=3, help="disjoint demonstration subsets per size")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--test-episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300, help="training steps per run")
    ap.add_argument("--work", default="runs/bench-agent-finetune", help="demos and runs go here (replaced)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    base = load_policy(args.base)
    arch = base.policy.config.model_dump()
    hierarchy = arch.pop("hierarchy")
    t0 = time.perf_counter()
    pool = demos.generate(args.level, max(args.demos) * args.subsets, progress=False)
    test = demos.generate(args.level, args.test_episodes, split="test", progress=False)
    test_dir = demos.save(test, work / "demos-test")
    demo_s = time.perf_counter() - t0
    seeds = test.seeds.tolist()
    bot_steps = dict(zip(seeds, test.lengths().tolist()))
    print(f"demos: {pool.episodes} train + {test.episodes} held-out in {demo_s:.0f}s", flush=True)
    runs: list[dict] = []
    for n in args.demos:
        for k in range(args.subsets):
            train_dir = demos.save(subset(pool, k * n, n), work / f"demos-{n}-{k}")
            for name in args.variants:
                v = VARIANTS[name]
                tag = name.replace(" ", "").replace(",", "-").replace("=", "")
                overrides = [
                    f"level={args.level}",
                    f"demos={train_dir}",
                    f"eval_demos={test_dir}",
                    f"run_dir={work / f'run-{n}-{k}-{tag}'}",
                    f"steps={args.steps}",
                    "lr_warmup_steps=10",
                    "eval_interval=null",
                    "eval_episodes=1",
                    "progress=false",
                    "tensorboard=false",
                    "threads=1",
                    f"hierarchy={str(hierarchy).lower()}",
                    *[f"arch.{a}={b}" for a, b in arch.items()],
                ]
                if v["init"]:
                    overrides.append(f"init_from={args.base}")
                if v["freeze"]:
                    overrides.append(f"freeze={v['freeze']}")
                t = time.perf_counter()
                result = train(load_agent_config(None, overrides))
                train_s = time.perf_counter() - t
                policy = load_policy(result.run_dir).policy
                s = summarize(run_episodes(policy, args.level, seeds, shadow=False), bot_steps)
                row = {
                    "demos": n,
                    "subset": k,
                    "variant": name,
                    "success": s["success"],
                    "steps_vs_bot": s.get("steps_vs_bot"),
                    "train_seconds": round(train_s, 1),
                }
                runs.append(row)
                print(json.dumps(row), flush=True)
                out = {
                    "base": args.base,
                    "level": args.level,
                    "test_episodes": args.test_episodes,
                    "steps": args.steps,
                    "subsets": args.subsets,
                    "demo_seconds": round(demo_s, 1),
                    "machine": machine(),
                    "runs": runs,
                }
                RESULTS.mkdir(exist_ok=True)
                path = RESULTS / f"agent-finetune-{args.level.lower()}.json"
                path.write_text(json.dumps(out, indent=1))
    base_success = summarize(run_episodes(base.policy, args.level, seeds, shadow=False))["success"]
    print(
        f"\n{args.base} fine-tuned on {args.level}: {args.steps} steps per run, success on "
        f"{args.test_episodes} held-out seeds, mean (min..max) over {args.subsets} demonstration subsets; "
        f"the base policy without fine-tuning: {base_success:.3f}\n"
    )
    print("| demos | " + " | ".join(args.variants) + " |")
    print("| --- |" + " --- |" * len(args.variants))
    for n in args.demos:
        cells = []
        for name in args.variants:
            xs = np.array([r["success"] for r in runs if r["demos"] == n and r["variant"] == name])
            cells.append(f"{xs.mean():.3f} ({xs.min():.3f}..{xs.max():.3f})" if len(xs) else "n/a")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
