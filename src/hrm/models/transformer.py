"""The transformer baseline ("direct prediction" in the HRM paper) at the same parameter budget: the
reference's architecture ablation of HRM (`recursive_reasoning.transformers_baseline@Model_ACTV2`).

One segment is one pass of `H_layers` blocks over (state + input) with full gradient, no H/L split and
no inner cycles; only z_H is carried (there is no L state). With `halt_max_steps=1` it is a plain
single-pass transformer; with more, it runs inside the same ACT / deep-supervision loop as HRM, so
"hierarchy" and "outer loop" can be ablated apart. As in the reference, training halts on
Q-halt > Q-continue and learns no Q-continue target; `act_enabled=false` halts only at the last segment.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import model_validator

from hrm.limits import MAX_CYCLES, MAX_LAYERS
from hrm.models.recursive import RecursiveConfig, RecursiveInner, StepHook


class TransformerConfig(RecursiveConfig):
    # H_layers is the block count: 8 match HRM's 4 + 4 (the reference's recipe sets 8 too).
    # H_cycles, L_cycles and L_layers are not used.
    cycles_used: ClassVar[bool] = False
    H_layers: int = 8
    halt_max_steps: int = 1
    # The reference's: whether training halts on the Q head (False: every row runs halt_max_steps).
    act_enabled: bool = True
    # The reference's switch for adaptive halting in evaluation. Here how a call halts is given per
    # call (`halt="adaptive"`), so only its default, False, is accepted.
    act_inference: bool = False

    def _extra_ranges(self) -> dict[str, tuple[int, int]]:
        unused = {name: (0, MAX_CYCLES) for name in ("H_cycles", "L_cycles")}
        return {**unused, "L_layers": (0, MAX_LAYERS)}

    @model_validator(mode="after")
    def _check_act_inference(self) -> TransformerConfig:
        if self.act_inference:
            raise ValueError(
                "act_inference must be false: evaluation halts as each call asks (halt='adaptive' "
                "or 'max'; hrm eval --halt adaptive)"
            )
        return self

    def block_count(self) -> int:
        return self.H_layers


class TransformerInner(RecursiveInner):
    config: TransformerConfig
    has_L_state: ClassVar[bool] = False

    def _build(self) -> None:
        self.H_level = self.make_blocks(self.config.H_layers)

    def reason(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, hook: StepHook | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z_H = self.H_level(z_H, x, self.cos_sin)
        if hook is not None:
            hook("H", 1, z_H, z_H)
        return z_H, z_H
