"""Peak training memory as H_cycles x L_cycles grows, for the one-step gradient against full
back-propagation through every cycle: the paper's O(1)-vs-O(T) memory claim, measured.

Two measures per configuration: the bytes autograd saves for backward (exact, any device), and the
peak memory of the training step (CUDA: max_memory_allocated; CPU: the process's peak RSS growth,
each configuration in its own process).

    python benchmarks/memory_scaling.py --config small --batch 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from common import model_config, save, table
from hrm.models import ACTLossHead, build_model

GRID = [(2, 2), (2, 4), (4, 4), (4, 8), (8, 8)]


def one(config: str, batch: int, h: int, l: int, full: bool, device: str) -> dict:
    dev = torch.device(device)
    cfg = model_config(config, H_cycles=h, L_cycles=l, full_backprop=full, batch_size=batch)
    torch.manual_seed(0)
    head = ACTLossHead(build_model("hrm", cfg)).to(dev).train()
    data = {
        "inputs": torch.randint(1, 11, (batch, cfg["seq_len"]), dtype=torch.int32, device=dev),
        "labels": torch.randint(1, 11, (batch, cfg["seq_len"]), dtype=torch.int32, device=dev),
        "puzzle_identifiers": torch.zeros(batch, dtype=torch.int32, device=dev),
    }
    carry = head.initial_carry(data)
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = head(carry, data).loss
    loss.backward()
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    return {
        "H_cycles": h,
        "L_cycles": l,
        "gradient": "full" if full else "one-step",
        "saved_MB": saved / 2**20,
        "peak_MB": peak / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=("small", "27m"), default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--child", nargs=3, type=int, metavar=("H", "L", "FULL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        h, l, full = args.child
        print(json.dumps(one(args.config, args.batch, h, l, bool(full), args.device)))
        return
    rows = []
    for full in (False, True):
        for h, l in GRID:
            cmd = [sys.executable, __file__, "--config", args.config, "--batch", str(args.batch)]
            cmd += ["--device", args.device, "--child", str(h), str(l), str(int(full))]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(table([rows[-1]], list(rows[-1])), flush=True)
    one_step = [r for r in rows if r["gradient"] == "one-step"]
    growth = one_step[-1]["peak_MB"] / max(one_step[0]["peak_MB"], 1e-9) - 1
    saved_growth = one_step[-1]["saved_MB"] / one_step[0]["saved_MB"] - 1
    summary = {"config": args.config, "batch": args.batch, "device": args.device}
    summary["one_step_peak_growth_2x2_to_8x8"] = growth
    summary["one_step_saved_growth_2x2_to_8x8"] = saved_growth
    path = save(f"memory_scaling-{args.device}", rows, summary)
    print(table(rows, ["H_cycles", "L_cycles", "gradient", "saved_MB", "peak_MB"]))
    print(f"one-step gradient, 2x2 -> 8x8: peak {growth:+.1%}, saved-for-backward {saved_growth:+.1%}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
