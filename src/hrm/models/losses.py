"""Token losses and the ACT loss head (the deep-supervision loss and the training metrics)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hrm.data.format import IGNORE_LABEL_ID
from hrm.models.recursive import ACTModel, Batch, Carry

LossType = Literal["stablemax_cross_entropy", "softmax_cross_entropy"]


def _stablemax_s(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + eps), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = _stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID):
    """Per-token loss with stablemax in place of softmax, in float64 (as the HRM reference; Apple's
    MPS has no float64, so there it is float32)."""
    wide = torch.float32 if logits.device.type == "mps" else torch.float64
    logprobs = log_stablemax(logits.to(wide), dim=-1)
    valid = labels != ignore_index
    picked = torch.gather(logprobs, -1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID):
    flat = logits.to(torch.float32).reshape(-1, logits.shape[-1])
    loss = F.cross_entropy(flat, labels.long().reshape(-1), ignore_index=ignore_index, reduction="none")
    return loss.view(labels.shape)


LOSSES = {"stablemax_cross_entropy": stablemax_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy}


class ACTLossHead(nn.Module):
    """Wraps an ACTModel: one call = one segment for every row, returning loss and metrics.

    The loss is summed over rows (each row's token loss averaged over its labelled positions), plus
    half the Q losses; the trainer divides by the global batch size. Metrics are sums over rows that
    halted this call and have at least one label.
    """

    def __init__(self, model: ACTModel, loss_type: LossType = "stablemax_cross_entropy"):
        super().__init__()
        if loss_type not in LOSSES:
            raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {sorted(LOSSES)}")
        self.model = model
        self.loss_type = loss_type
        self.loss_fn = LOSSES[loss_type]

    def initial_carry(self, batch: Batch) -> Carry:
        return self.model.initial_carry(batch)

    def forward(self, carry: Carry, batch: Batch, hook=None):
        carry, outputs = self.model(carry, batch, hook)
        labels = carry.current_data["labels"]
        logits = outputs["logits"]
        with torch.no_grad():
            mask = labels != IGNORE_LABEL_ID
            counts = mask.sum(-1)
            divisor = counts.clamp_min(1).unsqueeze(-1)
            correct = mask & (logits.argmax(-1) == labels)
            seq_correct = correct.sum(-1) == counts
            valid = carry.halted & (counts > 0)
            metrics = {
                "count": valid.sum(),
                "accuracy": torch.where(valid, (correct.float() / divisor).sum(-1), 0).sum(),
                "exact_accuracy": (valid & seq_correct).sum(),
                "q_halt_accuracy": (valid & ((outputs["q_halt_logits"] >= 0) == seq_correct)).sum(),
                "steps": torch.where(valid, carry.steps, 0).sum(),
            }
        lm_loss = (self.loss_fn(logits, labels, IGNORE_LABEL_ID) / divisor).sum()
        q_halt = outputs["q_halt_logits"]
        q_halt_loss = F.binary_cross_entropy_with_logits(
            q_halt, seq_correct.to(q_halt.dtype), reduction="sum"
        )
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        loss = lm_loss + 0.5 * q_halt_loss
        if "target_q_continue" in outputs:
            q_continue_loss = F.binary_cross_entropy_with_logits(
                outputs["q_continue_logits"], outputs["target_q_continue"], reduction="sum"
            )
            metrics["q_continue_loss"] = q_continue_loss.detach()
            loss = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
        outputs["preds"] = logits.detach().argmax(-1)
        return carry, loss, metrics, outputs, carry.halted.all()
