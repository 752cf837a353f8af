"""`hrm agent ...`: demonstrations, training, evaluation and episodes of the BabyAI agent.
Everything heavy (torch, MiniGrid) is imported inside the handlers."""

from __future__ import annotations

import argparse
import json

from hrm.errors import ConfigError
from hrm.limits import MAX_SEED, MAX_THREADS

# `hrm agent eval --episodes`: held-out seeds are drawn from 1,000,000 on, one episode each.
MAX_EVAL_EPISODES = 100_000


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser(
        "agent",
        help="an HRM policy in BabyAI grid worlds: demos, train, eval, play (needs the agent extra)",
        description="Behaviour cloning of the BabyAI bot into an HRM policy (pip install '.[agent]').",
    )
    agent.set_defaults(handler=lambda _args: agent.print_help())
    cmds = agent.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", parser_class=type(agent))

    demos = cmds.add_parser("demos", help="record bot demonstrations of a level")
    demos.add_argument("level", help="a level name (UnlockLocal, GoToLocal, ...) or a BabyAI-...-v0 id")
    demos.add_argument("--episodes", type=int, default=1000)
    demos.add_argument("--out", required=True, help="output directory")
    demos.add_argument("--split", choices=("train", "test"), default="train", help="seed range (disjoint)")
    demos.add_argument("--max-steps", type=int, default=500, help="watchdog: steps per episode")
    demos.add_argument("--time-limit", type=float, default=10.0, help="watchdog: seconds per episode")
    demos.add_argument("--overwrite", action="store_true")
    demos.add_argument("--quiet", action="store_true", help="no progress bar")
    demos.set_defaults(handler=_demos)

    train = cmds.add_parser("train", help="behaviour cloning from a recipe (configs/agent_*.yaml)")
    train.add_argument("recipe", nargs="?", help="recipe YAML (or the name of a shipped agent_* recipe)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. hierarchy=false freeze=H")
    train.add_argument("--resume", metavar="RUN", help="continue a run from its latest checkpoint")
    train.set_defaults(handler=_train)

    ev = cmds.add_parser("eval", help="success, steps vs bot, accuracies, ablations on held-out seeds")
    ev.add_argument("model", help="a run, checkpoint or packaged agent (agent-unlocklocal)")
    ev.add_argument("--level", help="default: the level the model was trained on")
    ev.add_argument("--episodes", type=int, default=200)
    ev.add_argument("--no-ablations", action="store_true")
    ev.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    ev.add_argument("--threads", type=int, default=None)
    ev.set_defaults(handler=_eval)

    play = cmds.add_parser("play", help="one episode as a JSON trace (schema: hrm/agent/trace_schema.json)")
    play.add_argument("model")
    play.add_argument("--level")
    play.add_argument("--seed", type=int, default=1_000_000, help="default: the first held-out seed")
    play.add_argument("--ablation", choices=("reset_H", "reset_L", "reset_both"))
    play.add_argument("--max-steps", type=int, default=None, help="stop earlier than the level's limit")
    play.add_argument("--out", help="write the trace here (else a summary is printed)")
    play.set_defaults(handler=_play)


def _level(model_level: object, asked: str | None) -> str:
    from hrm.errors import ConfigError

    level = asked or (model_level if isinstance(model_level, str) else None)
    if not level:
        raise ConfigError("the model does not say its level; pass --level")
    return level


def _demos(args: argparse.Namespace) -> int:
    from hrm.agent import demos

    ds = demos.generate(
        args.level,
        args.episodes,
        split=args.split,
        max_steps=args.max_steps,
        time_limit_s=args.time_limit,
        progress=not args.quiet,
    )
    out = demos.save(ds, args.out, overwrite=args.overwrite)
    m = ds.meta
    print(
        f"{out}: {m['episodes']} episodes, {m['steps']} steps, seeds {m['seed_first']}..{m['seed_last']}, "
        f"{len(m['failures'])} bot failures, {m['seconds']}s"
    )
    for f in m["failures"][:10]:
        print(f"  failure: seed {f['seed']}: {f['reason']}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from hrm.agent.train import train_from_cli

    overrides = list(args.overrides)
    recipe = args.recipe
    if recipe is not None and "=" in recipe:
        overrides.insert(0, recipe)
        recipe = None
    result = train_from_cli(recipe, overrides, args.resume)
    print(f"run directory: {result.run_dir} (step {result.step})")
    if result.eval_metrics:
        print("eval: " + ", ".join(f"{k} {v:.4f}" for k, v in result.eval_metrics.items()))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from hrm.agent.evaluate import evaluate_policy
    from hrm.agent.policy import load_policy

    _check_range("--episodes", args.episodes, 1, MAX_EVAL_EPISODES)
    if args.threads is not None:
        _check_range("--threads", args.threads, 1, MAX_THREADS)
        torch.set_num_threads(args.threads)
    loaded = load_policy(args.model)
    level = _level(loaded.extra.get("level"), args.level)
    report = evaluate_policy(loaded.policy, level, args.episodes, ablations=not args.no_ablations)
    for k, v in report.items():
        print(f"{k}: {json.dumps(v) if isinstance(v, dict) else v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


def _play(args: argparse.Namespace) -> int:
    from hrm.agent.demos import MAX_EPISODE_STEPS
    from hrm.agent.play import play, write_trace
    from hrm.agent.policy import load_policy

    _check_range("--seed", args.seed, 0, MAX_SEED)
    if args.max_steps is not None:
        _check_range("--max-steps", args.max_steps, 1, MAX_EPISODE_STEPS)
    loaded = load_policy(args.model)
    level = _level(loaded.extra.get("level"), args.level)
    trace = play(
        loaded.policy,
        level,
        args.seed,
        ablation=args.ablation,
        model=str(args.model),
        max_steps=args.max_steps,
    )
    if args.out:
        write_trace(trace, args.out)
        print(f"trace: {args.out}")
    names = trace["legend"]["actions"]
    actions = " ".join(names[f["action"]] for f in trace["frames"] if f["action"] is not None)
    print(f"{trace['level']} seed {trace['seed']}: {trace['mission']!r}")
    print(f"success {trace['success']} in {trace['steps']} steps (bot: {trace['bot_steps']})")
    print(f"actions: {actions[:400]}")
    return 0


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{flag} must be {low} to {high}, got {value}")
