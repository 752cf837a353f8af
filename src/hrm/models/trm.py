"""The Tiny Recursive Model: one small network plays both roles.

Each of the first `H_cycles - 1` cycles runs without gradient: `L_cycles` updates of z_L from
(z_L, z_H + x), then one update of z_H from (z_H, z_L). The last cycle runs with gradient.
`mlp_t` swaps attention for an MLP across positions (the Sudoku recipe).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from pydantic import model_validator

from hrm.limits import MAX_LAYERS, MAX_SEQ_LEN
from hrm.models.recursive import RecursiveConfig, RecursiveInner, StepHook


class TRMConfig(RecursiveConfig):
    H_cycles: int = 3
    L_cycles: int = 6
    L_layers: int = 2
    mlp_t: bool = False
    # Positions reserved for the puzzle embedding; 0 derives them as HRM does (ceil(ndim / hidden)).
    puzzle_emb_len: int = 16
    # Halt when q_halt > 0 and learn no Q-continue (so no extra target segment in training).
    no_ACT_continue: bool = True

    def _extra_ranges(self) -> dict[str, tuple[int, int]]:
        # H_layers is not used (one network plays both roles); the reference's configs set it to 0.
        return {"puzzle_emb_len": (0, MAX_SEQ_LEN), "H_layers": (0, MAX_LAYERS)}

    def block_count(self) -> int:
        return self.L_layers

    def seq_mlp(self) -> bool:
        return self.mlp_t

    @model_validator(mode="after")
    def _check_puzzle_len(self) -> TRMConfig:
        if self.puzzle_emb_ndim == 0 and self.puzzle_emb_len > 0:
            raise ValueError(
                "puzzle_emb_len must be 0 when there is no puzzle embedding (puzzle_emb_ndim = 0)"
            )
        if self.puzzle_emb_len * self.hidden_size < self.puzzle_emb_ndim and self.puzzle_emb_len:
            raise ValueError(
                f"puzzle_emb_len {self.puzzle_emb_len} x hidden_size {self.hidden_size} cannot hold "
                f"puzzle_emb_ndim {self.puzzle_emb_ndim}"
            )
        return self

    @property
    def puzzle_positions(self) -> int:
        return self.puzzle_emb_len or super().puzzle_positions


class TRMInner(RecursiveInner):
    config: TRMConfig

    def _build(self) -> None:
        # Key name L_level as the reference, though the one network serves both roles.
        self.L_level = self.make_blocks(self.config.L_layers, seq_mlp=self.config.mlp_t)

    def _cycle(self, z_H, z_L, x, cos_sin, hook, n):
        for _ in range(self.config.L_cycles):
            z_L = self.L_level(z_L, z_H + x, cos_sin)
            if hook is not None:
                hook("L", n := n + 1, z_H, z_L)
        z_H = self.L_level(z_H, z_L, cos_sin)
        if hook is not None:
            hook("H", n := n + 1, z_H, z_L)
        return z_H, z_L, n

    def reason(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, hook: StepHook | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        cos_sin = self.cos_sin
        n = 0
        with nullcontext() if c.full_backprop else torch.no_grad():
            for _ in range(c.H_cycles - 1):
                z_H, z_L, n = self._cycle(z_H, z_L, x, cos_sin, hook, n)
        z_H, z_L, _ = self._cycle(z_H, z_L, x, cos_sin, hook, n)
        return z_H, z_L
