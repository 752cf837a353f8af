"""Everything a run is built from its config: the training data, the model in its loss head (fresh or
`init_from` trained weights), the optimisers with their learning-rate schedule, the run length and
the steps at which the loop logs, evaluates and checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hrm import distributed
from hrm.checkpoint import ModelCard, load_model
from hrm.config import TrainConfig
from hrm.data.dataset import PuzzleDataset
from hrm.data.format import load_metadata
from hrm.errors import ConfigError, HRMError
from hrm.models import ACTLossHead, ACTModel, build_model, load_weights
from hrm.optim import (
    AdamAtan2,
    SparseEmbeddingSignSGD,
    cosine_schedule_with_warmup_lr,
    total_training_steps,
)
from hrm.training.state import seed_all

# Entries of the shuffled group order drawn up front for one data iteration (8 bytes each).
ORDER_CAP = 1 << 24


@dataclass(frozen=True)
class ScheduledOptimizer:
    """An optimiser and the learning rate its schedule scales (each optimiser has its own)."""

    optimizer: torch.optim.Optimizer
    base_lr: float


@dataclass(frozen=True)
class LRSchedule:
    """Linear warm-up, then cosine decay to `min_ratio` of the base rate at `total_steps`."""

    warmup_steps: int
    total_steps: int
    min_ratio: float

    def apply(self, optimizers: list[ScheduledOptimizer], step_index: int) -> float:
        """Set every optimiser's rate for step `step_index` (0-based); returns the dense weights'
        rate (the last optimiser's), the one the metrics log."""
        lr = 0.0
        for entry in optimizers:
            lr = cosine_schedule_with_warmup_lr(
                step_index, entry.base_lr, self.warmup_steps, self.total_steps, min_ratio=self.min_ratio
            )
            for group in entry.optimizer.param_groups:
                group["lr"] = lr
        return lr


@dataclass
class Training:
    """A run's parts, ready to step. `total_steps` is the run's length (capped by `max_steps`),
    `epoch_steps` the length `epochs` alone would give (the evaluation interval is a share of it)."""

    train_data: PuzzleDataset  # the training split, this process's rows
    head: ACTLossHead
    card: ModelCard
    optimizers: list[ScheduledOptimizer]
    schedule: LRSchedule
    total_steps: int
    epoch_steps: int

    @property
    def model(self) -> ACTModel:
        return self.head.model

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.head.parameters() if p.requires_grad]


@dataclass(frozen=True)
class Intervals:
    """At which steps the loop logs, evaluates and checkpoints. A checkpoint step also logs, so a
    resumed run's metric windows start where the uninterrupted run's did; the last step does all."""

    log: int
    evaluate: int
    checkpoint: int
    total: int

    @classmethod
    def for_run(cls, cfg: TrainConfig, training: Training) -> Intervals:
        total = training.total_steps
        if cfg.eval_interval is None:
            evaluate = total
        else:
            evaluate = max(1, min(total, round(training.epoch_steps * cfg.eval_interval / cfg.epochs)))
        return cls(cfg.log_interval, evaluate, cfg.checkpoint_interval or evaluate, total)

    def logs(self, step: int) -> bool:
        return step % self.log == 0 or self.saves(step)

    def evaluates(self, step: int) -> bool:
        return step % self.evaluate == 0 or step == self.total

    def saves(self, step: int) -> bool:
        return step % self.checkpoint == 0 or step == self.total

    def ending_at(self, step: int) -> Intervals:
        """The same intervals for a run cut short at `step` (`max_minutes`): that step is the last."""
        return replace(self, total=min(self.total, step))


class Deadline:
    """`max_minutes` of training in this process, counted from its creation. Checked at the steps
    the loop logs at, so the clock costs nothing in between; every process takes the verdict of the
    first to run out, so all of them stop at the same step."""

    def __init__(self, minutes: float | None, info: distributed.DistInfo):
        self.seconds = None if minutes is None else minutes * 60.0
        self.info = info
        self.start = time.monotonic()

    def reached(self) -> bool:
        if self.seconds is None:
            return False
        late = float(time.monotonic() - self.start >= self.seconds)
        if self.info.enabled:
            flag = distributed.reduce_sum(torch.tensor([late], device=self.info.device), self.info)
            late = float(flag.item())
        return late > 0


def epochs_per_iteration(cfg: TrainConfig, total_groups: int, total_steps: int) -> int:
    """Epochs shuffled into one data iteration: the eval interval, as the reference. The reference draws
    that many permutations up front, which for a long interval (or none, with ``max_steps``) is
    gigabytes of indices the run never reaches; beyond ``ORDER_CAP`` entries it is cut to the epochs
    ``total_steps`` can consume (a batch takes at most ``global_batch_size`` groups), and never to more
    than ``ORDER_CAP`` entries (the run then takes several iterations)."""
    epochs = max(1, min(cfg.eval_interval or cfg.epochs, cfg.epochs))
    if epochs * total_groups > ORDER_CAP:
        reach = -(-total_steps * cfg.global_batch_size // max(total_groups, 1)) + 1
        epochs = max(1, min(epochs, reach, ORDER_CAP // max(total_groups, 1)))
    return epochs


def examples_per_epoch(total_groups: int, mean_puzzle_examples: float) -> int:
    """The examples one epoch of a training split supplies: one puzzle of every group, with its examples."""
    return int(total_groups * mean_puzzle_examples)


def build_training(cfg: TrainConfig, info: distributed.DistInfo) -> Training:
    """Datasets, model, loss head, optimisers and schedule length for a config. Every process builds
    the same initial weights (seeded, then broadcast from the main process)."""
    if cfg.global_batch_size % info.world_size:
        raise ConfigError(
            f"global_batch_size {cfg.global_batch_size} is not divisible by the {info.world_size} processes"
        )
    data_path = Path(cfg.data_path)
    if not (data_path / "train" / "dataset.json").exists():
        raise ConfigError(f"data_path {data_path} is not a dataset directory (no train/dataset.json)")
    meta = load_metadata(data_path, "train")
    supply = examples_per_epoch(meta.total_groups, meta.mean_puzzle_examples)
    if cfg.global_batch_size > supply:
        raise ConfigError(
            f"global_batch_size {cfg.global_batch_size:,} is larger than the training split of {data_path} "
            f"supplies in an epoch: {supply:,} examples ({meta.total_groups:,} groups x "
            f"{meta.mean_puzzle_examples:g} examples per puzzle); lower it to {supply:,} or less"
        )
    check_eval_data(cfg, meta.seq_len, meta.vocab_size)
    epoch_steps = total_training_steps(
        cfg.epochs, meta.total_groups, meta.mean_puzzle_examples, cfg.global_batch_size
    )
    total = epoch_steps if cfg.max_steps is None else min(epoch_steps, cfg.max_steps)
    if total < 1:
        raise ConfigError("the run would take no step: raise epochs or lower global_batch_size")
    train_data = PuzzleDataset(
        {
            "seed": cfg.seed,
            "dataset_path": str(data_path),
            "global_batch_size": cfg.global_batch_size,
            "test_set_mode": False,
            "epochs_per_iter": epochs_per_iteration(cfg, meta.total_groups, total),
            "rank": info.rank,
            "num_replicas": info.world_size,
        },
        split="train",
    )
    arch = cfg.arch_fields()
    arch.update(
        batch_size=cfg.global_batch_size // info.world_size,
        seq_len=meta.seq_len,
        vocab_size=meta.vocab_size,
        num_puzzle_identifiers=meta.num_puzzle_identifiers,
    )
    seed_all(cfg.seed)
    model = build_model(cfg.model_name, arch)
    if cfg.init_from:
        init_from(model, cfg.model_name, cfg.init_from)
    card = ModelCard(cfg.model_name, model.config.model_dump(mode="json"), cfg.loss_type)
    from hrm.tasks import answer_labels_for

    answer_labels = answer_labels_for(
        cfg.targets,
        meta.seq_len,
        meta.vocab_size,
        str(cfg.data_path),
        "targets=closest_answer (use targets=label)",
    )
    head = ACTLossHead(model, cfg.loss_type, answer_labels).to(info.device)
    distributed.broadcast_module(head, info)
    optimizers = [
        ScheduledOptimizer(
            AdamAtan2(
                [p for p in head.parameters() if p.requires_grad],
                lr=cfg.lr,
                betas=(cfg.beta1, cfg.beta2),
                weight_decay=cfg.weight_decay,
            ),
            cfg.lr,
        )
    ]
    if hasattr(model.inner, "puzzle_emb"):
        # The puzzle embedding is a buffer with its own sparse update (only the rows a batch used).
        sparse = SparseEmbeddingSignSGD(
            model.inner.puzzle_emb,
            lr=cfg.puzzle_emb_lr,
            weight_decay=cfg.puzzle_emb_weight_decay,
            world_size=info.world_size,
        )
        optimizers.insert(0, ScheduledOptimizer(sparse, cfg.puzzle_emb_lr))
    schedule = LRSchedule(cfg.lr_warmup_steps, total, cfg.lr_min_ratio)
    return Training(train_data, head, card, optimizers, schedule, total, epoch_steps)


def init_from(model: ACTModel, model_name: str, source: str) -> None:
    """Copy the weights of a trained model (`init_from`) into a freshly built one of the same shape."""
    try:
        loaded = load_model(source, use_ema=True)
    except HRMError as e:
        raise ConfigError(f"init_from {source}: {e}") from None
    if loaded.card.model != model_name:
        raise ConfigError(
            f"init_from {source}: it is a {loaded.card.model} model, the recipe builds {model_name}"
        )
    try:
        load_weights(model, loaded.model.state_dict(), source=f"init_from {source} weights")
    except HRMError as e:
        raise ConfigError(str(e)) from None


def check_eval_data(cfg: TrainConfig, seq_len: int, vocab_size: int) -> None:
    """ConfigError, before the run starts, when the test split it evaluates on is missing or does not
    fit the model built for the training split."""
    path = Path(cfg.eval_data_path or cfg.data_path)
    if not (path / "test" / "dataset.json").exists():
        raise ConfigError(f"{path} has no test split to evaluate on (test/dataset.json)")
    meta = load_metadata(path, "test")
    if meta.seq_len != seq_len or meta.vocab_size > vocab_size:
        raise ConfigError(
            f"eval data {path}: sequences of length {meta.seq_len} over {meta.vocab_size} tokens do not fit "
            f"the model built for the training data (seq_len {seq_len}, vocab {vocab_size})"
        )


def eval_dataset(cfg: TrainConfig, info: distributed.DistInfo) -> PuzzleDataset:
    """The test split evaluated during training (`eval_data_path`, else `data_path`)."""
    path = Path(cfg.eval_data_path or cfg.data_path)
    if not (path / "test" / "dataset.json").exists():
        raise ConfigError(f"{path} has no test split to evaluate on (test/dataset.json)")
    return PuzzleDataset(
        {
            "seed": cfg.seed,
            "dataset_path": str(path),
            "global_batch_size": cfg.global_batch_size,
            "test_set_mode": True,
            "epochs_per_iter": 1,
            "rank": info.rank,
            "num_replicas": info.world_size,
        },
        split="test",
    )


def want_compile(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the loss head runs through torch.compile; `compile=auto` means on CUDA only."""
    value = str(cfg.compile).lower()
    if value == "auto":
        return device.type == "cuda"
    return value == "true"


def data_workers(cfg: TrainConfig, device: torch.device) -> int:
    """Background batch workers: as configured, else one on CUDA (so the accelerator does not wait
    for batches) and none elsewhere."""
    return cfg.data_workers if cfg.data_workers is not None else int(device.type == "cuda")
