"""Where a 9x9 Sudoku model's attention looks: for every attention layer, the share of each cell's
attention that falls on its peers (the 20 cells in its row, column or box, and itself), the share on
itself alone and the entropy of its attention, averaged over held-out puzzles, heads and segments.

    python benchmarks/sudoku_attention.py runs/sudoku9_hrm_cpu/checkpoints/step_0003500
    python benchmarks/sudoku_attention.py MODEL [MODEL ...] --count 64

Attention spread evenly puts 21/81 = 0.26 of it on the peers and 1/81 on the cell itself (entropy
ln 81 = 4.39); a model that propagates Sudoku constraints has to look at its other peers far more
than that. Models without attention (TRM with its MLP over positions) have nothing to measure and are
refused."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from common import exact_accuracy, save, table
from hrm import load_model, solve_many
from hrm.data.sudoku import box_shape
from hrm.models.layers import Attention
from sudoku9_accuracy import held_out

SIDE = 9


def peer_mask() -> torch.Tensor:
    """[81, 81] 1 where two cells share a row, a column or a box (a cell is its own peer)."""
    cell = torch.arange(SIDE * SIDE)
    row, col = cell // SIDE, cell % SIDE
    box_rows, box_cols = box_shape(SIDE)
    box = (row // box_rows) * (SIDE // box_cols) + col // box_cols
    same = (row[:, None] == row) | (col[:, None] == col) | (box[:, None] == box)
    return same.float()


def attention_weights(layer: Attention, x: torch.Tensor, cos_sin) -> torch.Tensor:
    """The softmax weights [B, heads, S, S] that `layer` computes on input `x`."""
    q, k, _ = layer.project(x, cos_sin)
    logits = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) / math.sqrt(layer.head_dim)
    return logits.softmax(-1)


def measure(model_path: str, puzzles: list[str]) -> list[dict]:
    loaded = load_model(model_path)
    layers = [(n, m) for n, m in loaded.model.named_modules() if isinstance(m, Attention)]
    if not layers:
        raise SystemExit(f"{model_path}: no attention layers to measure")
    peers = peer_mask()
    seen: dict[str, list[tuple[float, float, float]]] = {n: [] for n, _ in layers}  # peers, self, entropy

    def hook_for(name: str):
        def hook(module, args, _output):
            x, cos_sin = args
            cells = SIDE * SIDE  # the last positions (any puzzle-embedding positions come first)
            a = attention_weights(module, x, cos_sin)[..., -cells:, -cells:]
            entropy = -(a * (a + 1e-12).log()).sum(-1).mean()
            own = a.diagonal(dim1=-2, dim2=-1).mean()
            seen[name].append((float((a * peers).sum(-1).mean()), float(own), float(entropy)))

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in layers]
    try:
        with torch.no_grad():
            sols = solve_many(loaded, puzzles, halt="max", batch_size=len(puzzles))
    finally:
        for h in handles:
            h.remove()
    solved = exact_accuracy(sols)
    return [
        {
            "model": model_path,
            "layer": name.removeprefix("model.").removeprefix("inner."),
            "calls": len(calls),
            "peer_share": float(np.mean([c[0] for c in calls])),
            "self_share": float(np.mean([c[1] for c in calls])),
            "entropy": float(np.mean([c[2] for c in calls])),
            "exact": solved,
        }
        for name, calls in seen.items()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="packaged names, run dirs or checkpoint dirs")
    ap.add_argument("--level", default="easy", help="held-out generated level")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", type=Path, default=Path("data/sudoku9-heldout"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    puzzles = held_out(args.level, args.count, args.seed, args.cache)
    rows = [row for m in args.models for row in measure(m, puzzles)]
    print(f"uniform attention: peer share {21 / 81:.3f}, entropy {math.log(81):.2f}")
    print(table(rows, list(rows[0])))
    path = save("sudoku_attention", rows, {"level": args.level, "count": args.count, "seed": args.seed})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
