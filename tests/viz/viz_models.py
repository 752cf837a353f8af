"""Tiny random-weight HRM runs for the viewer's tests (server and browser)."""

from __future__ import annotations

from pathlib import Path


def tiny_config(seq_len: int, vocab: int, **extra) -> dict:
    cfg = dict(
        seq_len=seq_len,
        vocab_size=vocab,
        hidden_size=32,
        num_heads=2,
        H_layers=1,
        L_layers=1,
        H_cycles=2,
        L_cycles=2,
        halt_max_steps=3,
        forward_dtype="float32",
    )
    return {**cfg, **extra}


def save_tiny(run_dir: Path, cfg: dict, seed: int = 0) -> Path:
    """A run directory holding one checkpoint of an HRM with ``cfg`` and weights drawn from ``seed``."""
    import torch

    from hrm.checkpoint import ModelCard, save_checkpoint
    from hrm.models import build_model

    torch.manual_seed(seed)
    save_checkpoint(run_dir, 1, build_model("hrm", cfg), ModelCard("hrm", cfg), {})
    return run_dir
