"""Training: one loop for CPU, one GPU and many processes (torchrun), resumable to the exact step.

Reads top to bottom: set up processes and data, build the model and optimisers, restore a checkpoint
if resuming, then step: one ACT segment per batch (rows that have not halted keep their puzzle),
loss / global batch size, backward, gradient all-reduce, optimiser steps, EMA, log, evaluate, save.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm import distributed
from hrm.checkpoint import (
    ModelCard,
    latest_checkpoint,
    load_model,
    load_state,
    read_weights,
    save_checkpoint,
)
from hrm.config import TrainConfig, dump_config, load_config
from hrm.data.dataset import PuzzleDataset
from hrm.data.format import load_metadata
from hrm.errors import ConfigError, HRMError
from hrm.evaluate import evaluate
from hrm.models import ACTLossHead, Carry, build_model, cpu_rows_per_slice, load_weights
from hrm.optim import (
    AdamAtan2,
    SparseEmbeddingSignSGD,
    cosine_schedule_with_warmup_lr,
    total_training_steps,
)
from hrm.runtime import tune_cpu_allocator


class NonFiniteLossError(HRMError):
    pass


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    eval_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


class MetricsLog:
    """metrics.jsonl (+ TensorBoard, + W&B when asked), written by rank 0 only."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, enabled: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        self.wandb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # Drop what was logged after the checkpoint we resume from: it will be logged again.
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)
            except ImportError:
                self.tb = None
        if cfg.wandb:
            try:
                import wandb
            except ImportError:
                raise ConfigError(
                    "wandb=true, but the wandb package is not installed (pip install wandb)"
                ) from None
            self.wandb = wandb.init(
                project=cfg.project_name or "hrm", name=run_dir.name, config=cfg.model_dump()
            )

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "kind": kind, "time": round(time.time(), 3), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        flat = _flatten(values, kind)
        if self.tb is not None:
            for k, v in flat.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(flat, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _flatten(values: dict[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}/{k}"))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[f"{prefix}/{k}"] = float(v)
    return out


class EMA:
    """Exponential moving average of the trainable parameters (TRM's recipe)."""

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
        """The model's state dict with EMA values in place of the parameters."""
        state = dict(model.state_dict())
        state.update(self.shadow)
        return state


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _carry_state(carry: Carry | None) -> dict[str, torch.Tensor] | None:
    if carry is None:
        return None
    state = {"z_H": carry.z_H, "z_L": carry.z_L, "steps": carry.steps, "halted": carry.halted}
    state.update({f"data.{k}": v for k, v in carry.current_data.items()})
    return {k: v.detach().cpu() for k, v in state.items()}


def _carry_from_state(state: dict[str, torch.Tensor] | None, device: torch.device) -> Carry | None:
    if state is None:
        return None
    t = {k: v.to(device) for k, v in state.items()}
    data = {k.removeprefix("data."): v for k, v in t.items() if k.startswith("data.")}
    return Carry(z_H=t["z_H"], z_L=t["z_L"], steps=t["steps"], halted=t["halted"], current_data=data)


class ExplorationNoise:
    """Halting-exploration draws for the whole global batch from one seeded generator, sliced to this
    process's rows: one process and N processes explore identically."""

    def __init__(self, seed: int, global_batch: int, halt_max_steps: int, info: distributed.DistInfo):
        self.generator = torch.Generator().manual_seed(seed)
        self.global_batch = global_batch
        self.high = halt_max_steps + 1
        self.rows = slice(
            info.rank * (global_batch // info.world_size), (info.rank + 1) * (global_batch // info.world_size)
        )

    def __call__(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        uniform = torch.rand(self.global_batch, generator=self.generator)[self.rows]
        draw = torch.randint(2, max(self.high, 3), (self.global_batch,), generator=self.generator)[self.rows]
        return uniform[:rows], draw[:rows]


class BatchStream:
    """Endless training batches with a resumable position: (dataset iterations started, batches
    already taken from the current one). Resuming replays the sampler to the same batch.

    With `workers=1` the batches are assembled in a background process (a DataLoader worker, with
    pinned memory on CUDA) so the accelerator does not wait for them; the sampler is the same, so the
    batches are too."""

    def __init__(self, dataset: Any, workers: int = 0, pin_memory: bool = False):
        self.dataset = dataset
        self.workers = workers
        self.pin_memory = pin_memory
        self.iters = 0
        self.taken = 0

    def state_dict(self) -> dict[str, int]:
        return {"iters": self.iters, "taken": self.taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.iters, self.taken = int(state["iters"]), int(state["taken"])

    def _source(self):
        if self.workers == 0:
            return iter(self.dataset)
        from torch.utils.data import DataLoader

        loader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=self.workers,
            prefetch_factor=8,
            pin_memory=self.pin_memory,
        )
        return iter(loader)

    def __iter__(self) -> Iterator[tuple[str, dict[str, torch.Tensor], int]]:
        while True:
            self.dataset.load_state_dict({"iters": self.iters})
            produced = False
            for index, item in enumerate(self._source()):
                produced = True
                if index < self.taken:
                    continue
                self.taken = index + 1
                yield item
            if not produced:
                raise ConfigError(
                    "the training split has fewer examples than one global batch; lower global_batch_size"
                )
            # One pass of the dataset starts one sampler iteration per set (counted here, not read
            # back, since a worker process advances its own copy of the dataset).
            self.iters += len(self.dataset.metadata.sets)
            self.taken = 0


def _default_run_dir(recipe: str | None) -> Path:
    stem = Path(recipe).stem if recipe else "run"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _want_compile(cfg: TrainConfig, device: torch.device) -> bool:
    value = str(cfg.compile).lower()
    if value == "auto":
        return device.type == "cuda"
    return value == "true"


# Entries of the shuffled group order drawn up front for one data iteration (8 bytes each).
ORDER_CAP = 1 << 24


def epochs_per_iteration(cfg: TrainConfig, total_groups: int, total_steps: int) -> int:
    """Epochs shuffled into one data iteration: the eval interval, as the reference. The reference draws
    that many permutations up front, which for a long interval (or none, with ``max_steps``) is
    gigabytes of indices the run never reaches; beyond ``ORDER_CAP`` entries it is cut to the epochs
    ``total_steps`` can consume (a batch takes at most ``global_batch_size`` groups)."""
    epochs = max(1, min(cfg.eval_interval or cfg.epochs, cfg.epochs))
    if epochs * total_groups > ORDER_CAP:
        reach = -(-total_steps * cfg.global_batch_size // max(total_groups, 1)) + 1
        epochs = max(1, min(epochs, reach))
    return epochs


def _init_weights(model: torch.nn.Module, model_name: str, source: str) -> None:
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


def build_training(cfg: TrainConfig, info: distributed.DistInfo):
    """Datasets, model, loss head, optimisers and schedule length for a config."""
    if cfg.global_batch_size % info.world_size:
        raise ConfigError(
            f"global_batch_size {cfg.global_batch_size} is not divisible by the {info.world_size} processes"
        )
    data_path = Path(cfg.data_path)
    if not (data_path / "train" / "dataset.json").exists():
        raise ConfigError(f"data_path {data_path} is not a dataset directory (no train/dataset.json)")
    meta = load_metadata(data_path, "train")
    total = total_training_steps(
        cfg.epochs, meta.total_groups, meta.mean_puzzle_examples, cfg.global_batch_size
    )
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    if total < 1:
        raise ConfigError("the run would take no step: raise epochs or lower global_batch_size")
    train_ds = PuzzleDataset(
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
    _seed_all(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model_name, arch)
    if cfg.init_from:
        _init_weights(model, cfg.model_name, cfg.init_from)
    card = ModelCard(cfg.model_name, model.config.model_dump(mode="json"), cfg.loss_type)
    head = ACTLossHead(model, cfg.loss_type).to(info.device)
    distributed.broadcast_module(head, info)
    optimizers: list[tuple[torch.optim.Optimizer, float]] = [
        (
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
        optimizers.insert(
            0,
            (
                SparseEmbeddingSignSGD(
                    model.inner.puzzle_emb,
                    lr=cfg.puzzle_emb_lr,
                    weight_decay=cfg.puzzle_emb_weight_decay,
                    world_size=info.world_size,
                ),
                cfg.puzzle_emb_lr,
            ),
        )
    return train_ds, head, card, optimizers, total


def _eval_every(cfg: TrainConfig, total: int, meta_steps: int) -> int:
    if cfg.eval_interval is None:
        return total
    return max(1, min(total, round(meta_steps * cfg.eval_interval / cfg.epochs)))


def train(
    cfg: TrainConfig,
    recipe: str | None = None,
    resume: str | Path | None = None,
    on_log: Any = None,
) -> TrainResult:
    """Run (or resume) training. `on_log(record)` is called on rank 0 for every logged record."""
    info = distributed.setup(cfg.device)
    try:
        return _train(cfg, info, recipe, Path(resume) if resume else None, on_log)
    finally:
        distributed.teardown(info)


def _train(cfg, info, recipe, resume, on_log) -> TrainResult:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if info.device.type == "cpu":
        tune_cpu_allocator()
    train_ds, head, card, optimizers, total = build_training(cfg, info)
    meta = train_ds.metadata
    full_steps = total_training_steps(
        cfg.epochs, meta.total_groups, meta.mean_puzzle_examples, cfg.global_batch_size
    )
    eval_every = _eval_every(cfg, total, full_steps)
    ckpt_every = cfg.checkpoint_interval or eval_every
    model = head.model
    params = [p for p in head.parameters() if p.requires_grad]
    ema = EMA(model, cfg.ema_rate) if cfg.ema else None
    workers = cfg.data_workers if cfg.data_workers is not None else int(info.device.type == "cuda")
    stream = BatchStream(train_ds, workers=workers, pin_memory=info.device.type == "cuda")
    noise = ExplorationNoise(cfg.seed + 1, cfg.global_batch_size, model.config.halt_max_steps, info)
    rows_per_slice = cpu_rows_per_slice(model.config, cfg.global_batch_size // info.world_size, info.device)

    run_dir = Path(resume) if resume else Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(recipe)
    step = 0
    carry: Carry | None = None
    resume_step = None
    if resume is not None:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise ConfigError(f"--resume {run_dir}: no complete checkpoint to resume from")
        state = load_state(ckpt / "training_state.pt")
        if state["world_size"] != info.world_size:
            raise ConfigError(
                f"--resume {run_dir}: it was trained with {state['world_size']} processes, "
                f"now {info.world_size}; resume with the same number"
            )
        load_weights(model, read_weights(ckpt / "model.safetensors"), source=str(ckpt))
        for (opt, _), opt_state in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        if ema is not None:
            ema_state = read_weights(ckpt / "ema.safetensors")
            for name in ema.shadow:
                ema.shadow[name].copy_(ema_state[name])
        rank_state = load_state(ckpt / f"rank{info.rank}.pt")
        carry = _carry_from_state(rank_state["carry"], info.device)
        _set_rng_state(rank_state["rng"])
        noise.generator.set_state(state["exploration_rng"])
        stream.load_state_dict(state["stream"])
        step = resume_step = int(state["step"])
    else:
        if info.is_main:
            if run_dir.exists() and any(run_dir.iterdir()):
                raise ConfigError(
                    f"run directory {run_dir} already exists; pick another run_dir or --resume it"
                )
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(dump_config(cfg))
        torch.manual_seed(cfg.seed + info.rank)  # per-rank exploration noise
    distributed.barrier(info)

    forward = head
    if _want_compile(cfg, info.device):
        forward = torch.compile(head)

    log = MetricsLog(run_dir, cfg, info.is_main, resume_step)
    result = TrainResult(run_dir=run_dir, step=step)
    eval_ds = None
    progress = None
    if info.is_main and cfg.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total, initial=step, desc="train", unit="step", dynamic_ncols=True)

    def emit(record_step: int, kind: str, values: dict[str, Any]) -> None:
        log.write(record_step, kind, values)
        record = {"step": record_step, "kind": kind, **values}
        result.history.append(record)
        if on_log is not None:
            on_log(record)

    def save(at_step: int) -> None:
        opt_states = [opt.state_dict() for opt, _ in optimizers]
        rank_state = {"carry": _carry_state(carry), "rng": _rng_state()}
        # Each rank writes its own carry and RNG; rank 0 assembles the checkpoint directory.
        gathered = [rank_state]
        if info.enabled:
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rank_state)
        if info.is_main:
            save_checkpoint(
                run_dir,
                at_step,
                model,
                card,
                {
                    "step": at_step,
                    "world_size": info.world_size,
                    "optimizers": opt_states,
                    "stream": stream.state_dict(),
                    "exploration_rng": noise.generator.get_state(),
                },
                rank_states=gathered,
                ema_state=ema.full_state(model) if ema is not None else None,
                keep=cfg.keep_checkpoints,
            )
        distributed.barrier(info)

    sums: torch.Tensor | None = None
    keys: list[str] = []
    window_start = time.perf_counter()
    window_steps = 0
    head.train()
    try:
        for _set_name, batch, global_batch in stream:
            if step >= total:
                break
            step += 1
            batch = {k: v.to(info.device, non_blocking=True) for k, v in batch.items()}
            if carry is None:
                carry = head.initial_carry(batch)
            lr_now = 0.0
            for opt, base_lr in optimizers:
                lr_now = cosine_schedule_with_warmup_lr(
                    step - 1, base_lr, cfg.lr_warmup_steps, total, min_ratio=cfg.lr_min_ratio
                )
                for group in opt.param_groups:
                    group["lr"] = lr_now
            out_step = forward(carry, batch, exploration=noise, rows_per_slice=rows_per_slice)
            carry, loss, metrics = out_step.carry, out_step.loss, out_step.metrics
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"the loss became {loss.item()} at step {step}; stopping. The last good checkpoint is "
                    f"kept in {run_dir / 'checkpoints'} (try a lower lr)"
                )
            (loss / global_batch).backward()
            distributed.all_reduce_grads(params, info)
            for opt, _ in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)

            if not keys:
                keys = sorted(metrics)
            values = torch.stack([metrics[k].detach().float() for k in keys])
            sums = values if sums is None else sums + values
            window_steps += 1
            if progress is not None:
                progress.update(1)

            if step % cfg.log_interval == 0 or step % ckpt_every == 0 or step == total:
                reduced = distributed.reduce_sum(sums, info).cpu().tolist()
                record = dict(zip(keys, reduced))
                count = max(record.pop("count"), 1.0)
                out = {
                    k: v / (global_batch * window_steps if k.endswith("loss") else count)
                    for k, v in record.items()
                }
                elapsed = time.perf_counter() - window_start
                out["lr"] = lr_now
                out["steps_per_s"] = window_steps / max(elapsed, 1e-9)
                out["examples_per_s"] = out["steps_per_s"] * global_batch
                if progress is not None:
                    progress.set_postfix(
                        loss=f"{out.get('lm_loss', 0):.3f}", exact=f"{out.get('exact_accuracy', 0):.3f}"
                    )
                emit(step, "train", out)
                sums, window_steps, window_start = None, 0, time.perf_counter()

            if step % eval_every == 0 or step == total:
                if eval_ds is None:
                    eval_ds = _eval_dataset(cfg, info)
                weights_backup = None
                if ema is not None:
                    weights_backup = {n: p.detach().clone() for n, p in model.named_parameters()}
                    with torch.no_grad():
                        for n, p in model.named_parameters():
                            p.copy_(ema.shadow[n])
                rng = _rng_state()
                ev = evaluate(head, eval_ds, info, max_batches=cfg.eval_max_batches)
                _set_rng_state(rng)
                if weights_backup is not None:
                    with torch.no_grad():
                        for n, p in model.named_parameters():
                            p.copy_(weights_backup[n])
                head.train()
                result.eval_metrics = ev.metrics
                emit(step, "eval", ev.metrics)
                if progress is not None:
                    summary = ", ".join(
                        f"{s}: exact {m.get('exact_accuracy', 0):.3f}" for s, m in ev.metrics.items()
                    )
                    progress.write(f"step {step}: eval {summary}")
            if step % ckpt_every == 0 or step == total:
                save(step)
    finally:
        if progress is not None:
            progress.close()
        log.close()
    result.step = step
    return result


def _eval_dataset(cfg: TrainConfig, info: distributed.DistInfo):
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


def train_from_cli(recipe: str | None, overrides: list[str], resume: str | None) -> TrainResult:
    if resume is not None:
        run_dir = Path(resume)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.exists():
            raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml)")
        cfg = load_config(cfg_path, overrides)
        return train(cfg, recipe=str(cfg_path), resume=run_dir)
    if recipe is None:
        raise ConfigError("give a recipe (e.g. configs/sudoku6_cpu.yaml) or --resume RUN_DIR")
    cfg = load_config(recipe, overrides)
    result = train(cfg, recipe=recipe)
    return result


__all__ = ["TrainResult", "build_training", "train", "train_from_cli"]
