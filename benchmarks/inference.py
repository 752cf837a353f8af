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
from hrm.evaluate import _eval_batch
from hrm.models import ACTLossHead, build_model


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


def timed(head, batch, device, repeats):
    times, segments = [], 0.0
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        metrics, out = _eval_batch(head, batch)
        sync(device)
        times.append(time.perf_counter() - start)
        segments = out["steps"].float().mean().item()
    return sorted(times)[len(times) // 2], segments, metrics


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
        model, loss_type, name = loaded.model, loaded.card.loss_type, args.model
    else:
        torch.manual_seed(0)
        model, loss_type, name = (
            build_model("hrm", model_config(args.config)).to(device),
            "softmax_cross_entropy",
            args.config,
        )
    head = ACTLossHead(model, loss_type).eval()
    cfg = model.config
    rows = []
    for halt in ("max", "adaptive"):
        model.adaptive_halting = halt == "adaptive"
        for size in (1, args.batch):
            batch = _batch(size, cfg.seq_len, cfg.vocab_size, device, args.data)
            seconds, segments, metrics = timed(head, batch, device, args.repeats)
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
