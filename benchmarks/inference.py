"""Inference: latency of one puzzle and throughput at batch 256, with the maximum number of segments
(as the reference evaluates) and with adaptive halting (each puzzle stops when its Q head says so).

    python benchmarks/inference.py --config small            # random weights: Q never halts early
    python benchmarks/inference.py --model runs/<run> --data data/sudoku4
"""

from __future__ import annotations

import argparse
import time

import torch

from common import model_config, save, sync, table
from hrm.inference import run_until_halted
from hrm.models import act_metrics, build_model


def _batch(size: int, seq: int, vocab: int, device, data: str | None):
    if data:
        from hrm.data.dataset import PuzzleDataset

        ds = PuzzleDataset(
            {"dataset_path": data, "global_batch_size": size, "test_set_mode": True}, split="test"
        )
        _, batch, _ = next(iter(ds))
        return {k: v.to(device) for k, v in batch.items()}
    g = torch.Generator().manual_seed(0)
    return {
        "inputs": torch.randint(1, vocab, (size, seq), generator=g, dtype=torch.int32).to(device),
        "labels": torch.randint(1, vocab, (size, seq), generator=g, dtype=torch.int32).to(device),
        "puzzle_identifiers": torch.zeros(size, dtype=torch.int32).to(device),
    }


def timed(model, batch, halt, device, repeats):
    """Median seconds of `run_until_halted` (as `hrm eval` and `hrm solve` run it), mean segments and
    the ACT metrics of the last repeat."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = run_until_halted(model, batch, halt=halt)
        sync(device)
        times.append(time.perf_counter() - start)
    everyone = torch.ones_like(out.steps, dtype=torch.bool)
    metrics = act_metrics(batch["labels"], out.preds, out.q_halt, out.steps, everyone)
    return sorted(times)[len(times) // 2], out.steps.float().mean().item(), metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=("small", "27m"), default="small")
    ap.add_argument(
        "--model", help="a trained model (run dir, checkpoint, packaged name) instead of --config"
    )
    ap.add_argument("--data", help="dataset dir whose test split supplies the puzzles")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.model:
        from hrm.checkpoint import load_model

        loaded = load_model(args.model, device=device)
        model, name = loaded.model, args.model
    else:
        torch.manual_seed(0)
        model, name = build_model("hrm", model_config(args.config)).to(device), args.config
    cfg = model.config
    rows = []
    for halt in ("max", "adaptive"):
        for size in (1, args.batch):
            batch = _batch(size, cfg.seq_len, cfg.vocab_size, device, args.data)
            seconds, segments, metrics = timed(model, batch, halt, device, args.repeats)
            count = max(float(metrics["count"]), 1.0)
            rows.append(
                {
                    "model": name,
                    "halt": halt,
                    "batch": size,
                    "ms_per_batch": seconds * 1e3,
                    "puzzles_per_s": size / seconds,
                    "mean_segments": segments,
                    "exact_accuracy": float(metrics["exact_accuracy"]) / count if args.data else None,
                }
            )
            print(table([rows[-1]], list(rows[-1])), flush=True)
    path = save(f"inference-{device.type}", rows)
    print(table(rows, list(rows[0])))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
