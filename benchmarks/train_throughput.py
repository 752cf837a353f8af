"""Training-step throughput: examples/s, tokens/s, achieved FLOP/s and its fraction of the measured
dense-matmul peak. One step = one ACT segment forward (with the Q-target segment), backward,
Adam-atan2 + sign-SGD steps, as in `hrm train`.

    python benchmarks/train_throughput.py --config small --batch 128
    python benchmarks/train_throughput.py --config 27m --batch 32
    python benchmarks/train_throughput.py --config 27m --batch 768 --device cuda --dtype bfloat16 --compile
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from common import (
    batches_for,
    hrm_train_step_flops,
    model_config,
    peak_matmul_flops,
    random_batch,
    save,
    sync,
    table,
)
from hrm.models import ACTLossHead, build_model, cpu_rows_per_slice
from hrm.optim import AdamAtan2, SparseEmbeddingSignSGD
from hrm.runtime import tune_cpu_allocator


@dataclass
class TrainingStep:
    """An HRM of a benchmark config with its loss head and optimisers on a fixed random batch;
    `step()` runs one training step as `hrm train` does and returns its seconds; `step(slice_bytes)`
    sets the CPU batch slices (see `hrm.models.cpu_rows_per_slice`; None: the trainer's default)."""

    cfg: dict
    head: ACTLossHead
    batch: dict[str, torch.Tensor]
    optimizers: list[torch.optim.Optimizer]
    step: Callable[..., float]


def training_step(config: str, batch: int, device: torch.device, dtype: str, compile_: bool) -> TrainingStep:
    cfg = model_config(config, forward_dtype=dtype, batch_size=batch)
    torch.manual_seed(0)
    model = build_model("hrm", cfg)
    head = ACTLossHead(model).to(device).train()
    opt = AdamAtan2([p for p in head.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1)
    sparse = SparseEmbeddingSignSGD(model.inner.puzzle_emb, lr=1e-4, weight_decay=0.1)
    forward = torch.compile(head) if compile_ else head
    batch_data = random_batch(cfg, batch, device)
    carry = head.initial_carry(batch_data)

    def step(slice_bytes: int | None = None) -> float:
        nonlocal carry
        rows = cpu_rows_per_slice(model.config, batch, device, slice_bytes)
        sync(device)
        start = time.perf_counter()
        out = forward(carry, batch_data, rows_per_slice=rows)
        carry, loss = out.carry, out.loss
        (loss / batch).backward()
        opt.step()
        sparse.step()
        opt.zero_grad(set_to_none=True)
        sparse.zero_grad()
        sync(device)
        return time.perf_counter() - start

    return TrainingStep(cfg, head, batch_data, [opt, sparse], step)


def measure(
    config: str, batch: int, steps: int, warmup: int, device: torch.device, dtype: str, compile_: bool
):
    run = training_step(config, batch, device, dtype, compile_)
    cfg = run.cfg
    times = [run.step() for _ in range(warmup + steps)][warmup:]
    seconds = sorted(times)[len(times) // 2]
    flops = hrm_train_step_flops(cfg, batch)
    return {
        "config": config,
        "batch": batch,
        "dtype": dtype,
        "compile": compile_,
        "device": str(device),
        "s_per_step": seconds,
        "examples_per_s": batch / seconds,
        "tokens_per_s": batch * cfg["seq_len"] / seconds,
        "gflop_per_step": flops / 1e9,
        "achieved_tflops": flops / seconds / 1e12,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=("small", "27m"), nargs="+", default=["small", "27m"])
    ap.add_argument(
        "--batch", type=int, nargs="+", default=None, help="batch per config (default 128 small, 32 27m)"
    )
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--plain-malloc", action="store_true", help="leave glibc's allocator settings as they are"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu" and not args.plain_malloc:
        tune_cpu_allocator()
    batches = batches_for(args.config, args.batch)
    peak = peak_matmul_flops(device, getattr(torch, args.dtype))
    rows = []
    for config, batch in zip(args.config, batches):
        row = measure(config, batch, args.steps, args.warmup, device, args.dtype, args.compile)
        row["peak_tflops"] = peak / 1e12
        row["mfu"] = row["achieved_tflops"] / row["peak_tflops"]
        rows.append(row)
        print(table([row], list(row)), flush=True)
    suffix = f"{device.type}-{args.dtype}" + ("-compile" if args.compile else "")
    suffix += "-plain-malloc" if args.plain_malloc else ""
    path = save(f"train_throughput-{suffix}", rows, {"peak_matmul_tflops": peak / 1e12})
    print(
        table(
            rows,
            ["config", "batch", "s_per_step", "examples_per_s", "tokens_per_s", "achieved_tflops", "mfu"],
        )
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
