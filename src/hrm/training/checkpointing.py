"""The run directory and its checkpoints, from the loop's side: `create_run_dir` starts a run,
`Checkpointer` saves every stateful part of it (under torchrun, each process's own carry and RNG
gathered to the main process) and restores them for `--resume`. The files themselves are written
and read by `hrm.checkpoint`, which inference shares.

Resuming takes the newest checkpoint whose every part reads back and fits the run (weights, EMA,
optimiser states, carry, RNG and sampler state, their shapes checked before anything is restored);
a checkpoint that does not is skipped with a warning naming it and why, and the one before it is
taken. A run with no checkpoint yet (killed before its first) resumes from step 0 with its own
config.yaml. Under torchrun every process agrees on the checkpoint, and a failure on one process
ends every process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hrm import distributed
from hrm.checkpoint import (
    EMA_WEIGHTS,
    TRAIN_STATE,
    WEIGHTS,
    ModelCard,
    complete_checkpoints,
    read_weights,
    remove_temporaries,
    save_checkpoint,
)
from hrm.config import TrainConfig, dump_config
from hrm.errors import CheckpointError, ConfigError, HRMError, StorageError
from hrm.fileio import atomic_write_text, describe_os_error, remove_quietly, warn
from hrm.models import ACTModel, Carry, check_weights, load_weights
from hrm.training.build import ScheduledOptimizer
from hrm.training.ema import EMA
from hrm.training.state import (
    BatchStream,
    ExplorationNoise,
    ResumeState,
    capture_rng,
    carry_from_state,
    carry_problem,
    carry_state,
    generator_problem,
    optimizer_problem,
    read_resume_state,
    restore_rng,
    rng_problem,
)


def default_run_dir(recipe: str | None) -> Path:
    stem = Path(recipe).stem if recipe else "run"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def agree(info: distributed.DistInfo, error: HRMError | None, elsewhere: str) -> None:
    """Raise `error` on the process that met it and an HRMError (`elsewhere`) on every other one, so
    that a failure on one process (a collective: every process must call it) ends them all."""
    if info.enabled:
        flag = torch.tensor([0.0 if error is None else 1.0], device=info.device)
        failed = float(distributed.reduce_sum(flag, info).item()) > 0
        if failed and error is None:
            raise HRMError(elsewhere)
    if error is not None:
        raise error


def _is_leftover(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def create_run_dir(run_dir: Path, cfg: TrainConfig, info: distributed.DistInfo) -> None:
    """Make a new run's directory with its resolved config (a collective under torchrun); never over
    an earlier run's files. On failure nothing it created is left behind."""
    error: HRMError | None = None
    if info.is_main:
        try:
            _create_run_dir(run_dir, cfg)
        except HRMError as exc:
            error = exc
    agree(info, error, f"the main process could not create the run directory {run_dir}")


def _create_run_dir(run_dir: Path, cfg: TrainConfig) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir} is a file; pick another run_dir")
    if run_dir.exists() and any(not _is_leftover(p) for p in run_dir.iterdir()):
        raise ConfigError(f"run directory {run_dir} already exists; pick another run_dir or --resume it")
    created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for leftover in run_dir.iterdir():
            remove_quietly(leftover)
        atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    except (OSError, MemoryError) as exc:
        for d in created:  # innermost first; stop at the first that is not empty or not ours
            try:
                d.rmdir()
            except OSError:
                break
        raise StorageError(describe_os_error(exc, f"create the run directory {run_dir}")) from None


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
        """Write checkpoint `step` (a collective under torchrun: every process must call it). A write
        that fails (StorageError: disk full, read-only, ...) ends every process."""
        own = {"carry": carry_state(carry), "rng": capture_rng()}
        rank_states: list[Any] = [own]
        if self.info.enabled:
            rank_states = [None] * self.info.world_size
            torch.distributed.all_gather_object(rank_states, own)
        error: HRMError | None = None
        if self.info.is_main:
            shared = {
                "step": step,
                "world_size": self.info.world_size,
                "optimizers": [entry.optimizer.state_dict() for entry in self.optimizers],
                "stream": self.stream.state_dict(),
                "exploration_rng": self.noise.rng_state(),
            }
            try:
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
            except HRMError as exc:
                error = exc
        agree(self.info, error, f"the main process could not write checkpoint {step} of {self.run_dir}")

    def restore(self) -> ResumePoint | None:
        """Load the newest checkpoint that reads back completely into the parts (this process's RNG
        included), skipping broken ones with a warning; None when the run has no checkpoint yet.
        ConfigError when there are checkpoints but none can be used."""
        if self.info.is_main:
            remove_temporaries(self.run_dir)
        candidates = complete_checkpoints(self.run_dir)
        if self.info.enabled:  # every process tries the same checkpoints, in the same order
            names = [[p.name for p in candidates]]
            torch.distributed.broadcast_object_list(names, src=0)
            candidates = [self.run_dir / "checkpoints" / name for name in names[0]]
        if not candidates:
            return None
        skipped: list[str] = []
        first: HRMError | None = None
        for ckpt in candidates:
            loaded: _Loaded | None = None
            problem: HRMError | None = None
            try:
                loaded = self._read(ckpt)
            except HRMError as exc:
                problem = exc
            reason = self._first_problem(problem)
            if reason is None and loaded is not None:
                if skipped and self.info.is_main:
                    warn(
                        f"--resume {self.run_dir}: skipped {'; '.join(skipped)}; resuming from {ckpt.name} "
                        f"(step {loaded.state.step})"
                    )
                return self._apply(loaded)
            first = first or problem
            skipped.append(f"{ckpt.name} ({reason})")
        if len(candidates) == 1 and first is not None:
            raise ConfigError(str(first))
        raise ConfigError(
            f"--resume {self.run_dir}: none of its {len(candidates)} checkpoints can be resumed from: "
            f"{'; '.join(skipped)}. Remove {self.run_dir / 'checkpoints'} to start again from step 0"
        )

    def _first_problem(self, problem: HRMError | None) -> str | None:
        """What makes a checkpoint unusable on any process (the lowest rank's reason), or None when
        every process read it (a collective under torchrun)."""
        own = None if problem is None else str(problem)
        if not self.info.enabled:
            return own
        everyone: list[Any] = [None] * self.info.world_size
        torch.distributed.all_gather_object(everyone, own)
        return next((p for p in everyone if p is not None), None)

    def _read(self, ckpt: Path) -> _Loaded:
        """Every part of checkpoint `ckpt`, read and checked against the run (nothing restored yet)."""
        state = read_resume_state(self.run_dir, ckpt, self.info)
        state_file = ckpt / TRAIN_STATE
        saved_optimizers = state.shared["optimizers"]
        if not isinstance(saved_optimizers, list) or len(saved_optimizers) != len(self.optimizers):
            count = len(saved_optimizers) if isinstance(saved_optimizers, list) else "no list of"
            raise ConfigError(
                f"--resume {self.run_dir}: {ckpt.name} holds {count} optimiser "
                f"states, the model trains with {len(self.optimizers)}"
            )
        for index, (entry, saved) in enumerate(zip(self.optimizers, saved_optimizers)):
            problem = optimizer_problem(saved, entry.optimizer)
            if problem:
                raise CheckpointError(f"{state_file}: optimiser {index}: {problem}")
        problem = generator_problem(state.shared["exploration_rng"], self.noise.generator)
        rank_file = ckpt / f"rank{self.info.rank}.pt"
        problem = problem or rng_problem(state.rank["rng"])
        if problem:
            raise CheckpointError(f"{state_file if 'exploration' in problem else rank_file}: {problem}")
        problem = carry_problem(state.rank["carry"], self._carry_shapes())
        if problem:
            raise CheckpointError(f"{rank_file}: {problem}")
        weights = read_weights(ckpt / WEIGHTS)
        check_weights(self.model, weights, source=str(ckpt / WEIGHTS))
        ema: dict[str, torch.Tensor] | None = None
        if self.ema is not None:
            if not (ckpt / EMA_WEIGHTS).is_file():
                raise CheckpointError(f"{ckpt}: has no {EMA_WEIGHTS}, but the run keeps an EMA (ema=true)")
            ema = read_weights(ckpt / EMA_WEIGHTS)
            check_weights(self.model, ema, source=str(ckpt / EMA_WEIGHTS))
        return _Loaded(state, weights, ema)

    def _carry_shapes(self) -> dict[str, tuple[tuple[int, ...], bool]]:
        c = self.model.config
        rows = int(self.stream.dataset.local_batch_size)  # this process's rows of a batch
        state, cells = (rows, c.total_len, c.hidden_size), (rows, c.seq_len)
        return {
            "z_H": (state, True),
            "z_L": (state, True),
            "steps": ((rows,), False),
            "halted": ((rows,), False),
            "data.inputs": (cells, False),
            "data.labels": (cells, False),
            "data.puzzle_identifiers": ((rows,), False),
        }

    def _apply(self, loaded: _Loaded) -> ResumePoint:
        state = loaded.state
        load_weights(self.model, loaded.weights, source=str(state.checkpoint / WEIGHTS))
        try:
            for entry, saved in zip(self.optimizers, state.shared["optimizers"]):
                entry.optimizer.load_state_dict(saved)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{state.checkpoint / TRAIN_STATE}: the optimiser states do not fit the run ({exc})"
            ) from None
        if self.ema is not None and loaded.ema is not None:
            self.ema.load_shadow(loaded.ema)
        carry = carry_from_state(state.rank["carry"], self.info.device)
        restore_rng(state.rank["rng"])
        self.noise.set_rng_state(state.shared["exploration_rng"])
        self.stream.load_state_dict(state.shared["stream"])
        return ResumePoint(step=state.step, carry=carry)


@dataclass
class _Loaded:
    """A checkpoint read back and checked, ready to restore."""

    state: ResumeState
    weights: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
