"""Exact accuracy of a maze model on held-out generated hard mazes (adaptive halting and all segments),
at the model's own size and at the published 30x30 size, on mazes of any path length at the model's
size, and the latency of one single-maze solve.

    python benchmarks/maze_accuracy.py                          # the packaged maze-hard model
    python benchmarks/maze_accuracy.py --model runs/maze_hard_cpu --count 200
    python benchmarks/maze_accuracy.py --segments 16    # also all of 16 segments (more than trained)

The mazes come from their own seed stream (``--seed``, one per size), never from the training data's,
and keep only shortest paths of at least the size's hardness filter (`hrm data maze --hard`:
ceil(111 * N / 30) moves; 111 at 30x30, the published Maze-Hard filter). A maze counts as solved
when the answer marks a shortest S->G path and changes nothing else (exact accuracy, as published).
A model only runs on mazes of the size it was trained on: other sizes are reported as not run, with
the reason. Each row also splits the accuracy between mazes with one shortest path and mazes with
several (and gives the share of the latter).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

from common import exact_accuracy, save_solver_results, solve_latency, table, timed_solve_many
from hrm import load_model
from hrm.data import maze as maze_data


def held_out(size: int, count: int, seed: int, min_path_length: int | None) -> list[str]:
    """``count`` generated mazes of side ``size``, paths of at least ``min_path_length`` moves (None: any),
    as text."""
    stream = [seed, size] if min_path_length is not None else [seed, size, 0]
    rng = np.random.default_rng(np.random.SeedSequence(stream))
    inputs, _ = maze_data.generate_mazes(count, size, rng, min_path_length)
    return [maze_data.render_maze(grid) for grid in inputs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="maze-hard", help="packaged name, run dir or model dir")
    ap.add_argument("--count", type=int, default=1000, help="mazes per size")
    ap.add_argument(
        "--sizes", default=f"model,{maze_data.PUBLISHED_HARD_SIZE}", help="'model' or N, comma-separated"
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--no-any", dest="any", action="store_false", help="skip mazes of any path length at the model's size"
    )
    ap.add_argument(
        "--segments",
        type=int,
        default=0,
        help="also run all of N segments on the hard mazes (the model's own N: skip)",
    )
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument(
        "--halt-margin",
        type=float,
        default=None,
        help="adaptive halting's margin (default: the model card's)",
    )
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = load_model(args.model)
    side = math.isqrt(int(loaded.model.config.seq_len))
    sizes = list(dict.fromkeys(side if s == "model" else int(s) for s in args.sizes.split(",")))
    rows: list[dict[str, Any]] = []
    model_mazes: list[str] = []
    sets = [(size, "hard", maze_data.hard_min_path_length(size)) for size in sizes]
    if args.any and side in sizes:
        sets.append((side, "any", None))
    for size, level, need in sets:
        base = {"size": f"{size}x{size}", "mazes": level, "min_path_length": need or 1}
        if size != side:
            rows.append({**base, "note": f"not run: the model takes {side}x{side} mazes"})
            print(table([rows[-1]], list(rows[-1])), flush=True)
            continue
        start = time.perf_counter()
        mazes = held_out(size, args.count, args.seed, need)
        seconds = time.perf_counter() - start
        print(f"{len(mazes)} {level} {size}x{size} mazes ready in {seconds:.0f} s", flush=True)
        model_mazes = model_mazes or mazes
        # Mazes with several shortest paths: a model that learned one stored path per maze may mix them.
        several = np.array(
            [
                maze_data.count_shortest_paths(maze_data.encode_maze(m.replace("\n", ""), size)) > 1
                for m in mazes
            ]
        )
        runs: list[tuple[str, int | None]] = [("adaptive", None), ("max", None)]
        if args.segments and args.segments != loaded.model.config.halt_max_steps and level == "hard":
            runs.append(("max", args.segments))  # "max" already runs the model's own count
        for halt, segments in runs:
            sols, seconds = timed_solve_many(
                loaded,
                mazes,
                halt=halt,
                batch_size=args.batch,
                halt_margin=args.halt_margin,
                segments=segments,
            )
            rows.append(
                {
                    **base,
                    "count": len(mazes),
                    "halt": halt,
                    "max_segments": sols[0].max_segments,
                    "exact_accuracy": exact_accuracy(sols),
                    "several_paths_share": float(several.mean()),
                    "exact_one_path": exact_accuracy(
                        [s for s, k in zip(sols, several, strict=True) if not k]
                    ),
                    "exact_several_paths": exact_accuracy(
                        [s for s, k in zip(sols, several, strict=True) if k]
                    ),
                    "mean_segments": float(np.mean([s.segments for s in sols])),
                    "mazes_per_s": len(mazes) / seconds,
                }
            )
            print(table([rows[-1]], list(rows[-1])), flush=True)

    runs = [{"halt": halt, "halt_margin": args.halt_margin} for halt in ("adaptive", "max")]
    latency = solve_latency(loaded, model_mazes[0], runs) if model_mazes else []
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(table(rows, columns))
    if latency:
        print(f"single {side}x{side} solve (hrm.solve, one maze):")
        print(table(latency, list(latency[0])))
    save_solver_results("maze_accuracy", rows, args, latency)


if __name__ == "__main__":
    main()
