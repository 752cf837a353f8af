"""Shared helpers for the benchmark scripts: machine description, FLOP counts, peak matmul rate,
and writing results (a table on stdout, JSON under benchmarks/results/)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"

CONFIGS = {
    # The HRM paper's Sudoku model: 27,275,266 parameters.
    "27m": dict(hidden_size=512, num_heads=8, H_layers=4, L_layers=4, expansion=4, puzzle_emb_ndim=512),
    # A small CPU configuration.
    "small": dict(hidden_size=128, num_heads=4, H_layers=2, L_layers=2, expansion=4, puzzle_emb_ndim=128),
}


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def model_config(name: str, seq_len: int = 81, vocab: int = 11, **overrides) -> dict:
    cfg = dict(
        seq_len=seq_len,
        vocab_size=vocab,
        num_puzzle_identifiers=1,
        H_cycles=2,
        L_cycles=2,
        halt_max_steps=16,
        halt_exploration_prob=0.1,
        pos_encodings="rope",
        forward_dtype="float32",
    )
    cfg.update(CONFIGS[name])
    cfg.update(overrides)
    return cfg


def batches_for(configs: list[str], batches: list[int] | None) -> list[int]:
    """The batch of each config: the defaults (128 small, 32 27m), one value for all, or one each."""
    if not batches:
        return [128 if c == "small" else 32 for c in configs]
    if len(batches) == 1:
        return batches * len(configs)
    if len(batches) != len(configs):
        raise SystemExit("--batch takes one value, or one per --config")
    return batches


def random_batch(cfg: dict, batch: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A fixed random batch (seed 0) of Sudoku-sized tokens for timing a training step."""
    g = torch.Generator().manual_seed(0)
    return {
        "inputs": torch.randint(1, 11, (batch, cfg["seq_len"]), generator=g, dtype=torch.int32).to(device),
        "labels": torch.randint(1, 11, (batch, cfg["seq_len"]), generator=g, dtype=torch.int32).to(device),
        "puzzle_identifiers": torch.zeros(batch, dtype=torch.int32).to(device),
    }


def block_flops_per_token(d: int, inter: int, seq: int) -> int:
    """Forward multiply-adds x2 of one block for one token: projections, MLP and attention scores."""
    return 2 * (4 * d * d) + 2 * (3 * d * inter) + 2 * (2 * seq * d)


def hrm_train_step_flops(cfg: dict, batch: int, q_target: bool = True) -> float:
    """Analytic FLOPs of one HRM training step (one ACT segment): the no-grad cycles, the last L and H
    passes forward and backward (backward = 2x forward), the heads, and the Q-target segment."""
    from hrm.models.layers import swiglu_width

    d = cfg["hidden_size"]
    p = -(cfg.get("puzzle_emb_ndim", 0) // -d)
    seq = cfg["seq_len"] + p
    tokens = batch * seq
    block = block_flops_per_token(d, swiglu_width(d, cfg["expansion"]), seq) * tokens
    l_pass, h_pass = cfg["L_layers"] * block, cfg["H_layers"] * block
    segment = cfg["H_cycles"] * cfg["L_cycles"] * l_pass + cfg["H_cycles"] * h_pass
    heads = 2 * d * cfg["vocab_size"] * batch * cfg["seq_len"]
    total = segment + heads + 2 * (l_pass + h_pass + heads)
    if q_target:
        total += segment
    return float(total)


def peak_matmul_flops(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Measured dense matmul rate (FLOP/s) on this device and dtype: the best of two sizes."""
    best = 0.0
    for n in (4096, 8192) if device.type == "cuda" else (1024, 2048):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        sync(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        sync(device)
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def save(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **(extra or {}), "rows": rows}, indent=1))
    return path


def save_solver_results(name: str, rows: list[dict], args, latency: list[dict]) -> Path:
    """`save` for an accuracy benchmark of a shipped solver: its rows with the model, seed and halting
    margin it ran with (`args`), the single-solve timings and the thread count; prints where it went."""
    path = save(
        name,
        rows,
        {
            "model": args.model,
            "seed": args.seed,
            "halt_margin": args.halt_margin,
            "single_solve": latency,
            "threads": torch.get_num_threads(),
        },
    )
    print(f"wrote {path}")
    return path


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    for r in rows:
        lines.append("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def solve_latency(loaded, puzzle, runs: list[dict], repeats: int = 21) -> list[dict]:
    """One puzzle through `hrm.solve` under each of `runs` (keyword arguments of `solve`): after a
    warm-up, the median and the slowest of `repeats` calls, the segments and the answer's validity."""
    import numpy as np

    from hrm import solve

    rows = []
    for kwargs in runs:
        solve(loaded, puzzle, **kwargs)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            sol = solve(loaded, puzzle, **kwargs)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                **{k: v for k, v in kwargs.items() if k != "halt_margin"},
                "median_ms": 1e3 * float(np.median(times)),
                "max_ms": 1e3 * max(times),
                "segments": sol.segments,
                "valid": bool(sol.valid),
            }
        )
    return rows


def timed_solve_many(loaded, puzzles: list, **kwargs) -> tuple[list, float]:
    """`hrm.solve_many(loaded, puzzles, **kwargs)` and the seconds it took."""
    from hrm import solve_many

    start = time.perf_counter()
    sols = solve_many(loaded, puzzles, **kwargs)
    return sols, time.perf_counter() - start


def exact_accuracy(solutions: list) -> float:
    """The share of `hrm.solve`/`solve_many` answers that are valid solutions of their puzzles."""
    return sum(bool(s.valid) for s in solutions) / len(solutions) if solutions else 0.0
