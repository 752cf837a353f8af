"""Exponential moving average of the weights (TRM's recipe), and evaluating with it: `ema_weights`
swaps the averaged weights into the model for a block and puts the live ones back afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch


class EMA:
    """Exponential moving average of the trainable parameters."""

    def __init__(self, model: torch.nn.Module, rate: float):
        self.rate = rate
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        params = dict(model.named_parameters())
        names = list(self.shadow)
        torch._foreach_lerp_(
            [self.shadow[n] for n in names], [params[n].detach() for n in names], 1 - self.rate
        )

    def full_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with EMA values in place of the parameters (`ema.safetensors`)."""
        state = dict(model.state_dict())
        state.update(self.shadow)
        return state

    @torch.no_grad()
    def load_shadow(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take the averages from a saved `full_state` (its buffers are the model's, not averaged)."""
        for name in self.shadow:
            self.shadow[name].copy_(state[name])


@contextmanager
def ema_weights(model: torch.nn.Module, ema: EMA | None) -> Iterator[None]:
    """Inside the block the model holds the EMA weights; afterwards the live weights again, exactly
    (copied back from a saved copy, not recomputed). Without an EMA the model is left as it is."""
    if ema is None:
        yield
        return
    params = dict(model.named_parameters())
    live = {n: params[n].detach().clone() for n in ema.shadow}
    with torch.no_grad():
        for n, average in ema.shadow.items():
            params[n].copy_(average)
    try:
        yield
    finally:
        with torch.no_grad():
            for n, saved in live.items():
                params[n].copy_(saved)
