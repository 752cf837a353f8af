"""The run directory and its checkpoints, from the loop's side: `create_run_dir` starts a run,
`Checkpointer` saves every stateful part of it (under torchrun, each process's own carry and RNG
gathered to the main process) and restores them for `--resume`. The files themselves are written
and read by `hrm.checkpoint`, which inference shares."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hrm import distributed
from hrm.checkpoint import EMA_WEIGHTS, WEIGHTS, ModelCard, read_weights, save_checkpoint
from hrm.config import TrainConfig, dump_config
from hrm.errors import ConfigError
from hrm.models import ACTModel, Carry, load_weights
from hrm.training.build import ScheduledOptimizer
from hrm.training.ema import EMA
from hrm.training.state import (
    BatchStream,
    ExplorationNoise,
    capture_rng,
    carry_from_state,
    carry_state,
    read_resume_state,
    restore_rng,
)


def default_run_dir(recipe: str | None) -> Path:
    stem = Path(recipe).stem if recipe else "run"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run_dir(run_dir: Path, cfg: TrainConfig, info: distributed.DistInfo) -> None:
    """Make a new run's directory with its resolved config; never over an earlier run's files."""
    if not info.is_main:
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"run directory {run_dir} already exists; pick another run_dir or --resume it")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg))


@dataclass
class ResumePoint:
    """Where a restored run continues: the last step it completed and the ACT carry after it."""

    step: int
    carry: Carry | None


class Checkpointer:
    """Saves and restores the parts of a run that a bit-identical continuation needs: weights, EMA,
    optimiser states, the sampler position and the exploration generator (shared by all processes),
    and each process's ACT carry and RNG state."""

    def __init__(
        self,
        run_dir: Path,
        info: distributed.DistInfo,
        card: ModelCard,
        model: ACTModel,
        optimizers: list[ScheduledOptimizer],
        stream: BatchStream,
        noise: ExplorationNoise,
        ema: EMA | None,
        keep: int,
    ):
        self.run_dir = run_dir
        self.info = info
        self.card = card
        self.model = model
        self.optimizers = optimizers
        self.stream = stream
        self.noise = noise
        self.ema = ema
        self.keep = keep

    def save(self, step: int, carry: Carry | None) -> None:
        """Write checkpoint `step` (a collective under torchrun: every process must call it)."""
        own = {"carry": carry_state(carry), "rng": capture_rng()}
        rank_states: list[Any] = [own]
        if self.info.enabled:
            rank_states = [None] * self.info.world_size
            torch.distributed.all_gather_object(rank_states, own)
        if self.info.is_main:
            shared = {
                "step": step,
                "world_size": self.info.world_size,
                "optimizers": [entry.optimizer.state_dict() for entry in self.optimizers],
                "stream": self.stream.state_dict(),
                "exploration_rng": self.noise.rng_state(),
            }
            save_checkpoint(
                self.run_dir,
                step,
                self.model,
                self.card,
                shared,
                rank_states=rank_states,
                ema_state=self.ema.full_state(self.model) if self.ema is not None else None,
                keep=self.keep,
            )
        distributed.barrier(self.info)

    def restore(self) -> ResumePoint:
        """Load the run's newest complete checkpoint into the parts; this process's RNG included."""
        state = read_resume_state(self.run_dir, self.info)
        saved_optimizers = state.shared["optimizers"]
        if len(saved_optimizers) != len(self.optimizers):
            raise ConfigError(
                f"--resume {self.run_dir}: {state.checkpoint.name} holds {len(saved_optimizers)} optimiser "
                f"states, the model trains with {len(self.optimizers)}"
            )
        load_weights(self.model, read_weights(state.checkpoint / WEIGHTS), source=str(state.checkpoint))
        for entry, saved in zip(self.optimizers, saved_optimizers):
            entry.optimizer.load_state_dict(saved)
        if self.ema is not None:
            self.ema.load_shadow(read_weights(state.checkpoint / EMA_WEIGHTS))
        carry = carry_from_state(state.rank["carry"], self.info.device)
        restore_rng(state.rank["rng"])
        self.noise.set_rng_state(state.shared["exploration_rng"])
        self.stream.load_state_dict(state.shared["stream"])
        return ResumePoint(step=state.step, carry=carry)
