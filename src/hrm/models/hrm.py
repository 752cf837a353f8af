"""The Hierarchical Reasoning Model: a slow planner H and a fast doer L.

Within a segment L takes `L_cycles` steps for each of H's `H_cycles` steps, every L step seeing
H's state plus the input, every H step seeing L's result. Only the last L step and the last H step
carry gradient (the one-step gradient: memory does not grow with the number of cycles).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from hrm.models.recursive import RecursiveConfig, RecursiveInner, StepHook


class HRMConfig(RecursiveConfig):
    pass


class HRMInner(RecursiveInner):
    config: HRMConfig

    def _build(self) -> None:
        self.H_level = self.make_blocks(self.config.H_layers)
        self.L_level = self.make_blocks(self.config.L_layers)

    def reason(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, hook: StepHook | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        cos_sin = self.cos_sin
        n = 0
        with nullcontext() if c.full_backprop else torch.no_grad():
            for i in range(c.H_cycles):
                for j in range(c.L_cycles):
                    if i == c.H_cycles - 1 and j == c.L_cycles - 1:
                        break  # the last L step is taken below, with gradient
                    z_L = self.L_level(z_L, z_H + x, cos_sin)
                    if hook is not None:
                        hook("L", n := n + 1, z_H, z_L)
                if i != c.H_cycles - 1:
                    z_H = self.H_level(z_H, z_L, cos_sin)
                    if hook is not None:
                        hook("H", n := n + 1, z_H, z_L)
        z_L = self.L_level(z_L, z_H + x, cos_sin)
        if hook is not None:
            hook("L", n := n + 1, z_H, z_L)
        z_H = self.H_level(z_H, z_L, cos_sin)
        if hook is not None:
            hook("H", n + 1, z_H, z_L)
        return z_H, z_L
