"""What a run carries from one step to the next besides weights and optimisers, each as a small
component that can be captured into a checkpoint and restored from it: the RNG states, the ACT carry,
the exploration draws (`ExplorationNoise`) and the sampler position (`BatchStream`); and reading a
checkpoint's training state back for `--resume`, checked before anything is restored from it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm.checkpoint import TRAIN_STATE, checkpoint_step, load_state
from hrm.distributed import DistInfo
from hrm.errors import CheckpointError, ConfigError
from hrm.models import Carry

# -- random number generators -------------------------------------------------------------------


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """This process's torch RNG states (CPU, and every CUDA device when there is one)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without disturbing the RNG stream: an evaluation in the middle of a run must not
    change the training draws after it, or a resumed run would diverge from an uninterrupted one."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)


# -- the ACT carry ------------------------------------------------------------------------------


def carry_state(carry: Carry | None) -> dict[str, torch.Tensor] | None:
    """The carry as a flat dict of CPU tensors (`data.<key>` for the puzzles the rows work on)."""
    if carry is None:
        return None
    state = {"z_H": carry.z_H, "z_L": carry.z_L, "steps": carry.steps, "halted": carry.halted}
    state.update({f"data.{k}": v for k, v in carry.current_data.items()})
    return {k: v.detach().cpu() for k, v in state.items()}


def carry_from_state(state: dict[str, torch.Tensor] | None, device: torch.device) -> Carry | None:
    if state is None:
        return None
    t = {k: v.to(device) for k, v in state.items()}
    data = {k.removeprefix("data."): v for k, v in t.items() if k.startswith("data.")}
    return Carry(z_H=t["z_H"], z_L=t["z_L"], steps=t["steps"], halted=t["halted"], current_data=data)


# -- exploration draws ----------------------------------------------------------------------------


class ExplorationNoise:
    """Halting-exploration draws for the whole global batch from one seeded generator, sliced to this
    process's rows: one process and N processes explore identically."""

    def __init__(self, seed: int, global_batch: int, halt_max_steps: int, info: DistInfo):
        self.generator = torch.Generator().manual_seed(seed)
        self.global_batch = global_batch
        self.high = halt_max_steps + 1
        local = global_batch // info.world_size
        self.rows = slice(info.rank * local, (info.rank + 1) * local)

    def __call__(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        uniform = torch.rand(self.global_batch, generator=self.generator)[self.rows]
        draw = torch.randint(2, max(self.high, 3), (self.global_batch,), generator=self.generator)[self.rows]
        return uniform[:rows], draw[:rows]

    def rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


# -- the sampler position -------------------------------------------------------------------------


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

    def _source(self) -> Iterator[tuple[str, dict[str, torch.Tensor], int]]:
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


# -- reading a checkpoint back for --resume -----------------------------------------------------

TRAIN_STATE_KEYS = ("step", "world_size", "optimizers", "stream", "exploration_rng")
RANK_STATE_KEYS = ("carry", "rng")


@dataclass
class ResumeState:
    """A complete checkpoint of a run and the training state saved with it: the shared part
    (`training_state.pt`) and this process's own (`rank<N>.pt`: its carry and RNG)."""

    checkpoint: Path
    step: int
    shared: dict[str, Any]
    rank: dict[str, Any]


def read_resume_state(run_dir: Path, ckpt: Path, info: DistInfo) -> ResumeState:
    """The training state of checkpoint `ckpt` of `run_dir`, refused (one line naming the file) when a
    part is unreadable or missing or when it was written by a different number of processes."""
    shared = load_state(ckpt / TRAIN_STATE)
    _require_keys(shared, TRAIN_STATE_KEYS, run_dir, ckpt / TRAIN_STATE)
    world_size = shared["world_size"]
    if not isinstance(world_size, int) or isinstance(world_size, bool):
        raise CheckpointError(f"{ckpt / TRAIN_STATE}: its world_size is not a number of processes")
    if world_size != info.world_size:
        raise ConfigError(
            f"--resume {run_dir}: it was trained with {shared['world_size']} processes, "
            f"now {info.world_size}; resume with the same number"
        )
    step = shared["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step != checkpoint_step(ckpt):
        raise CheckpointError(f"{ckpt / TRAIN_STATE}: holds step {step!r}, not the step its directory names")
    stream = shared["stream"]
    if not (
        isinstance(stream, dict)
        and all(isinstance(stream.get(k), int) and stream[k] >= 0 for k in ("iters", "taken"))
    ):
        raise CheckpointError(f"{ckpt / TRAIN_STATE}: the sampler position is not two counts (iters, taken)")
    rank_file = ckpt / f"rank{info.rank}.pt"
    rank = load_state(rank_file)
    _require_keys(rank, RANK_STATE_KEYS, run_dir, rank_file)
    return ResumeState(checkpoint=ckpt, step=step, shared=shared, rank=rank)


def _require_keys(state: Any, keys: tuple[str, ...], run_dir: Path, path: Path) -> None:
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise ConfigError(
            f"--resume {run_dir}: {path.name} of {path.parent.name} lacks {', '.join(missing)}; "
            "it was not written by hrm train"
        )


def _shape(t: Any) -> str:
    return "x".join(str(n) for n in t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def rng_problem(state: Any) -> str | None:
    """What is wrong with a saved RNG state (`capture_rng`), or None."""
    if not isinstance(state, dict):
        return "the RNG state is not a dict"
    own = torch.get_rng_state()
    saved = state.get("torch")
    if not isinstance(saved, torch.Tensor) or saved.dtype != own.dtype or saved.shape != own.shape:
        return f"the torch RNG state is {_shape(saved)}, expected {_shape(own)} bytes"
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if not isinstance(cuda, list | tuple) or not all(isinstance(t, torch.Tensor) for t in cuda):
            return "the CUDA RNG states are not a list of tensors"
        if len(cuda) > torch.cuda.device_count():
            count = torch.cuda.device_count()
            return f"it holds RNG states of {len(cuda)} CUDA devices, this machine has {count}"
    return None


def generator_problem(state: Any, generator: torch.Generator) -> str | None:
    """What is wrong with a saved `torch.Generator` state for `generator`, or None."""
    own = generator.get_state()
    if not isinstance(state, torch.Tensor) or state.dtype != own.dtype or state.shape != own.shape:
        return f"the exploration RNG state is {_shape(state)}, expected {_shape(own)} bytes"
    return None


def carry_problem(state: Any, expected: dict[str, tuple[tuple[int, ...], bool]]) -> str | None:
    """What is wrong with a saved carry (`carry_state`), or None. `expected` maps each key to its
    shape and whether it is floating point."""
    if state is None:
        return None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "the ACT carry is not a dict of tensors"
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has unexpected {', '.join(map(str, extra))}"] if extra else []
        )
        return f"the ACT carry {' and '.join(parts)}"
    for key, (shape, floating) in expected.items():
        t = state[key]
        if tuple(t.shape) != shape:
            want = "x".join(map(str, shape))
            return f"the ACT carry's {key} is {_shape(t)}, the model and batch need {want}"
        if t.is_floating_point() != floating:
            return f"the ACT carry's {key} has dtype {t.dtype}"
    return None


def optimizer_problem(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """What is wrong with a saved optimiser state for `optimizer` (its layout, and every per-parameter
    tensor against its parameter's shape), or None."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        return "not an optimiser state"
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups
    ):
        return "its parameter groups are malformed"
    own = [g["params"] for g in optimizer.param_groups]
    if [len(g["params"]) for g in groups] != [len(g) for g in own]:
        sizes = [len(g["params"]) for g in groups]
        return f"it has parameter groups of {sizes} parameters, the model trains {[len(g) for g in own]}"
    params = {pid: p for g, mine in zip(groups, own) for pid, p in zip(g["params"], mine)}
    for pid, entry in saved["state"].items():
        if pid not in params or not isinstance(entry, dict):
            return f"it holds state for an unknown parameter {pid!r}"
        param = params[pid]
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                return f"its {key} of parameter {pid} is {_shape(value)}, the parameter is {_shape(param)}"
    return None
