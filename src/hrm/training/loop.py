"""The training loop: one for CPU, one GPU and many processes (torchrun), resumable to the exact step.

Reads top to bottom: set up the process, build the run, restore a checkpoint or start a new run
directory, then step: a batch, the learning rate, one ACT segment per row (rows that have not halted
keep their puzzle), loss / global batch size, backward, gradient all-reduce, optimiser steps, EMA,
metrics, and at their intervals a log record, an evaluation and a checkpoint. A run given `max_minutes`
ends at the first log step past that time, with the evaluation and checkpoint of a last step.

An evaluation logs each test set's metrics and, where the dataset's task has its own score
(`Task.score_dataset`, ARC's voting and pass@k) and `eval_dataset_score` is on, that score under
the task's name: every process's predictions are gathered, scored once on the main process, and the
files the score comes with (ARC's submission.json) are written to `evaluations/step_N/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from hrm import distributed
from hrm.config import TrainConfig, load_config
from hrm.errors import ConfigError, HRMError, StorageError
from hrm.evaluate import evaluate, score_predictions, scoring_task
from hrm.fileio import WRITE_ERRNOS, describe_os_error, warn
from hrm.models import ACTStep, Carry, cpu_rows_per_slice
from hrm.runtime import tune_cpu_allocator
from hrm.training.build import (
    Deadline,
    Intervals,
    build_training,
    data_workers,
    eval_dataset,
    want_compile,
)
from hrm.training.checkpointing import Checkpointer, create_run_dir, default_run_dir
from hrm.training.ema import EMA, ema_weights
from hrm.training.metrics import MetricsLog, MetricsWindow, Progress, Record
from hrm.training.state import BatchStream, ExplorationNoise, preserved_rng

if TYPE_CHECKING:  # pragma: no cover
    from hrm.tasks import Task


class NonFiniteLossError(HRMError):
    pass


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    eval_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # The last evaluation's task score ({task name: summary}), on the main process; see the module doc.
    eval_score: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[Record] = field(default_factory=list)


def train(
    cfg: TrainConfig,
    recipe: str | None = None,
    resume: str | Path | None = None,
    on_log: Callable[[Record], None] | None = None,
) -> TrainResult:
    """Run (or resume, from the run directory `resume`) training. `on_log(record)` is called on the
    main process for every logged record."""
    info = distributed.setup(cfg.device)
    finished = False
    try:
        result = _run(cfg, info, recipe, Path(resume) if resume else None, on_log)
        finished = True
        return result
    except (OSError, MemoryError) as exc:
        if isinstance(exc, OSError) and exc.errno not in WRITE_ERRNOS:
            raise
        raise StorageError(
            describe_os_error(exc, "go on training")
            + "; the checkpoints written so far are kept (hrm train --resume RUN_DIR continues)"
        ) from None
    finally:
        distributed.teardown(info, finished)


def _run(
    cfg: TrainConfig,
    info: distributed.DistInfo,
    recipe: str | None,
    resume: Path | None,
    on_log: Callable[[Record], None] | None,
) -> TrainResult:
    # -- set up the process
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if info.device.type == "cpu":
        tune_cpu_allocator()

    # -- build the run
    built = build_training(cfg, info)
    head, model = built.head, built.model
    intervals = Intervals.for_run(cfg, built)
    params = built.params
    ema = EMA(model, cfg.ema_rate) if cfg.ema else None
    stream = BatchStream(
        built.train_data, workers=data_workers(cfg, info.device), pin_memory=info.device.type == "cuda"
    )
    noise = ExplorationNoise(cfg.seed + 1, cfg.global_batch_size, model.config.halt_max_steps, info)
    rows_per_slice = cpu_rows_per_slice(model.config, cfg.global_batch_size // info.world_size, info.device)
    run_dir = resume or (Path(cfg.run_dir) if cfg.run_dir else default_run_dir(recipe))
    checkpointer = Checkpointer(
        run_dir, info, built.card, model, built.optimizers, stream, noise, ema, keep=cfg.keep_checkpoints
    )

    # -- restore a checkpoint, or start a new run
    step = 0
    carry: Carry | None = None
    resume_step: int | None = None
    point = checkpointer.restore() if resume is not None else None
    if point is not None:
        step = resume_step = point.step
        carry = point.carry
    else:
        if resume is None:
            create_run_dir(run_dir, cfg, info)
        else:  # killed before its first checkpoint: the run starts again in place, from step 0
            resume_step = 0
            if info.is_main:
                warn(f"--resume {run_dir}: no checkpoint was written yet; starting again from step 0")
        # Each process its own torch RNG stream; the exploration draws come from `noise`, shared by all.
        torch.manual_seed(cfg.seed + info.rank)
    distributed.barrier(info)

    forward = cast(Callable[..., ACTStep], torch.compile(head) if want_compile(cfg, info.device) else head)
    deadline = Deadline(cfg.max_minutes, info)
    log = MetricsLog(run_dir, cfg, info.is_main, resume_step, on_log)
    progress = Progress(intervals.total, step, enabled=info.is_main and cfg.progress)
    result = TrainResult(run_dir=run_dir, step=step, history=log.history)
    eval_data: Any = None
    scorer: Task | None = None
    window = MetricsWindow()
    head.train()
    try:
        for _set_name, batch, global_batch in stream:
            if step >= intervals.total:
                break
            step += 1
            batch = {k: v.to(info.device, non_blocking=True) for k, v in batch.items()}
            if carry is None:
                carry = head.initial_carry(batch)
            lr = built.schedule.apply(built.optimizers, step - 1)

            out = forward(carry, batch, exploration=noise, rows_per_slice=rows_per_slice)
            carry = out.carry
            if not torch.isfinite(out.loss):
                raise NonFiniteLossError(
                    f"the loss became {out.loss.item()} at step {step}; stopping. The last good checkpoint "
                    f"is kept in {run_dir / 'checkpoints'} (try a lower lr)"
                )
            (out.loss / global_batch).backward()
            distributed.all_reduce_grads(params, info)
            for entry in built.optimizers:
                entry.optimizer.step()
                entry.optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            if intervals.logs(step) and deadline.reached():
                intervals = intervals.ending_at(step)

            window.add(out.metrics)
            progress.advance()
            if intervals.logs(step):
                values = window.record(info, lr, global_batch)
                log.write(step, "train", values)
                progress.show_train(values)

            if intervals.evaluates(step):
                if eval_data is None:
                    eval_data = eval_dataset(cfg, info)
                    scorer = scoring_task(eval_data.metadata) if cfg.eval_dataset_score else None
                with ema_weights(model, ema), preserved_rng():
                    evaluated = evaluate(
                        head, eval_data, info, max_batches=cfg.eval_max_batches, collect=scorer is not None
                    )
                head.train()
                result.eval_metrics, result.eval_score = evaluated.metrics, {}
                logged: dict[str, Any] = dict(evaluated.metrics)
                score = score_predictions(scorer, evaluated, Path(eval_data.config.dataset_path), info)
                if score is not None:
                    assert scorer is not None
                    logged[scorer.name] = result.eval_score[scorer.name] = score.summary
                    write_score_files(run_dir / "evaluations" / f"step_{step:07d}", score.files)
                log.write(step, "eval", logged)
                progress.show_eval(step, evaluated.metrics, score_headline(scorer, result.eval_score))

            if intervals.saves(step):
                checkpointer.save(step, carry)
    finally:
        progress.close()
        log.close()
    result.step = step
    return result


def score_headline(task: Task | None, scores: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The values of a task's score that the progress line shows (`Task.score_series`)."""
    if task is None or task.name not in scores:
        return {}
    summary = scores[task.name]
    return {
        f"{task.name} {k}": summary[k] for k in task.score_series if isinstance(summary.get(k), int | float)
    }


def write_score_files(directory: Path, files: dict[str, Any]) -> None:
    """A dataset score's files (name -> JSON content), each written whole or not at all."""
    if not files:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        tmp = directory / f".{name}.tmp"
        tmp.write_text(json.dumps(content))
        tmp.replace(directory / name)


def train_from_cli(recipe: str | None, overrides: list[str], resume: str | None) -> TrainResult:
    """`hrm train RECIPE [key=value ...]`, or `hrm train --resume RUN_DIR [key=value ...]` with the
    run's own config.yaml as the recipe."""
    if resume is not None:
        run_dir = Path(resume)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.exists():
            raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml)")
        cfg = load_config(cfg_path, overrides)
        return train(cfg, recipe=str(cfg_path), resume=run_dir)
    if recipe is None:
        raise ConfigError("give a recipe (e.g. configs/sudoku4_cpu.yaml) or --resume RUN_DIR")
    return train(load_config(recipe, overrides), recipe=recipe)
