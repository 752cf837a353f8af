"""Behaviour cloning of the BabyAI bot, with the training components the puzzle models use: the run
directory (config.yaml, metrics.jsonl, tensorboard/, checkpoints/step_N/), `save_checkpoint`'s
atomic checkpoints and `--resume`, the warm-up + cosine schedule, EMA, `MetricsLog` and `Progress`.

A step: sample `batch_episodes` demonstrations, replay them without gradient to get the state each
step starts from (the state is carried detached), then one batch of all their steps with gradient:
cross-entropy on the bot's action + `subgoal_weight` x cross-entropy on its sub-goal.

Recipes are YAML files (`configs/agent_*.yaml`) with key=value overrides, e.g.
`hrm agent train configs/agent_unlocklocal.yaml hierarchy=false steps=500`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hrm.agent import demos as demos_mod
from hrm.agent.policy import AgentPolicy, PolicyConfig, card_for, load_policy
from hrm.agent.replay import replay, step_logits
from hrm.errors import ConfigError

RECIPE_PREFIX = "agent_"


class AgentTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    level: str = "UnlockLocal"
    demos: str  # a directory written by `hrm agent demos` (train split)
    eval_demos: str | None = None  # held-out demonstrations for teacher-forced accuracy
    arch: dict[str, Any] = Field(default_factory=dict)  # PolicyConfig fields
    hierarchy: bool = True  # false: the flat baseline of the same size

    batch_episodes: int = 32
    steps: int = 1000
    lr: float = 1e-3
    lr_min_ratio: float = 0.1
    lr_warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    subgoal_weight: float = 1.0
    mirror: bool = False  # each sampled episode also as its left-right reflection, half the time

    ema: bool = False
    ema_rate: float = 0.995
    init_from: str | None = None  # a run, checkpoint or packaged agent to start from
    freeze: Literal["H", "L"] | None = None  # keep one reasoning module fixed (fine-tuning)

    eval_interval: int | None = None  # steps between closed-loop evaluations; None: only at the end
    eval_episodes: int = 50
    seed: int = 0
    threads: int | None = None
    run_dir: str | None = None
    checkpoint_interval: int | None = None  # steps; None: at each evaluation and at the end
    keep_checkpoints: int = 3
    log_interval: int = 10
    tensorboard: bool = True
    wandb: bool = False
    project_name: str | None = None
    progress: bool = True

    def policy_config(self) -> PolicyConfig:
        try:
            return PolicyConfig(**{**self.arch, "hierarchy": self.hierarchy})
        except ValidationError as exc:
            raise ConfigError(f"arch: {exc.errors()[0]['msg']}") from None


def load_agent_config(recipe: str | Path | None, overrides: list[str]) -> AgentTrainConfig:
    from hrm.config import apply_overrides, read_yaml, resolve_recipe

    data: dict[str, Any] = {}
    if recipe is not None:
        p = resolve_recipe(recipe)
        loaded = read_yaml(p)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a recipe must be a mapping")
        data.update(loaded)
    data = apply_overrides(data, overrides)
    try:
        cfg = AgentTrainConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{recipe or 'config'}: {where}: {err['msg']}") from None
    cfg.policy_config()
    return cfg


FINE_TUNE_STEPS = 300  # the fine-tuning benchmark's and `hrm demo`'s


def fine_tune_config(
    base: str | Path,
    demos: str | Path,
    run_dir: str | Path,
    *,
    level: str,
    steps: int = FINE_TUNE_STEPS,
    init: bool = True,
    hierarchy: bool | None = None,
    freeze: str | None = None,
    eval_demos: str | Path | None = None,
    seed: int = 0,
    overrides: list[str] | None = None,
) -> AgentTrainConfig:
    """A quiet one-thread fine-tuning run with the architecture of the policy `base`, starting from its
    weights (`init`) unless the hierarchy asked for differs from base's (then the other model of the
    same size, from scratch), with the reflection augmentation (`mirror`: it matters most when the
    demonstrations are few; README, "Fine-tuning"). Later `overrides` win."""
    arch = load_policy(base).policy.config.model_dump()
    base_hierarchy = bool(arch.pop("hierarchy"))
    hierarchy = base_hierarchy if hierarchy is None else hierarchy
    items = [
        f"level={level}",
        f"demos={demos}",
        f"run_dir={run_dir}",
        f"steps={steps}",
        f"seed={seed}",
        f"hierarchy={str(hierarchy).lower()}",
        "lr_warmup_steps=10",
        "mirror=true",
        "eval_interval=null",
        "eval_episodes=1",
        "progress=false",
        "tensorboard=false",
        "threads=1",
        *[f"arch.{k}={v}" for k, v in arch.items()],
    ]
    if eval_demos is not None:
        items.append(f"eval_demos={eval_demos}")
    if init and hierarchy == base_hierarchy:
        items.append(f"init_from={base}")
    if freeze:
        items.append(f"freeze={freeze}")
    return load_agent_config(None, items + list(overrides or []))


@dataclass
class AgentRunResult:
    run_dir: Path
    step: int
    eval_metrics: dict[str, Any] = field(default_factory=dict)


def _run_dir(cfg: AgentTrainConfig) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir)
    return Path("runs") / f"agent-{cfg.level.lower()}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    cfg: AgentTrainConfig,
    resume: bool = False,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> AgentRunResult:
    from hrm.checkpoint import TRAIN_STATE, latest_checkpoint, load_state, read_weights, save_checkpoint
    from hrm.training.build import LRSchedule, ScheduledOptimizer
    from hrm.training.ema import EMA, ema_weights
    from hrm.training.metrics import MetricsLog, Progress
    from hrm.training.state import capture_rng, preserved_rng, restore_rng, seed_all

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_all(cfg.seed)
    run_dir = _run_dir(cfg)
    train_set = demos_mod.load(cfg.demos)
    eval_set = demos_mod.load(cfg.eval_demos) if cfg.eval_demos else None
    if eval_set is not None:
        demos_mod.check_disjoint(train_set, eval_set)

    policy = AgentPolicy(cfg.policy_config())
    if cfg.init_from and not resume:
        source = load_policy(cfg.init_from)
        if source.policy.config != policy.config:
            raise ConfigError(f"init_from {cfg.init_from}: its architecture differs from this run's")
        policy.load_state_dict(source.policy.state_dict())
    if cfg.freeze:
        for p in policy.module_parameters(cfg.freeze):
            p.requires_grad_(False)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    optimizers = [ScheduledOptimizer(optimizer, cfg.lr)]
    schedule = LRSchedule(cfg.lr_warmup_steps, cfg.steps, cfg.lr_min_ratio)
    ema = EMA(policy, cfg.ema_rate) if cfg.ema else None
    sampler = np.random.default_rng(cfg.seed)
    card = card_for(
        policy, {"level": cfg.level, "demos": train_set.meta.get("episodes"), "init_from": cfg.init_from}
    )

    step = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise ConfigError(f"--resume {run_dir}: no complete checkpoint to resume from")
        state = load_state(ckpt / TRAIN_STATE)
        policy.load_state_dict(read_weights(ckpt / "model.safetensors"))
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_shadow(read_weights(ckpt / "ema.safetensors"))
        sampler.bit_generator.state = json.loads(state["sampler"])
        restore_rng(state["rng"])
        step = int(state["step"])
    else:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"run directory {run_dir} already exists; pick another run_dir or --resume it")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))

    log = MetricsLog(run_dir, cfg, enabled=True, resume_step=step if resume else None, on_log=on_log)
    bar = Progress(cfg.steps, step, cfg.progress)

    def checkpoint() -> None:
        train_state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "sampler": json.dumps(sampler.bit_generator.state),
            "rng": capture_rng(),
        }
        ema_state = ema.full_state(policy) if ema is not None else None
        save_checkpoint(
            run_dir, step, policy, card, train_state, ema_state=ema_state, keep=cfg.keep_checkpoints
        )

    def evaluate_now() -> dict[str, Any]:
        from hrm.agent.evaluate import eval_seeds, run_episodes, summarize, teacher_forced

        with preserved_rng(), ema_weights(policy, ema):
            bot_steps = eval_set.bot_steps() if eval_set is not None else None
            metrics: dict[str, Any] = summarize(
                run_episodes(policy, cfg.level, eval_seeds(cfg.eval_episodes), shadow=False), bot_steps
            )
            if eval_set is not None:
                metrics.update(teacher_forced(policy, eval_set))
        policy.train()
        return metrics

    sums: dict[str, float] = {}
    window = 0
    started = time.perf_counter()
    last_eval: dict[str, Any] = {}
    policy.train()
    try:
        while step < cfg.steps:
            if should_stop is not None and should_stop():
                break
            lr = schedule.apply(optimizers, step)
            chosen = sampler.choice(train_set.episodes, size=min(cfg.batch_episodes, train_set.episodes))
            mirrored = sampler.random(len(chosen)) < 0.5 if cfg.mirror else None
            r = replay(policy, train_set, chosen, mirrored)
            policy.train()
            action_logits, subgoal_logits = step_logits(policy, r)
            action_loss = F.cross_entropy(action_logits, r.actions)
            subgoal_loss = F.cross_entropy(subgoal_logits, r.subgoals)
            loss = action_loss + cfg.subgoal_weight * subgoal_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(policy)
            step += 1
            bar.advance()
            with torch.no_grad():
                values = {
                    "action_loss": float(action_loss),
                    "subgoal_loss": float(subgoal_loss),
                    "action_accuracy": float((action_logits.argmax(-1) == r.actions).float().mean()),
                    "subgoal_accuracy": float((subgoal_logits.argmax(-1) == r.subgoals).float().mean()),
                }
            if not all(math.isfinite(v) for v in values.values()):
                raise ConfigError(f"step {step}: the loss is not finite ({values}); lower lr")
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            window += 1
            if step % cfg.log_interval == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - started
                record = {k: v / window for k, v in sums.items()}
                record.update(lr=lr, steps_per_s=window / max(elapsed, 1e-9))
                log.write(step, "train", record)
                if bar.bar is not None:
                    bar.bar.set_postfix(
                        loss=f"{record['action_loss']:.3f}", acc=f"{record['action_accuracy']:.3f}"
                    )
                sums, window, started = {}, 0, time.perf_counter()
            at_eval = cfg.eval_interval is not None and step % cfg.eval_interval == 0
            if at_eval or step == cfg.steps:
                last_eval = evaluate_now()
                log.write(step, "eval", last_eval)
                if bar.bar is not None:
                    bar.bar.write(f"step {step}: success {last_eval['success']:.3f}")
            at_ckpt = cfg.checkpoint_interval is not None and step % cfg.checkpoint_interval == 0
            if at_ckpt or at_eval or step == cfg.steps:
                checkpoint()
        if step < cfg.steps:  # stopped early: keep what was learnt
            checkpoint()
    finally:
        bar.close()
        log.close()
    return AgentRunResult(run_dir=run_dir, step=step, eval_metrics=last_eval)


def train_from_cli(recipe: str | None, overrides: list[str], resume: str | None) -> AgentRunResult:
    if resume:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume {resume}: no config.yaml (not an agent run directory)")
        cfg = load_agent_config(saved, overrides)
        cfg.run_dir = str(resume)
        return train(cfg, resume=True)
    return train(load_agent_config(recipe, overrides))
