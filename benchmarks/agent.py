"""Pre-training the BabyAI agent, against its targets: bot demonstrations of a level, behaviour
cloning of the HRM policy and of the flat baseline of the same size with the same recipe, for each
of `--seeds` training seeds; each policy evaluated on held-out seeds of the level (success, steps vs
the bot, teacher-forced action / sub-goal accuracy, shadow-bot agreement, and for HRM the
state-reset ablations) and, without further training, on held-out seeds of other levels
(generalisation). One CPU thread; the training time is CPU time of this process.

    OMP_NUM_THREADS=1 python benchmarks/agent.py --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/agent.py --level KeyCorridorS3R3 --seeds 0 --generalize \
        --steps 1800 --tag 1800steps --work runs/bench-agent-kc3-long

The trained runs stay in --work (`<hrm|flat>-seed<N>`): benchmarks/agent_finetune.py fine-tunes them.
Writes benchmarks/results/agent-<level>[-<tag>].json and prints Markdown tables (mean, min..max over
seeds).
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
from hrm.agent.evaluate import evaluate_policy, run_episodes, summarize
from hrm.agent.policy import count_parameters, load_policy
from hrm.agent.train import load_agent_config, train

POLICIES = (("hrm", True), ("flat", False))


def spread(xs: list[float], digits: int = 3) -> str:
    a = np.array(xs, dtype=float)
    if len(a) == 1:
        return f"{a[0]:.{digits}f}"
    return f"{a.mean():.{digits}f} ({a.min():.{digits}f}..{a.max():.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--level", default="UnlockLocal")
    ap.add_argument("--recipe", default="configs/agent_unlocklocal.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    ap.add_argument("--train-episodes", type=int, default=1000)
    ap.add_argument("--test-episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    ap.add_argument(
        "--generalize", nargs="*", default=["UnlockLocalDist", "KeyCorridorS3R1"], help="other levels"
    )
    ap.add_argument("--work", default="runs/bench-agent", help="demos and runs go here (replaced)")
    ap.add_argument(
        "--policies", nargs="+", choices=[n for n, _ in POLICIES], default=[n for n, _ in POLICIES]
    )
    ap.add_argument("--tag", default="", help="names the results file agent-<level>-<tag>.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    policies = [(n, h) for n, h in POLICIES if n in args.policies]
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    train_set = demos.generate(args.level, args.train_episodes, progress=False)
    demo_s = time.perf_counter() - t0
    train_dir = demos.save(train_set, work / "demos-train")
    test_dir = demos.save(
        demos.generate(args.level, args.test_episodes, split="test", progress=False), work / "demos-test"
    )
    other = {}  # held-out seeds of the other levels, with the bot's steps on each
    for level in args.generalize:
        held = demos.generate(level, args.test_episodes, split="test", progress=False)
        other[level] = held.bot_steps()
    print(f"demos: {args.train_episodes} {args.level} episodes in {demo_s:.1f}s", flush=True)
    runs = []
    for seed in args.seeds:
        for name, hierarchy in policies:
            overrides = [
                f"level={args.level}",
                f"demos={train_dir}",
                f"eval_demos={test_dir}",
                f"run_dir={work / f'{name}-seed{seed}'}",
                f"seed={seed}",
                f"hierarchy={str(hierarchy).lower()}",
                "eval_interval=null",
                "eval_episodes=1",
                "progress=false",
                "tensorboard=false",
                "threads=1",
            ]
            if args.steps is not None:
                overrides.append(f"steps={args.steps}")
            cfg = load_agent_config(args.recipe, overrides)
            wall, cpu = time.perf_counter(), time.process_time()
            train(cfg)
            cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - wall
            policy = load_policy(work / f"{name}-seed{seed}").policy
            t = time.perf_counter()
            report = evaluate_policy(policy, args.level, episodes=args.test_episodes)
            report["generalization"] = {
                level: summarize(run_episodes(policy, level, list(bot), shadow=False), bot)
                for level, bot in other.items()
            }
            report.update(
                policy=name,
                seed=seed,
                steps=cfg.steps,
                train_cpu_seconds=round(cpu_s, 1),
                train_wall_seconds=round(wall_s, 1),
                eval_seconds=round(time.perf_counter() - t, 1),
                parameters=count_parameters(policy),
            )
            runs.append(report)
            print(json.dumps(report), flush=True)
            out = {
                "level": args.level,
                "recipe": args.recipe,
                "train_episodes": args.train_episodes,
                "test_episodes": args.test_episodes,
                "demo_seconds": round(demo_s, 1),
                "machine": machine(),
                "runs": runs,
            }
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"agent-{args.level.lower()}{'-' + args.tag if args.tag else ''}.json"
            path.write_text(json.dumps(out, indent=1))

    print(
        f"\n{args.level}: {args.train_episodes} bot demos ({demo_s:.1f}s), held-out {args.test_episodes} "
        f"seeds; mean (min..max) over training seeds {args.seeds}\n"
    )
    print(
        "| policy | params | success | steps vs bot | action acc (TF) | sub-goal acc (TF) "
        "| shadow-bot agreement | reset H / reset L / reset both | train CPU s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, _ in policies:
        rs = [r for r in runs if r["policy"] == name]
        abl = (
            " / ".join(spread([r["ablations"][k] for r in rs]) for k in ("reset_H", "reset_L", "reset_both"))
            if "ablations" in rs[0]
            else "n/a"
        )
        print(
            f"| {name} | {rs[0]['parameters']:,} | {spread([r['success'] for r in rs])} "
            f"| {spread([r.get('steps_vs_bot', float('nan')) for r in rs], 2)} "
            f"| {spread([r['action_accuracy'] for r in rs])} | {spread([r['subgoal_accuracy'] for r in rs])} "
            f"| {spread([r['shadow_agreement'] for r in rs])} | {abl} "
            f"| {spread([r['train_cpu_seconds'] for r in rs], 0)} |"
        )
    if other:
        print(f"\nWithout further training, success on {args.test_episodes} held-out seeds of other levels\n")
        print("| policy | " + " | ".join(other) + " |")
        print("| --- |" + " --- |" * len(other))
        for name, _ in policies:
            rs = [r for r in runs if r["policy"] == name]
            cells = [spread([r["generalization"][lv]["success"] for r in rs]) for lv in other]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
