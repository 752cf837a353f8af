"""Exact accuracy of a 9x9 Sudoku model on held-out puzzles (generated ones per difficulty level and a
slice of the real 17-clue set), with adaptive halting and with the maximum number of segments, and the
latency of one single-puzzle solve.

    python benchmarks/sudoku9_accuracy.py                         # the packaged sudoku-9x9 model
    python benchmarks/sudoku9_accuracy.py --model runs/sudoku9 --count 200 --levels easy,medium
    python benchmarks/sudoku9_accuracy.py --views 8 --segments 16 --extra-on medium  # extra rows

With ``--segments N`` the sets named in ``--extra-on`` are also solved with all of N segments (more
than the model trained with); with ``--views K`` under K symmetric views per puzzle (adaptive halting;
the answer kept satisfies the rules if one view's does, else the majority's: `hrm.solve(...,
views=K)`). The views rows measure the solver, not the model's single answer.

The generated puzzles come from their own seeds (one stream per level, `--seed`), never from the
training data's. Every set is also written under `--cache` as one puzzle per line (the 17-clue slice as
real17-COUNT-seedSEED.txt), so that a training set can leave them all out (`hrm data sudoku --exclude`,
as configs/sudoku9_trm_cpu_hard.yaml does). A puzzle counts as solved when the answer
keeps the givens and satisfies every Sudoku rule; all these puzzles have one solution, so that is exact
accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common import exact_accuracy, save_solver_results, solve_latency, table, timed_solve_many
from hrm import load_model
from hrm.data.sudoku import DIFFICULTIES, generate_sudoku, parse_difficulties, read_sudoku_file

REAL_17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sudoku" / "17_clue.txt"


def held_out(level: str, count: int, seed: int, cache: Path | None = None) -> list[str]:
    """``count`` generated puzzles of ``level`` from their own seed stream; kept as text under ``cache``
    (one puzzle per line) so that later runs skip the generation."""
    path = cache / f"{level}-{count}-seed{seed}.txt" if cache else None
    if path is not None and path.exists():
        return path.read_text().split()
    rng = np.random.default_rng(np.random.SeedSequence([seed, DIFFICULTIES.index(level)]))
    puzzles = ["".join(map(str, generate_sudoku(9, level, rng).puzzle)) for _ in range(count)]
    if path is not None:
        write_puzzles(path, puzzles)
    return puzzles


def write_puzzles(path: Path, puzzles: list[str]) -> None:
    """One puzzle per line, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(puzzles) + "\n")
    tmp.replace(path)


def real_slice(path: Path, count: int, seed: int, cache: Path | None = None) -> list[str]:
    """``count`` puzzles of the 17-clue file chosen by ``seed``; also written under ``cache`` (as
    real17-COUNT-seedSEED.txt) so that a training set can leave them out (hrm data sudoku --exclude)."""
    coll = read_sudoku_file(path)
    pick = np.sort(np.random.default_rng(seed).choice(len(coll), min(count, len(coll)), replace=False))
    puzzles = ["".join(map(str, coll.puzzles[i])) for i in pick]
    if cache is not None:
        write_puzzles(cache / f"real17-{count}-seed{seed}.txt", puzzles)
    return puzzles


def add_set_arguments(ap: argparse.ArgumentParser) -> None:
    """The held-out sets' options (shared with benchmarks/halting.py)."""
    ap.add_argument("--count", type=int, default=1000, help="generated puzzles per level")
    ap.add_argument("--levels", default="easy,medium,hard,extreme")
    ap.add_argument("--extreme-count", type=int, default=200, help="extreme puzzles (slow to make)")
    ap.add_argument("--real", type=Path, default=REAL_17, help="17-clue file (skipped if missing)")
    ap.add_argument("--real-count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--cache", type=Path, default=Path("data/sudoku9-heldout"), help="generated puzzles kept here"
    )


def held_out_sets(args: argparse.Namespace) -> dict[str, list[str]]:
    """The generated sets per level and the 17-clue slice, by name."""
    sets: dict[str, list[str]] = {}
    for level in parse_difficulties(args.levels) if args.levels.strip() else []:
        n = args.extreme_count if level == "extreme" else args.count
        start = time.perf_counter()
        sets[f"generated {level}"] = held_out(level, n, args.seed, args.cache)
        print(f"{n} {level} puzzles ready in {time.perf_counter() - start:.0f} s", flush=True)
    if args.real.exists() and args.real_count > 0:
        sets["real 17-clue"] = real_slice(args.real, args.real_count, args.seed, args.cache)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sudoku-9x9", help="packaged name, run dir or model dir")
    add_set_arguments(ap)
    ap.add_argument(
        "--generate-only", action="store_true", help="write the puzzles under --cache, solve nothing"
    )
    ap.add_argument("--views", type=int, default=0, help="also solve under K symmetric views (0: skip)")
    ap.add_argument(
        "--segments", type=int, default=0, help="also run all of N segments (0, or the model's own: skip)"
    )
    ap.add_argument("--extra-on", default="medium", help="sets for --views/--segments (levels, 'real')")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument(
        "--halt-margin", type=float, default=0.0, help="adaptive halting's margin (0: the reference rule)"
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="sudoku9_accuracy", help="results name under benchmarks/results")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sets = held_out_sets(args)
    if args.generate_only:
        return
    extra_sets = {f"generated {x}" if x != "real" else "real 17-clue" for x in args.extra_on.split(",")}

    loaded = load_model(args.model)
    rows = []
    for name, puzzles in sets.items():
        runs = [("adaptive", 1, None), ("max", 1, None)]
        if args.segments and args.segments != loaded.model.config.halt_max_steps and name in extra_sets:
            runs.append(("max", 1, args.segments))  # "max" above already runs the model's own count
        if args.views > 1 and name in extra_sets:
            runs.append(("adaptive", args.views, None))
        for halt, views, segments in runs:
            sols, seconds = timed_solve_many(
                loaded,
                puzzles,
                halt=halt,
                batch_size=args.batch,
                views=views,
                segments=segments,
                halt_margin=args.halt_margin,
            )
            rows.append(
                {
                    "set": name,
                    "puzzles": len(puzzles),
                    "halt": halt,
                    "views": views,
                    "max_segments": sols[0].max_segments,
                    "exact_accuracy": exact_accuracy(sols),
                    "mean_givens": float(np.mean([81 - p.count("0") for p in puzzles])),
                    "mean_segments": float(np.mean([s.segments for s in sols])),
                    "puzzles_per_s": len(puzzles) / seconds,
                }
            )
            print(table([rows[-1]], list(rows[-1])), flush=True)

    views_runs = [("adaptive", 1), ("max", 1)] + ([("adaptive", args.views)] if args.views > 1 else [])
    runs = [{"halt": halt, "views": views, "halt_margin": args.halt_margin} for halt, views in views_runs]
    latency = solve_latency(loaded, next(iter(sets.values()))[0], runs)
    print(table(rows, list(rows[0])))
    print("single 9x9 solve (hrm.solve, one puzzle):")
    print(table(latency, list(latency[0])))
    save_solver_results(args.out, rows, args, latency)


if __name__ == "__main__":
    main()
