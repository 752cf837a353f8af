"""Teacher forcing over recorded episodes: the policy sees the bot's observations and previous
actions, carrying its state from step to step, for a batch of episodes at once.

`replay` runs the episodes step by step without gradient and returns, for every recorded step, the
state the policy entered it with; because the carried state is detached, training can then take
all those steps as one batch with gradient (`step_logits`) and get exactly the gradient of the
step-by-step run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hrm.agent import world
from hrm.agent.demos import DemoSet
from hrm.agent.policy import START_ACTION, AgentPolicy, ObsBatch, State


@dataclass
class Replay:
    obs: ObsBatch  # every step of the chosen episodes, in episode order
    actions: torch.Tensor  # [N] the bot's actions
    subgoals: torch.Tensor  # [N] the bot's sub-goals
    z_H: torch.Tensor  # [N, TOKENS, d] the state each step starts from
    z_L: torch.Tensor
    episode: torch.Tensor  # [N] which chosen episode (0..len(indices)-1) a step belongs to


def _steps_of(demos: DemoSet, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The global step ids of the chosen episodes, each step's episode position and its time index."""
    ids, owner, times = [], [], []
    for k, e in enumerate(indices):
        lo, hi = int(demos.offsets[e]), int(demos.offsets[e + 1])
        ids.append(np.arange(lo, hi))
        owner.append(np.full(hi - lo, k))
        times.append(np.arange(hi - lo))
    return np.concatenate(ids), np.concatenate(owner), np.concatenate(times)


def _mirror(
    steps: np.ndarray, images: np.ndarray, directions: np.ndarray, missions: np.ndarray, *actions: np.ndarray
) -> None:
    """Reflect the chosen steps' worlds left-right, in place (see world.MIRROR_DIRECTION)."""
    images[steps] = images[steps][:, ::-1]
    directions[steps] = world.MIRROR_DIRECTION[directions[steps]]
    missions[steps] = world.MIRROR_WORD[missions[steps]]
    for a in actions:
        a[steps] = world.MIRROR_ACTION[a[steps]]


@torch.no_grad()
def replay(
    policy: AgentPolicy, demos: DemoSet, indices: np.ndarray, mirrored: np.ndarray | None = None
) -> Replay:
    """The chosen episodes replayed; `mirrored[k]` true: episode k as its left-right reflection."""
    ids, owner, times = _steps_of(demos, indices)
    prev = np.where(times == 0, START_ACTION, demos.actions[np.maximum(ids - 1, 0)].astype(np.int64))
    images, directions = demos.images[ids], demos.directions[ids].astype(np.int64)
    missions, actions = demos.missions[indices][owner], demos.actions[ids].astype(np.int64)
    if mirrored is not None:
        _mirror(np.nonzero(mirrored[owner])[0], images, directions, missions, prev, actions)
    obs = ObsBatch.from_numpy(images, directions, missions, prev)
    d = policy.config.hidden_size
    from hrm.agent.policy import TOKENS

    z_H = torch.empty(len(ids), TOKENS, d)
    z_L = torch.empty(len(ids), TOKENS, d)
    state: State = policy.initial_state(len(indices))
    lengths = np.diff(demos.offsets)[indices]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for t in range(int(lengths.max())):
        alive = np.nonzero(lengths > t)[0]
        rows = starts[alive] + t
        z_H[rows], z_L[rows] = state[0][alive], state[1][alive]
        sub = ObsBatch(
            image=obs.image[rows],
            direction=obs.direction[rows],
            mission=obs.mission[rows],
            prev_action=obs.prev_action[rows],
        )
        _, _, (h, l) = policy(sub, (state[0][alive], state[1][alive]))
        new_h, new_l = state[0].clone(), state[1].clone()
        new_h[alive], new_l[alive] = h, l
        state = (new_h, new_l)
    return Replay(
        obs=obs,
        actions=torch.as_tensor(actions, dtype=torch.long),
        subgoals=torch.as_tensor(demos.subgoals[ids], dtype=torch.long),
        z_H=z_H,
        z_L=z_L,
        episode=torch.as_tensor(owner),
    )


def step_logits(policy: AgentPolicy, r: Replay) -> tuple[torch.Tensor, torch.Tensor]:
    """Action and sub-goal logits of every replayed step, in one batch (with gradient if enabled)."""
    actions, subgoals, _ = policy(r.obs, (r.z_H, r.z_L))
    return actions, subgoals
