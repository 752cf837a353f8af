"""Optimisers and learning-rate schedule used to train HRM / TRM.

* :class:`AdamAtan2` -- Adam with ``atan2`` in place of ``m / (sqrt(v) + eps)`` and decoupled weight
  decay, for the dense parameters. Same maths and state keys (``step``, ``exp_avg``, ``exp_avg_sq``)
  as the CUDA-only ``adam-atan2`` package the reference uses, but built from ``torch._foreach_*`` ops
  so it runs on any device.
* :class:`SparseEmbeddingSignSGD` -- sign-SGD for the puzzle-embedding table: only the rows looked up
  in this batch (on any rank) are touched, so the update costs O(batch), not O(num_puzzles).
* :func:`cosine_schedule_with_warmup_lr` and :func:`total_training_steps` -- the reference schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "AdamAtan2",
    "SparseEmbeddingSignSGD",
    "cosine_schedule_with_warmup_lr",
    "sparse_sign_sgd_update_",
    "total_training_steps",
]

_FOREACH_OPS = ("_foreach_mul_", "_foreach_lerp_", "_foreach_mul", "_foreach_sqrt", "_foreach_div_")


def _foreach_supported() -> bool:
    return all(hasattr(torch, name) for name in _FOREACH_OPS)


def _check_lr(lr: float | Tensor) -> None:
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"a tensor learning rate must hold one value, got shape {tuple(lr.shape)}")
        # Reading a CUDA value would synchronise; the check is only worth it where it is free.
        if lr.device.type == "cpu" and float(lr) < 0.0:
            raise ValueError(f"learning rate must be >= 0, got {float(lr)}")
    elif lr < 0.0:
        raise ValueError(f"learning rate must be >= 0, got {lr}")


class AdamAtan2(torch.optim.Optimizer):
    """Adam-atan2 with decoupled weight decay (no epsilon), per element::

        p *= 1 - lr * wd
        m = lerp(m, g, 1 - b1)
        v = lerp(v, g * g, 1 - b2)
        p -= lr / (1 - b1**t) * atan2(m, sqrt(v) / sqrt(1 - b2**t))

    ``t`` counts the steps this parameter has taken (parameters whose ``grad`` is ``None`` are
    skipped: no decay, no moment update, no step). ``group["lr"]`` may be a float or a one-element
    tensor and may be changed between steps. ``foreach=None`` uses the vectorised ``torch._foreach_*``
    path when this torch has it; ``foreach=False`` forces a per-tensor loop.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
    ) -> None:
        _check_lr(lr)
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        defaults = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay, "foreach": foreach}
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)

    @staticmethod
    def _cpu_step(state: dict[str, Any]) -> Tensor:
        # Kept as a CPU float32 scalar so bias corrections are plain Python floats with no device
        # sync. State saved by the CUDA `adam-atan2` package keeps it on the GPU (or older code as a
        # number): normalise once, on first use after loading.
        step = state["step"]
        if not isinstance(step, Tensor) or step.device.type != "cpu" or step.dtype != torch.float32:
            step = torch.as_tensor(float(step), dtype=torch.float32)
            state["step"] = step
        return step

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            buckets: dict[tuple[torch.device, torch.dtype], list[list[Any]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamAtan2 does not support sparse gradients")
                if torch.is_complex(p):
                    raise RuntimeError("AdamAtan2 does not support complex parameters (atan2 is real)")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                step = self._cpu_step(state)
                step += 1
                bucket = buckets.setdefault((p.device, p.dtype), [[], [], [], [], []])
                for lst, item in zip(bucket, (p, p.grad, state["exp_avg"], state["exp_avg_sq"], step.item())):
                    lst.append(item)

            use_foreach = group["foreach"]
            if use_foreach is None:
                use_foreach = _foreach_supported()
            update = _adam_atan2_foreach if use_foreach else _adam_atan2_loop
            for (device, _dtype), (params, grads, exp_avgs, exp_avg_sqs, steps) in buckets.items():
                update(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    steps,
                    lr=group["lr"],
                    betas=group["betas"],
                    weight_decay=group["weight_decay"],
                    device=device,
                )
        return loss


def _adam_atan2_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[float],
    *,
    lr: float | Tensor,
    betas: tuple[float, float],
    weight_decay: float,
    device: torch.device,
) -> None:
    beta1, beta2 = betas
    if isinstance(lr, Tensor):
        lr = lr.to(device=device).reshape(())
    if weight_decay != 0.0:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)

    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    grad_sq = torch._foreach_mul(grads, grads)
    torch._foreach_lerp_(exp_avg_sqs, grad_sq, 1.0 - beta2)
    del grad_sq

    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [math.sqrt(1.0 - beta2**t) for t in steps])
    # There is no _foreach_atan2; one elementwise kernel per tensor, written in place.
    for m, d in zip(exp_avgs, denom):
        torch.atan2(m, d, out=d)
    if isinstance(lr, Tensor):
        torch._foreach_mul_(denom, [-1.0 / (1.0 - beta1**t) for t in steps])
        torch._foreach_mul_(denom, lr)
    else:
        torch._foreach_mul_(denom, [-lr / (1.0 - beta1**t) for t in steps])
    torch._foreach_add_(params, denom)


def _adam_atan2_loop(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[float],
    *,
    lr: float | Tensor,
    betas: tuple[float, float],
    weight_decay: float,
    device: torch.device,
) -> None:
    beta1, beta2 = betas
    if isinstance(lr, Tensor):
        lr = lr.to(device=device).reshape(())
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        if weight_decay != 0.0:
            p.mul_(1.0 - lr * weight_decay)
        m.lerp_(g, 1.0 - beta1)
        v.lerp_(g * g, 1.0 - beta2)
        update = torch.atan2(m, v.sqrt().div_(math.sqrt(1.0 - beta2**t)))
        if isinstance(lr, Tensor):
            p.sub_(update.mul_(1.0 / (1.0 - beta1**t)).mul_(lr))
        else:
            p.add_(update, alpha=-lr / (1.0 - beta1**t))


class SparseEmbeddingSignSGD(torch.optim.Optimizer):
    """Sign-SGD with decoupled weight decay for a sparsely updated embedding table.

    ``embedding`` is any object with ``weights`` (the ``[num_ids, D]`` table, no grad),
    ``local_weights`` (the ``[B, D]`` leaf the looked-up rows were copied into, which receives the
    gradient) and ``local_ids`` (the ``[B]`` ids of this batch). The attributes are read at every
    step, so the model may replace them (e.g. after ``.to(device)`` or with a new batch size).

    Each step gathers gradients and ids from all ranks (when ``torch.distributed`` is initialised and
    the world is larger than one) so every rank applies the same update, sums the gradients per
    unique id, and updates only those rows::

        w[id] = w[id] * (1 - lr * wd) - lr * sign(g[id])
    """

    def __init__(
        self,
        embedding: Any,
        lr: float | Tensor = 1e-2,
        weight_decay: float = 0.0,
        world_size: int | None = None,
        *,
        group: Any = None,
    ) -> None:
        for name in ("weights", "local_weights", "local_ids"):
            if not hasattr(embedding, name):
                raise TypeError(f"the embedding given to SparseEmbeddingSignSGD has no `{name}` attribute")
        _check_lr(lr)
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        # The table is the optimised "parameter" so that state_dict/param_groups behave as usual;
        # the live tensors are always taken from `embedding`.
        super().__init__([embedding.weights], {"lr": lr, "weight_decay": weight_decay})
        self.embedding = embedding
        self.world_size = world_size
        self.process_group = group

    def _world_size(self) -> int:
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        if self.world_size is not None:
            return self.world_size
        return dist.get_world_size(self.process_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        local = self.embedding.local_weights
        if local.grad is not None:
            if set_to_none:
                local.grad = None
            else:
                local.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        grad = self.embedding.local_weights.grad
        if grad is None:
            return loss
        ids = self.embedding.local_ids
        if ids.shape[0] != grad.shape[0]:
            raise RuntimeError(
                f"local_ids has {ids.shape[0]} entries but local_weights.grad has {grad.shape[0]} rows"
            )
        if self._world_size() > 1:
            grad, ids = self._all_gather(grad, ids)

        group = self.param_groups[0]
        sparse_sign_sgd_update_(
            self.embedding.weights, grad, ids, lr=group["lr"], weight_decay=group["weight_decay"]
        )
        return loss

    def _all_gather(self, grad: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
        # Ranks may hold batches of different sizes (a short last batch): share sizes first, then
        # gather padded buffers and trim. all_gather (not all_gather_into_tensor) works on gloo too.
        pg = self.process_group
        world = dist.get_world_size(pg)
        size = torch.tensor([grad.shape[0]], dtype=torch.int64, device=grad.device)
        sizes = [torch.empty_like(size) for _ in range(world)]
        dist.all_gather(sizes, size, group=pg)
        counts = [int(s.item()) for s in sizes]
        max_rows = max(counts)

        grad = grad.contiguous()
        ids = ids.to(grad.device).contiguous()
        if grad.shape[0] < max_rows:
            pad = max_rows - grad.shape[0]
            grad = torch.cat([grad, grad.new_zeros((pad, *grad.shape[1:]))])
            ids = torch.cat([ids, ids.new_zeros(pad)])
        grads = [torch.empty_like(grad) for _ in range(world)]
        all_ids = [torch.empty_like(ids) for _ in range(world)]
        dist.all_gather(grads, grad, group=pg)
        dist.all_gather(all_ids, ids, group=pg)
        return (
            torch.cat([g[:n] for g, n in zip(grads, counts)]),
            torch.cat([i[:n] for i, n in zip(all_ids, counts)]),
        )


@torch.no_grad()
def sparse_sign_sgd_update_(
    weights: Tensor, grad: Tensor, ids: Tensor, *, lr: float | Tensor, weight_decay: float
) -> None:
    """In place: ``w[u] = w[u] * (1 - lr*wd) - lr * sign(sum of grad rows with id u)`` for each id ``u``."""
    ids = ids.to(device=weights.device, dtype=torch.long)
    grad = grad.to(weights.device)
    unique_ids, inverse = torch.unique(ids, return_inverse=True)
    summed = grad.new_zeros((unique_ids.shape[0], *grad.shape[1:]))
    summed.index_add_(0, inverse, grad)

    if isinstance(lr, Tensor):
        lr = lr.to(weights.device).reshape(())
    rows = weights.index_select(0, unique_ids)
    rows.mul_(1.0 - lr * weight_decay)
    rows.sub_(torch.sign(summed).to(rows.dtype) * lr)
    weights.index_copy_(0, unique_ids, rows)


def cosine_schedule_with_warmup_lr(
    current_step: int,
    base_lr: float,
    num_warmup_steps: int,
    num_training_steps: int,
    min_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> float:
    """Linear warm-up from 0 to ``base_lr``, then cosine down to ``base_lr * min_ratio``.

    The reference formula; progress is clamped to ``[0, 1]`` so steps past ``num_training_steps``
    (e.g. from the integer rounding of the step count) hold the final value rather than climbing
    back up the cosine.
    """
    if current_step < num_warmup_steps:
        return base_lr * current_step / max(1, num_warmup_steps)
    progress = (current_step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    cosine = (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress))
    return base_lr * (min_ratio + max(0.0, cosine))


def total_training_steps(
    epochs: int | float, total_groups: int, mean_puzzle_examples: float, global_batch_size: int
) -> int:
    """Optimiser steps in a run: ``int(epochs * total_groups * mean_puzzle_examples / global_batch_size)``."""
    if global_batch_size <= 0:
        raise ValueError(f"global_batch_size must be positive, got {global_batch_size}")
    return int(epochs * total_groups * mean_puzzle_examples / global_batch_size)
