"""The BabyAI agent against its targets: bot demonstrations, behaviour cloning of the HRM policy and
of the flat baseline of the same size with the same recipe, then each evaluated on held-out seeds
(success, steps vs the bot, teacher-forced action / sub-goal accuracy, shadow-bot agreement, and for
HRM the state-reset ablations). One CPU thread.

    OMP_NUM_THREADS=1 python benchmarks/agent.py --level UnlockLocal --steps 500

Writes benchmarks/results/agent-<level>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine
from hrm.agent import demos
from hrm.agent.evaluate import evaluate_policy
from hrm.agent.policy import count_parameters, load_policy
from hrm.agent.train import load_agent_config, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--level", default="UnlockLocal")
    ap.add_argument("--recipe", default="configs/agent_unlocklocal.yaml")
    ap.add_argument("--train-episodes", type=int, default=1000)
    ap.add_argument("--test-episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--work", default="runs/bench-agent", help="demos and runs go here (replaced)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    train_dir = demos.save(
        demos.generate(args.level, args.train_episodes, progress=False), work / "demos-train"
    )
    test_dir = demos.save(
        demos.generate(args.level, args.test_episodes, split="test", progress=False), work / "demos-test"
    )
    demo_s = time.perf_counter() - t0
    rows = {}
    for name, hierarchy in (("hrm", True), ("flat", False)):
        cfg = load_agent_config(
            args.recipe,
            [
                f"level={args.level}",
                f"demos={train_dir}",
                f"eval_demos={test_dir}",
                f"run_dir={work / name}",
                f"steps={args.steps}",
                f"hierarchy={str(hierarchy).lower()}",
                "eval_interval=null",
                "eval_episodes=20",
                "progress=false",
                "threads=1",
            ],
        )
        t = time.perf_counter()
        train(cfg)
        train_s = time.perf_counter() - t
        policy = load_policy(work / name).policy
        t = time.perf_counter()
        report = evaluate_policy(policy, args.level, episodes=args.test_episodes)
        report.update(
            train_seconds=round(train_s, 1),
            eval_seconds=round(time.perf_counter() - t, 1),
            parameters=count_parameters(policy),
        )
        rows[name] = report
        print(name, json.dumps(report), flush=True)
    out = {
        "level": args.level,
        "train_episodes": args.train_episodes,
        "test_episodes": args.test_episodes,
        "steps": args.steps,
        "demo_seconds": round(demo_s, 1),
        "machine": machine(),
        "results": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"agent-{args.level.lower()}.json"
    path.write_text(json.dumps(out, indent=1))
    print(
        f"\n{args.level}: {args.train_episodes} bot demos ({demo_s:.0f}s), {args.steps} steps, "
        f"held-out {args.test_episodes}\n"
    )
    print(
        "| policy | params | success | steps vs bot | action acc (TF) | sub-goal acc (TF) "
        "| shadow-bot agreement | reset H / reset L / reset both | train s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        abl = r.get("ablations")
        abl_s = " / ".join(f"{abl[k]:.3f}" for k in ("reset_H", "reset_L", "reset_both")) if abl else "n/a"
        print(
            f"| {name} | {r['parameters']:,} | {r['success']:.3f} "
            f"| {r.get('steps_vs_bot', float('nan')):.2f} | {r['action_accuracy']:.3f} "
            f"| {r['subgoal_accuracy']:.3f} | {r['shadow_agreement']:.3f} | {abl_s} | "
            f"{r['train_seconds']:.0f} |"
        )
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
