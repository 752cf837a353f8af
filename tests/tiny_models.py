"""The tiny random-weight models the tests share: one config, shaped per model and puzzle kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hrm.checkpoint import ModelCard, save_checkpoint
from hrm.models import ACTModel, build_model

# A 4x4 puzzle (16 cells, 6 tokens) through one layer per module, in float32 so results are exact.
TINY: dict[str, Any] = dict(
    seq_len=16,
    vocab_size=6,
    hidden_size=32,
    num_heads=2,
    H_layers=1,
    L_layers=1,
    H_cycles=2,
    L_cycles=2,
    halt_max_steps=3,
    forward_dtype="float32",
)


# The same tiny HRM as a recipe's `arch` section (the training tests' runs).
TINY_ARCH: dict[str, Any] = {
    "name": "hrm",
    "loss_type": "softmax_cross_entropy",
    "H_cycles": 2,
    "L_cycles": 2,
    "H_layers": 1,
    "L_layers": 1,
    "hidden_size": 32,
    "num_heads": 2,
    "expansion": 2,
    "puzzle_emb_ndim": 32,
    "halt_max_steps": 3,
    "halt_exploration_prob": 0.5,
    "forward_dtype": "float32",
}


def tiny_config(seq_len: int = 16, vocab_size: int = 6, **extra: Any) -> dict[str, Any]:
    """The shared tiny HRM config for `seq_len` cells over `vocab_size` tokens, with `extra` fields."""
    return {**TINY, "seq_len": seq_len, "vocab_size": vocab_size, **extra}


def tiny_model(name: str = "hrm", seed: int = 0, **extra: Any) -> ACTModel:
    """A tiny model of `name` (hrm, trm, transformer) with weights drawn from `seed`. TRM has one
    module (no H_layers) and no puzzle-embedding positions unless asked; the transformer has layers,
    not cycles."""
    cfg = tiny_config(**extra)
    if name == "trm":
        cfg.setdefault("puzzle_emb_len", 0)
        cfg.pop("H_layers")
    if name == "transformer":
        for key in ("L_layers", "H_cycles", "L_cycles", "halt_max_steps"):
            cfg.pop(key)
        cfg["H_layers"] = 1
    torch.manual_seed(seed)
    return build_model(name, cfg)


def save_tiny(run_dir: Path, cfg: dict[str, Any], seed: int = 0) -> Path:
    """A run directory holding one checkpoint of an HRM with `cfg` and weights drawn from `seed`."""
    torch.manual_seed(seed)
    save_checkpoint(run_dir, 1, build_model("hrm", cfg), ModelCard("hrm", cfg), {})
    return run_dir
