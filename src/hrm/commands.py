"""`hrm train`, `hrm eval`, `hrm export` and `hrm demo`: argument parsing only; the work is in hrm.training,
hrm.evaluate, hrm.checkpoint and hrm.demo."""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a recipe (YAML) with key=value overrides",
        description=(
            "Train from a recipe under configs/ with dotted overrides, e.g. "
            "`hrm train configs/sudoku4_cpu.yaml arch.L_cycles=4 lr=3e-4`. Several processes: "
            "`torchrun --nproc_per_node N -m hrm train RECIPE ...`."
        ),
    )
    p.add_argument("recipe", nargs="?", help="recipe YAML file (not needed with --resume)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. arch.L_cycles=8")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.set_defaults(handler=_train)

    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint or run on a dataset's test split",
        description="Exact accuracy, token accuracy, mean segments and Q-halt accuracy per set.",
    )
    p.add_argument(
        "model", help="run dir, checkpoint dir, weights file, packaged name, or reference checkpoint dir"
    )
    p.add_argument("--data", help="dataset directory (default: the run's data_path)")
    p.add_argument(
        "--halt", choices=("max", "adaptive"), default="max", help="segments per puzzle (default max)"
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-batches", type=int, default=None, help="evaluate only this many batches")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even if EMA weights exist")
    p.add_argument("--out", help="directory for metrics.json (and submission.json for ARC)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--targets",
        choices=("label", "closest_answer"),
        default="label",
        help="score against the dataset's label (default), or, for puzzles with several right answers "
        "(mazes), against the right answer closest to the prediction: any right answer counts",
    )
    p.set_defaults(handler=_eval)

    p = sub.add_parser(
        "export",
        help="write a trained model as model.safetensors + model.json (the packaged-model form)",
        description="Export a run (its latest checkpoint), a checkpoint dir or a weights file to a "
        "self-contained directory that `hrm solve --model DIR` and `hrm.load_model(DIR)` read; an "
        "agent run (`hrm agent train`) exports the same way. EMA weights are used when the run kept "
        "them.",
    )
    p.add_argument("model", help="run dir, checkpoint dir, weights file or reference checkpoint dir")
    p.add_argument("out", help="directory to write")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights even if EMA weights exist")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--card", metavar="FILE.yaml", help="a model card to include (fields: see cards/*.yaml)")
    p.add_argument(
        "--halt-margin",
        type=float,
        metavar="M",
        help="the margin adaptive halting uses by default when solving with this model (see hrm solve)",
    )
    p.add_argument(
        "--segments",
        type=int,
        metavar="N",
        help="the most segments solving runs with this model (its halt_max_steps; default: the "
        "training's); `--halt max` runs all N",
    )
    p.add_argument(
        "--h-cycles",
        type=int,
        metavar="N",
        help="the H cycles of each segment when solving with this HRM or TRM model (its H_cycles; "
        "default: the training's)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        help="the dtype the exported model computes in (e.g. float32 for CPUs after bfloat16 training)",
    )
    p.set_defaults(handler=_export)

    p = sub.add_parser(
        "demo",
        help="the CPU quick start: the shipped 9x9 solver at work, a fresh 4x4 solver trained, a report",
        description="The shipped sudoku-9x9 model solves new puzzles segment by segment; then a fresh "
        "model is trained from scratch on 4x4 Sudoku (about a minute on a laptop CPU) and solves new "
        "puzzles; a self-contained HTML report of it all is written.",
    )
    p.add_argument("--dir", default="runs/demo", help="where to put the data, the run and report.html")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from hrm.demo import run_demo

    run_demo(args.dir, seed=args.seed)
    return 0


def _export(args: argparse.Namespace) -> int:
    from hrm.checkpoint import export_model

    out = export_model(
        args.model,
        args.out,
        use_ema=not args.no_ema,
        overwrite=args.overwrite,
        card_file=args.card,
        halt_margin=args.halt_margin,
        forward_dtype=args.dtype,
        segments=args.segments,
        h_cycles=args.h_cycles,
    )
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from hrm.tasks import task_named
    from hrm.training import train_from_cli

    overrides = list(args.overrides)
    recipe = args.recipe
    if recipe is not None and "=" in recipe and args.resume:
        overrides.insert(0, recipe)
        recipe = None
    result = train_from_cli(recipe, overrides, args.resume)
    print(f"run directory: {result.run_dir} (step {result.step})")
    for set_name, metrics in result.eval_metrics.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(f"eval {set_name}: {shown}")
    for name, summary in result.eval_score.items():  # a task's dataset score: the values it follows
        keys = task_named(name).score_series
        print(
            f"eval {name}: " + ", ".join(f"{k} {summary[k]:.4f}" for k in keys if summary.get(k) is not None)
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from hrm.evaluate import evaluate_cli

    report = evaluate_cli(
        args.model,
        data=args.data,
        halt=args.halt,
        batch_size=args.batch_size,
        max_batches=args.max_batches,
        device=args.device,
        use_ema=not args.no_ema,
        out=args.out,
        targets=args.targets,
    )
    if args.json and os.environ.get("RANK", "0") == "0":  # under torchrun, the main process only
        json.dump(report, sys.stdout, indent=1)
        print()
    return 0
