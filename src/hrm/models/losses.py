"""Token losses and the ACT loss head (the deep-supervision loss and the training metrics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from hrm.data.format import IGNORE_LABEL_ID
from hrm.models.recursive import ACTModel, Batch, Carry, ExplorationDraw, HaltMode, StepHook

LossType = Literal["stablemax_cross_entropy", "softmax_cross_entropy"]


def _stablemax_s(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + eps), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = _stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_logprobs(logits: torch.Tensor) -> torch.Tensor:
    """Token log-probabilities under stablemax, in float64 (as the HRM reference; Apple's MPS has no
    float64, so there it is float32)."""
    wide = torch.float32 if logits.device.type == "mps" else torch.float64
    return log_stablemax(logits.to(wide), dim=-1)


def softmax_logprobs(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.to(torch.float32), dim=-1)


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID):
    """Per-token loss with stablemax in place of softmax (see `stablemax_logprobs`)."""
    logprobs = stablemax_logprobs(logits)
    valid = labels != ignore_index
    picked = torch.gather(logprobs, -1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID):
    flat = logits.to(torch.float32).reshape(-1, logits.shape[-1])
    loss = F.cross_entropy(flat, labels.long().reshape(-1), ignore_index=ignore_index, reduction="none")
    return loss.view(labels.shape)


LOSSES = {"stablemax_cross_entropy": stablemax_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy}
# The token log-probabilities each loss is the negative of, at the label.
LOGPROBS = {"stablemax_cross_entropy": stablemax_logprobs, "softmax_cross_entropy": softmax_logprobs}
# Training labels chosen from the model's log-probabilities: (inputs, labels, logprobs) -> labels.
AnswerLabels = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def as_loss_type(value: object) -> LossType:
    """`value` as a loss name; ValueError when it names none of `LOSSES`."""
    if not isinstance(value, str) or value not in LOSSES:
        raise ValueError(f"unknown loss_type {value!r}; expected one of {', '.join(LOSSES)}")
    return cast(LossType, value)


def act_metrics(
    labels: torch.Tensor, preds: torch.Tensor, q_halt: torch.Tensor, steps: torch.Tensor, rows: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The ACT metrics as sums over `rows` (a [B] bool mask) that have at least one label: `count`,
    token `accuracy` (each row's share of its labelled positions right), `exact_accuracy` (every
    labelled position right), `q_halt_accuracy` (Q-halt >= 0 exactly when the row is right; a
    non-finite Q-halt never counts) and
    `steps` (segments run)."""
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    correct = mask & (preds == labels)
    seq_correct = correct.sum(-1) == counts
    valid = rows & (counts > 0)
    return {
        "count": valid.sum(),
        "accuracy": torch.where(valid, correct.sum(-1) / counts.clamp_min(1), 0).sum(),
        "exact_accuracy": (valid & seq_correct).sum(),
        # A NaN halting logit says nothing: it is never counted as agreeing.
        "q_halt_accuracy": (valid & torch.isfinite(q_halt) & ((q_halt >= 0) == seq_correct)).sum(),
        "steps": torch.where(valid, steps, 0).sum(),
    }


@dataclass
class ACTStep:
    """What one call of `ACTLossHead` gives: the new carry, the summed loss, the metrics (sums over
    the rows that halted in this call, see `act_metrics`, plus the detached losses), the model's
    outputs (with `preds`, the argmax tokens) and whether every row has halted."""

    carry: Carry
    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    outputs: Batch
    all_halted: torch.Tensor


class ACTLossHead(nn.Module):
    """Wraps an ACTModel: one call = one segment for every row, returning loss and metrics.

    The loss is summed over rows (each row's token loss averaged over its labelled positions), plus
    half the Q losses; the trainer divides by the global batch size. Metrics are sums over rows that
    halted this call and have at least one label. Keyword arguments pass through to `ACTModel`.

    With `answer_labels` (for puzzles with several right answers, `Task.closest_answer_labels`),
    each segment's labels are the right answer its own log-probabilities make most likely, so the
    loss, the exact accuracy and the Q-halt target all count any right answer as right.
    """

    def __init__(
        self,
        model: ACTModel,
        loss_type: LossType = "stablemax_cross_entropy",
        answer_labels: AnswerLabels | None = None,
    ):
        super().__init__()
        self.model = model
        self.loss_type = as_loss_type(loss_type)
        self.loss_fn = LOSSES[loss_type]
        self.answer_labels = answer_labels

    def initial_carry(self, batch: Batch) -> Carry:
        return self.model.initial_carry(batch)

    def scored_labels(self, inputs: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The labels a segment's loss and metrics score against: the dataset's, or with
        `answer_labels` the right answer these logits make most likely."""
        if self.answer_labels is None:
            return labels
        with torch.no_grad():
            return self.answer_labels(inputs, labels, LOGPROBS[self.loss_type](logits.detach()))

    def losses(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        q_halt: torch.Tensor,
        preds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(token loss, Q-halt loss), each summed over rows: a row's token loss is averaged over its
        labelled positions; Q-halt learns whether the row's answer is exactly right."""
        with torch.no_grad():
            preds = logits.argmax(-1) if preds is None else preds
            mask = labels != IGNORE_LABEL_ID
            counts = mask.sum(-1)
            seq_correct = (mask & (preds == labels)).sum(-1) == counts
        lm_loss = (self.loss_fn(logits, labels, IGNORE_LABEL_ID) / counts.clamp_min(1).unsqueeze(-1)).sum()
        q_halt_loss = F.binary_cross_entropy_with_logits(
            q_halt, seq_correct.to(q_halt.dtype), reduction="sum"
        )
        return lm_loss, q_halt_loss

    def forward(
        self,
        carry: Carry,
        batch: Batch,
        hook: StepHook | None = None,
        *,
        halt: HaltMode = "max",
        max_segments: int | None = None,
        exploration: ExplorationDraw | None = None,
        rows_per_slice: int | None = None,
    ) -> ACTStep:
        carry, outputs = self.model(
            carry,
            batch,
            hook,
            halt=halt,
            max_segments=max_segments,
            exploration=exploration,
            rows_per_slice=rows_per_slice,
        )
        logits = outputs["logits"]
        labels = self.scored_labels(carry.current_data["inputs"], carry.current_data["labels"], logits)
        q_halt = outputs["q_halt_logits"]
        with torch.no_grad():
            preds = logits.detach().argmax(-1)
            metrics = act_metrics(labels, preds, q_halt, carry.steps, carry.halted)
        lm_loss, q_halt_loss = self.losses(logits, labels, q_halt, preds)
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        loss = lm_loss + 0.5 * q_halt_loss
        if "target_q_continue" in outputs:
            q_continue_loss = F.binary_cross_entropy_with_logits(
                outputs["q_continue_logits"], outputs["target_q_continue"], reduction="sum"
            )
            metrics["q_continue_loss"] = q_continue_loss.detach()
            loss = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
        outputs["preds"] = preds
        return ACTStep(carry, loss, metrics, outputs, carry.halted.all())
