"""CPU training-step time against the size of the batch slices `reason` runs over
(`hrm.models.cpu_rows_per_slice`'s budget; 0 = the whole batch at once, "auto" = its default rule, the
one `hrm train` and the inference runner apply).

All sizes share one model and are timed interleaved (each round runs one step per size, the order
reversed every other round), so a shared machine's drift falls on all of them alike.

    python benchmarks/batch_slices.py                                   # small b128 and 27m b32
    python benchmarks/batch_slices.py --config small --mb 0 4 16 auto --rounds 7
"""

from __future__ import annotations

import argparse
import statistics

import torch

from common import batches_for, save, table
from hrm.models import cpu_rows_per_slice
from hrm.runtime import tune_cpu_allocator
from train_throughput import training_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=("small", "27m"), nargs="+", default=["small", "27m"])
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="default 128 small, 32 27m")
    ap.add_argument("--mb", nargs="+", default=["0", "4", "16", "auto"], help="slice sizes in MB, or auto")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # as `hrm train` does on a CPU
    batches = batches_for(args.config, args.batch)
    try:
        sizes = [None if mb == "auto" else int(float(mb) * (1 << 20)) for mb in args.mb]
    except ValueError:
        ap.error(f"--mb takes sizes in MB or 'auto', got {' '.join(args.mb)}")
    rows = []
    for config, batch in zip(args.config, batches):
        run = training_step(config, batch, torch.device("cpu"), "float32", False)
        model_config, step = run.head.model.config, run.step
        times: dict[int | None, list[float]] = {s: [] for s in sizes}
        for size in sizes:  # warm-up
            step(size)
        for r in range(args.rounds):
            for size in sizes if r % 2 == 0 else sizes[::-1]:
                times[size].append(step(size))
        for size in sizes:
            per_slice = cpu_rows_per_slice(model_config, batch, torch.device("cpu"), size)
            rows.append(
                {
                    "config": config,
                    "batch": batch,
                    "slice_mb": "auto" if size is None else size / (1 << 20),
                    "rows_per_slice": batch if per_slice is None else per_slice,
                    "s_per_step": statistics.median(times[size]),
                    "all_s": [round(t, 4) for t in times[size]],
                }
            )
        print(table(rows[-len(sizes) :], ["config", "batch", "slice_mb", "rows_per_slice", "s_per_step"]))
    path = save("batch_slices-cpu-float32", rows, {"rounds": args.rounds})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
