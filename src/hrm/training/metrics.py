"""What a run reports: `MetricsWindow` sums the step metrics between two log points and turns them
into one record (reduced over processes, with lr and speed); `MetricsLog` writes records to
metrics.jsonl, TensorBoard and W&B; `Progress` is the progress bar."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from hrm import distributed
from hrm.errors import ConfigError
from hrm.fileio import atomic_write_text, json_safe, warn

Record = dict[str, Any]


class LogSettings(Protocol):
    """What MetricsLog reads of a run's config (`TrainConfig`, or the agent's `AgentTrainConfig`)."""

    tensorboard: bool
    wandb: bool
    project_name: str | None

    def model_dump(self) -> dict[str, Any]: ...


class MetricsWindow:
    """Sums of the per-step metrics (as `ACTLossHead` returns them: sums over the rows that halted)
    since the last record. A record divides the losses by the examples seen in the window and every
    other metric by the rows counted (`count`), after summing over all processes."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.sums: torch.Tensor | None = None
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        if not self.keys:
            self.keys = sorted(metrics)
        values = torch.stack([metrics[k].detach().float() for k in self.keys])
        self.sums = values if self.sums is None else self.sums + values
        self.steps += 1

    def record(self, info: distributed.DistInfo, lr: float, global_batch: int) -> dict[str, float]:
        """The window as a record (a collective: every process must call it), then start a new one."""
        if self.sums is None:
            raise RuntimeError("a metrics record needs at least one step in its window")
        reduced = distributed.reduce_sum(self.sums, info).cpu().tolist()
        totals = dict(zip(self.keys, reduced))
        count = max(totals.pop("count"), 1.0)
        out = {k: v / (global_batch * self.steps if k.endswith("loss") else count) for k, v in totals.items()}
        elapsed = time.perf_counter() - self.started
        out["lr"] = lr
        out["steps_per_s"] = self.steps / max(elapsed, 1e-9)
        out["examples_per_s"] = out["steps_per_s"] * global_batch
        self.sums, self.steps, self.started = None, 0, time.perf_counter()
        return out


class MetricsLog:
    """metrics.jsonl (+ TensorBoard, + W&B when asked), written by the main process only; every
    process keeps the records it logged in `history`. `on_log(record)` is called on the main process
    for each record."""

    def __init__(
        self,
        run_dir: Path,
        cfg: LogSettings,
        enabled: bool,
        resume_step: int | None,
        on_log: Callable[[Record], None] | None = None,
    ):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.on_log = on_log
        self.history: list[Record] = []
        self.tb: Any = None
        self.wandb: Any = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            self._truncate(resume_step)
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

    def _truncate(self, resume_step: int) -> None:
        """Drop what was logged after the checkpoint we resume from (it will be logged again), and
        any line a killed process left torn (cut short, or NUL bytes), with a warning naming them."""
        kept: list[str] = []
        torn: list[int] = []
        raw = self.path.read_bytes()
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("step", 0), int):
                torn.append(number)
                continue
            if record.get("step", 0) <= resume_step:
                kept.append(line.decode("utf-8"))
        if torn:
            lines = ", ".join(map(str, torn[:5])) + (" ..." if len(torn) > 5 else "")
            warn(
                f"{self.path}: dropped {len(torn)} unreadable line(s) ({lines}), left by an interrupted write"
            )
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, step: int, kind: str, values: dict[str, Any]) -> Record:
        record: Record = {"step": step, "kind": kind, **values}
        self.history.append(record)
        if not self.enabled:
            return record
        stamped = {"step": step, "kind": kind, "time": round(time.time(), 3), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(json_safe(stamped), allow_nan=False) + "\n")
        flat = flatten(values, kind)
        if self.tb is not None:
            for k, v in flat.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(flat, step=step)
        if self.on_log is not None:
            self.on_log(record)
        return record

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def flatten(values: dict[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}/{k}"))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[f"{prefix}/{k}"] = float(v)
    return out


class Progress:
    """A tqdm bar over the run's steps (main process, `progress=true`); otherwise it does nothing."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show_train(self, values: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{values.get('lm_loss', 0):.3f}", exact=f"{values.get('exact_accuracy', 0):.3f}"
            )

    def show_eval(
        self, step: int, metrics: dict[str, dict[str, float]], score: dict[str, float] | None = None
    ) -> None:
        """One line per evaluation: each set's exact accuracy, then `score`'s values (a task's dataset
        score, labelled)."""
        if self.bar is not None:
            parts = [f"{s}: exact {m.get('exact_accuracy', 0):.3f}" for s, m in metrics.items()]
            parts += [f"{name} {value:.3f}" for name, value in (score or {}).items()]
            self.bar.write(f"step {step}: eval {', '.join(parts)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
