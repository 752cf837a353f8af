"""The agent's policies: HRM's H and L modules (`hrm.models.hrm.HRMInner`) as a recurrent policy,
and a flat baseline of the same size and compute.

Per environment step:

    view 7x7x3 ──> cell embeddings (object + colour + state) ──> 2 conv layers ──> one token
    direction, mission words (mean), previous action ──> one token each          x: [B, 4, d]
    (z_H, z_L) from the previous step, detached ──> HRMInner.reason(z_H, z_L, x): H_cycles x
        (L_cycles L updates, then one H update), only the last L and H update with gradient
    z_H[:, 0] ──> action head (7 actions) and sub-goal head (the bot's sub-goals)

The state is carried across the steps of an episode and never back-propagated through (each step's
loss reaches only that step's one-step gradient), so training can replay an episode without
gradient to collect the states and then take every step of every episode in one batch.

The flat baseline (`hierarchy: false`) has one state z and one module of H_layers + L_layers blocks,
applied as many times as makes the same number of block applications as HRM's segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from hrm.agent import world
from hrm.errors import CheckpointError
from hrm.models.hrm import HRMConfig, HRMInner
from hrm.models.layers import Block, ReasoningModule, trunc_normal_

TOKENS = 4  # view, direction, mission, previous action
START_ACTION = len(world.ACTION_NAMES)  # the "previous action" of an episode's first step
MODEL_NAME = "hrm-agent"


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden_size: int = 64
    num_heads: int = 4
    expansion: float = 2.0
    H_layers: int = 1
    L_layers: int = 1
    H_cycles: int = 2
    L_cycles: int = 2
    cell_dim: int = 16
    conv_channels: int = 32
    hierarchy: bool = True
    rms_norm_eps: float = 1e-5

    @model_validator(mode="after")
    def _check(self) -> PolicyConfig:
        for name in ("hidden_size", "num_heads", "H_layers", "L_layers", "H_cycles", "L_cycles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        return self

    def block_applications(self) -> int:
        """Blocks applied per environment step by the HRM policy."""
        return self.H_cycles * (self.L_cycles * self.L_layers + self.H_layers)

    def flat_repeats(self) -> int:
        return math.ceil(self.block_applications() / (self.H_layers + self.L_layers))


@dataclass
class ObsBatch:
    image: torch.Tensor  # [B, 7, 7, 3] long
    direction: torch.Tensor  # [B] long
    mission: torch.Tensor  # [B, MISSION_LEN] long
    prev_action: torch.Tensor  # [B] long (START_ACTION at an episode's first step)

    @staticmethod
    def from_numpy(
        image: np.ndarray, direction: np.ndarray, mission: np.ndarray, prev_action: np.ndarray
    ) -> ObsBatch:
        return ObsBatch(
            image=torch.as_tensor(np.asarray(image), dtype=torch.long),
            direction=torch.as_tensor(np.asarray(direction), dtype=torch.long),
            mission=torch.as_tensor(np.asarray(mission), dtype=torch.long),
            prev_action=torch.as_tensor(np.asarray(prev_action), dtype=torch.long),
        )


class Encoder(nn.Module):
    """An observation as TOKENS vectors of width d."""

    def __init__(self, c: PolicyConfig):
        super().__init__()
        d = c.hidden_size
        self.objects = nn.Embedding(world.OBJECT_COUNT, c.cell_dim)
        self.colors = nn.Embedding(world.COLOR_COUNT, c.cell_dim)
        self.states = nn.Embedding(world.STATE_COUNT, c.cell_dim)
        self.conv = nn.Sequential(
            nn.Conv2d(c.cell_dim, c.conv_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c.conv_channels, c.conv_channels, 3, padding=1),
            nn.ReLU(),
        )
        self.view = nn.Linear(c.conv_channels * world.VIEW * world.VIEW, d)
        self.direction = nn.Embedding(4, d)
        self.words = nn.Embedding(len(world.MISSION_WORDS), d, padding_idx=world.PAD)
        self.mission = nn.Linear(d, d)
        self.prev_action = nn.Embedding(START_ACTION + 1, d)
        self.position = nn.Parameter(trunc_normal_(torch.empty(TOKENS, d), std=d**-0.5))

    def forward(self, obs: ObsBatch) -> torch.Tensor:
        img = obs.image
        cells = (
            self.objects(img[..., 0].clamp(0, world.OBJECT_COUNT - 1))
            + self.colors(img[..., 1].clamp(0, world.COLOR_COUNT - 1))
            + self.states(img[..., 2].clamp(0, world.STATE_COUNT - 1))
        )  # [B, 7, 7, cell_dim]
        view = self.view(self.conv(cells.permute(0, 3, 1, 2)).flatten(1))
        words = self.words(obs.mission)
        mask = (obs.mission != world.PAD).unsqueeze(-1).float()
        mission = self.mission((words * mask).sum(1) / mask.sum(1).clamp(min=1.0))
        tokens = torch.stack(
            (view, self.direction(obs.direction), mission, self.prev_action(obs.prev_action)), dim=1
        )
        return tokens + self.position


class FlatCore(nn.Module):
    """The baseline: one state, one module, the same block applications per step as HRM."""

    z_init: torch.Tensor

    def __init__(self, c: PolicyConfig):
        super().__init__()
        self.repeats = c.flat_repeats()
        blocks = [
            Block(c.hidden_size, c.num_heads, c.expansion, c.rms_norm_eps)
            for _ in range(c.H_layers + c.L_layers)
        ]
        self.level = ReasoningModule(blocks)
        self.register_buffer("z_init", trunc_normal_(torch.empty(c.hidden_size), std=1.0))

    def reason(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for _ in range(self.repeats - 1):
                z = self.level(z, x, None)
        return self.level(z, x, None)


State = tuple[torch.Tensor, torch.Tensor]


class AgentPolicy(nn.Module):
    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(c)
        if c.hierarchy:
            core_cfg = HRMConfig(
                seq_len=TOKENS,
                vocab_size=1,
                hidden_size=c.hidden_size,
                num_heads=c.num_heads,
                expansion=c.expansion,
                H_layers=c.H_layers,
                L_layers=c.L_layers,
                H_cycles=c.H_cycles,
                L_cycles=c.L_cycles,
                pos_encodings="none",
                forward_dtype="float32",
                rms_norm_eps=c.rms_norm_eps,
            )
            self.core: nn.Module = HRMInner(core_cfg)
            # The reasoning modules alone: the puzzle model's token embedding and heads are not used.
            for unused in ("embed_tokens", "lm_head", "q_head"):
                delattr(self.core, unused)
        else:
            self.core = FlatCore(c)
        self.action_head = nn.Linear(c.hidden_size, len(world.ACTION_NAMES))
        self.subgoal_head = nn.Linear(c.hidden_size, len(world.SUBGOALS))

    # -- the state ------------------------------------------------------------------------------
    def _inits(self) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.core, HRMInner):
            return self.core.H_init, self.core.L_init
        assert isinstance(self.core, FlatCore)
        return self.core.z_init, self.core.z_init

    def initial_state(self, batch: int) -> State:
        h, l = self._inits()
        shape = (batch, TOKENS, self.config.hidden_size)
        return h.expand(shape).clone(), l.expand(shape).clone()

    def reset_rows(self, state: State, rows: torch.Tensor, which: str = "HL") -> State:
        """Put the rows where `rows` is true back to the initial state (of H, L or both)."""
        h_init, l_init = self._inits()
        flag = rows.view(-1, 1, 1)
        z_H, z_L = state
        if "H" in which:
            z_H = torch.where(flag, h_init, z_H)
        if "L" in which:
            z_L = torch.where(flag, l_init, z_L)
        return z_H, z_L

    # -- one step -------------------------------------------------------------------------------
    def forward(self, obs: ObsBatch, state: State) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Action logits [B, 7], sub-goal logits [B, len(SUBGOALS)] and the next state (detached)."""
        x = self.encoder(obs)
        z_H, z_L = state
        if isinstance(self.core, HRMInner):
            z_H, z_L = self.core.reason(z_H, z_L, x)
        else:
            assert isinstance(self.core, FlatCore)
            z_H = z_L = self.core.reason(z_H, x)
        top = z_H[:, 0]
        return self.action_head(top), self.subgoal_head(top), (z_H.detach(), z_L.detach())

    def module_parameters(self, name: str) -> list[nn.Parameter]:
        """The parameters of the H or L module (for freezing one of them)."""
        if not isinstance(self.core, HRMInner):
            raise CheckpointError("freeze=H|L needs the hierarchical policy (hierarchy: true)")
        level = {"H": self.core.H_level, "L": self.core.L_level}[name]
        return list(level.parameters())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- on disk: the same checkpoint layout as the puzzle models (model.safetensors + model.json) --


def card_for(policy: AgentPolicy, extra: dict[str, Any] | None = None) -> Any:
    from hrm.checkpoint import ModelCard

    return ModelCard(MODEL_NAME, policy.config.model_dump(), extra=extra or {})


@dataclass
class LoadedPolicy:
    policy: AgentPolicy
    extra: dict[str, Any]
    source: Path


def load_policy(path: str | Path, use_ema: bool = True) -> LoadedPolicy:
    """An agent policy from a run dir (latest checkpoint), a checkpoint dir, an exported directory
    or a packaged agent's name (e.g. `agent-unlocklocal`)."""
    from hrm.checkpoint import (
        MODEL_CARD,
        ModelCard,
        named_path,
        read_weights,
        resolve_checkpoint,
        weights_in,
    )

    p = named_path(path)
    if not p.exists():
        raise CheckpointError(f"agent model {str(path)!r} is neither a directory nor a packaged model")
    p = resolve_checkpoint(p)
    if not (p / MODEL_CARD).is_file():
        raise CheckpointError(f"{p}: not a checkpoint (no {MODEL_CARD} inside)")
    card = ModelCard.read(p / MODEL_CARD)
    if card.model != MODEL_NAME:
        raise CheckpointError(f"{p}: a {card.model!r} model, not an agent policy")
    try:
        config = PolicyConfig(**card.config)
    except ValueError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    weights_file = weights_in(p, use_ema)
    policy = AgentPolicy(config)
    try:
        policy.load_state_dict(read_weights(weights_file))
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_file}: does not fit the policy ({str(exc)[:200]})") from None
    policy.eval()
    return LoadedPolicy(policy=policy, extra=dict(card.extra or {}), source=weights_file)
