"""Benchmark: build a sudoku dataset of 1,000 puzzles x 1,000 augmentations (1,001,000 examples).

Stages timed separately: solving (importing puzzles from the 17-clue file, or generating them when it is
missing), augmentation (vectorised), writing (atomic write_dataset) and validation. The requirement is
augment + write <= 15 s. Also times solving the whole 49,158-puzzle 17-clue file with --all-17.

    .venv/bin/python benchmarks/data_build.py [--puzzles 1000] [--num-aug 1000] [--all-17]

Writes benchmarks/results/data_build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hrm.data.format import validate_dataset, write_dataset
from hrm.data.sudoku import (
    generate_collection,
    rate_difficulty,
    read_sudoku_file,
    solve_exact,
    sudoku_metadata,
    sudoku_puzzle_set,
)

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HRM_SHARED_DIR", HERE.parents[1] / "shared"))
SEVENTEEN = SHARED / "data" / "sudoku" / "17_clue.txt"
HARD = {
    "inkala": "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4..",
    "easter_monster": "1.......2.9.4...5...6...7...5.9.3.......7.......85..4.7.....6...3...9.8...2.....1",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--puzzles", type=int, default=1000)
    parser.add_argument("--num-aug", type=int, default=1000)
    parser.add_argument("--all-17", action="store_true", help="also solve all 49,158 17-clue puzzles")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "puzzles": args.puzzles,
        "num_aug": args.num_aug,
    }
    timings: dict[str, float] = {}

    for name, line in HARD.items():
        grid = np.frombuffer(line.replace(".", "0").encode(), dtype=np.uint8) - ord("0")
        start = time.perf_counter()
        result = solve_exact(grid)
        timings[f"solve_{name}_ms"] = (time.perf_counter() - start) * 1000
        results[f"{name}_stats"] = {**vars(result.stats), "rating": rate_difficulty(result.stats)}

    work = Path(tempfile.mkdtemp(prefix="hrm-bench-"))
    try:
        start = time.perf_counter()
        if SEVENTEEN.is_file():
            lines = [ln for ln in SEVENTEEN.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            source = work / "slice.txt"
            source.write_text("\n".join(lines[: args.puzzles]) + "\n")
            collection = read_sudoku_file(source)
            results["source"] = f"first {args.puzzles} of {SEVENTEEN}"
        else:
            collection = generate_collection(args.puzzles, 9, "hard", np.random.default_rng(0))
            results["source"] = f"{args.puzzles} generated hard puzzles"
        timings["solve_s"] = time.perf_counter() - start

        start = time.perf_counter()
        train = sudoku_puzzle_set(collection, args.num_aug, np.random.default_rng(0))
        timings["augment_s"] = time.perf_counter() - start

        start = time.perf_counter()
        summary = write_dataset(
            work / "ds",
            {"train": {"all": train}},
            {"train": sudoku_metadata(9, train.num_examples, train.num_groups)},
            ["<blank>"],
        )
        timings["write_s"] = time.perf_counter() - start
        timings["augment_plus_write_s"] = timings["augment_s"] + timings["write_s"]
        results["examples"] = train.num_examples
        results["bytes"] = summary.num_bytes

        start = time.perf_counter()
        problems = validate_dataset(work / "ds")
        timings["validate_s"] = time.perf_counter() - start
        assert not problems, problems

        if args.all_17 and SEVENTEEN.is_file():
            start = time.perf_counter()
            everything = read_sudoku_file(SEVENTEEN)
            timings["solve_all_17_clue_s"] = time.perf_counter() - start
            results["all_17_clue_puzzles"] = len(everything)
            levels, counts = np.unique(np.array(everything.ratings), return_counts=True)
            results["all_17_clue_ratings"] = dict(zip(levels.tolist(), counts.tolist()))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["timings"] = timings
    results["meets_15s_requirement"] = timings["augment_plus_write_s"] <= 15.0
    print(f"{'stage':<28}{'time':>12}")
    for key, value in timings.items():
        unit = "ms" if key.endswith("_ms") else "s"
        print(f"{key.removesuffix('_ms').removesuffix('_s'):<28}{value:>10.2f} {unit}")
    print(
        f"{results['examples']:,} examples, {results['bytes'] / 1e6:.1f} MB written; "
        f"source: {results['source']}"
    )
    out = HERE / "results" / "data_build.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
