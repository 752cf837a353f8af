"""The one loop that runs a batch through its segments until every row has halted.

Evaluation, solving, tracing and the benchmarks all call `run_until_halted`. A row that halts is
frozen: it leaves the batch and keeps the answer of that segment (its logits, tokens, Q values and
segment count). With `halt="max"` every row runs `max_segments` segments, as the reference evaluates;
with `halt="adaptive"` the Q head stops each row as soon as it says so, by `halt_margin` more than
the reference rule asks (0: the reference rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from hrm.errors import HRMError
from hrm.limits import MAX_HALT_MARGIN, MAX_SEGMENTS
from hrm.models import HALT_MODES, ACTModel, Carry, HaltMode, StepHook, cpu_rows_per_slice

Batch = dict[str, torch.Tensor]


class SegmentObserver(Protocol):
    """Sees every segment of a run (the trace recorder is one): `begin` before a segment with the
    carry it starts from and the batch rows still running (indices into the original batch), `hook`
    at every inner update, `end` after it with the model's outputs and which of those rows halted."""

    def begin(self, carry: Carry, active: torch.Tensor) -> None: ...

    def hook(self, kind: str, index: int, z_H: torch.Tensor, z_L: torch.Tensor) -> None: ...

    def end(self, outputs: Batch, halted: torch.Tensor) -> None: ...


@dataclass
class Halted:
    """Per row of the batch, what the model gave at the segment where the row halted."""

    logits: torch.Tensor  # [B, S, V]
    preds: torch.Tensor  # [B, S] argmax tokens
    q_halt: torch.Tensor  # [B] float32
    q_continue: torch.Tensor  # [B] float32
    steps: torch.Tensor  # [B] segments run


def check_run_options(halt: str, max_segments: int | None, halt_margin: float = 0.0) -> None:
    """HRMError for a halting mode, segment count or halting margin the runner cannot take."""
    if halt not in HALT_MODES:
        raise HRMError(f"halt must be one of {', '.join(HALT_MODES)}, got {halt!r}")
    if max_segments is not None and (
        not isinstance(max_segments, int)
        or isinstance(max_segments, bool)
        or not 1 <= max_segments <= MAX_SEGMENTS
    ):
        raise HRMError(f"segments must be a whole number in 1..{MAX_SEGMENTS}, got {max_segments!r}")
    check_halt_margin(halt_margin)


def check_halt_margin(halt_margin: object) -> None:
    """HRMError unless `halt_margin` is a finite number within MAX_HALT_MARGIN of 0."""
    if (
        not isinstance(halt_margin, (int, float))
        or isinstance(halt_margin, bool)
        or not math.isfinite(halt_margin)
        or abs(halt_margin) > MAX_HALT_MARGIN
    ):
        raise HRMError(
            f"halt margin must be a number in -{MAX_HALT_MARGIN:g}..{MAX_HALT_MARGIN:g}, got {halt_margin!r}"
        )


@torch.no_grad()
def run_until_halted(
    model: ACTModel,
    batch: Batch,
    *,
    halt: HaltMode = "max",
    max_segments: int | None = None,
    on_segment: SegmentObserver | None = None,
    halt_margin: float = 0.0,
) -> Halted:
    """Run `batch` ({"inputs", "puzzle_identifiers"}, and optionally "labels") through the model in
    evaluation mode until every row halted, at most `max_segments` segments (None: the model's
    `halt_max_steps`). On a CPU the rows are reasoned over in cache-sized slices (same numbers)."""
    check_run_options(halt, max_segments, halt_margin)
    limit = model.config.halt_max_steps if max_segments is None else max_segments
    was_training = model.training
    model.eval()
    try:
        carry = model.initial_carry(batch)
        size = batch["inputs"].shape[0]
        device = batch["inputs"].device
        active = torch.arange(size, device=device)
        result: Halted | None = None
        hook: StepHook | None = on_segment.hook if on_segment is not None else None
        for _ in range(limit):
            if on_segment is not None:
                on_segment.begin(carry, active)
            slices = cpu_rows_per_slice(model.config, active.numel(), device)
            carry, out = model(
                carry,
                batch,
                hook,
                halt=halt,
                max_segments=limit,
                rows_per_slice=slices,
                halt_margin=float(halt_margin),
            )
            halted = carry.halted
            if on_segment is not None:
                on_segment.end(out, halted)
            if result is None:
                result = Halted(
                    logits=torch.empty(
                        (size, *out["logits"].shape[1:]), dtype=out["logits"].dtype, device=device
                    ),
                    preds=torch.empty((size, out["logits"].shape[1]), dtype=torch.long, device=device),
                    q_halt=torch.empty(size, dtype=torch.float32, device=device),
                    q_continue=torch.empty(size, dtype=torch.float32, device=device),
                    steps=torch.empty(size, dtype=carry.steps.dtype, device=device),
                )
            rows = active[halted]
            if rows.numel():
                logits = out["logits"][halted]
                result.logits[rows] = logits
                result.preds[rows] = logits.argmax(-1)
                result.q_halt[rows] = out["q_halt_logits"][halted].float()
                result.q_continue[rows] = out["q_continue_logits"][halted].float()
                result.steps[rows] = carry.steps[halted]
            if bool(halted.all()):
                break
            keep = ~halted
            active = active[keep]
            # The rows still running go on with their state; none restarts on a new puzzle.
            carry = Carry(
                z_H=carry.z_H[keep],
                z_L=carry.z_L[keep],
                steps=carry.steps[keep],
                halted=torch.zeros_like(carry.steps[keep], dtype=torch.bool),
                current_data={k: v[keep] for k, v in carry.current_data.items()},
            )
            batch = {k: v[keep] for k, v in batch.items()}
        assert result is not None
        return result
    finally:
        model.train(was_training)
