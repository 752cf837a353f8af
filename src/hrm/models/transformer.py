"""The transformer baseline ("direct prediction" in the HRM paper) at the same parameter budget.

One segment is one pass of `num_layers` blocks over (state + input) with full gradient, no inner
recursion. With `halt_max_steps=1` it is a plain single-pass transformer; with more, it runs inside
the same ACT / deep-supervision loop as HRM, so "hierarchy" and "outer loop" can be ablated apart.
"""

from __future__ import annotations

import torch

from hrm.limits import MAX_CYCLES, MAX_LAYERS
from hrm.models.recursive import RecursiveConfig, RecursiveInner, StepHook


class TransformerConfig(RecursiveConfig):
    # H_cycles, L_cycles, H_layers and L_layers are not used. 8 blocks match HRM's 4 + 4.
    num_layers: int = 8
    halt_max_steps: int = 1

    def _extra_ranges(self) -> dict[str, tuple[int, int]]:
        unused = {name: (0, MAX_CYCLES) for name in ("H_cycles", "L_cycles")}
        unused.update({name: (0, MAX_LAYERS) for name in ("H_layers", "L_layers")})
        return {"num_layers": (1, MAX_LAYERS), **unused}

    def block_count(self) -> int:
        return self.num_layers


class TransformerInner(RecursiveInner):
    config: TransformerConfig

    def _build(self) -> None:
        self.H_level = self.make_blocks(self.config.num_layers)

    def reason(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, hook: StepHook | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z_H = self.H_level(z_H, x, self.cos_sin)
        if hook is not None:
            hook("H", 1, z_H, z_H)
        return z_H, z_H
