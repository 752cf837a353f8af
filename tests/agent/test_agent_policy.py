from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm.agent import demos
from hrm.agent.policy import START_ACTION, AgentPolicy, ObsBatch, PolicyConfig, count_parameters
from hrm.agent.replay import replay, step_logits
from hrm.models.hrm import HRMInner


def test_hrm_policy_uses_the_hrm_modules_and_the_flat_baseline_matches_its_size(tiny):
    hrm = AgentPolicy(PolicyConfig(**tiny))
    flat = AgentPolicy(PolicyConfig(**tiny, hierarchy=False))
    assert isinstance(hrm.core, HRMInner)
    assert count_parameters(hrm) == count_parameters(flat)
    c = hrm.config
    assert c.flat_repeats() * (c.H_layers + c.L_layers) == c.block_applications()


@pytest.mark.parametrize("hierarchy", [True, False])
def test_replayed_steps_in_one_batch_equal_the_step_by_step_run(tiny_demos, hierarchy, tiny):
    torch.manual_seed(0)
    policy = AgentPolicy(PolicyConfig(**tiny, hierarchy=hierarchy)).eval()
    ds = demos.load(tiny_demos[0])
    chosen = np.array([2, 0])
    r = replay(policy, ds, chosen)
    batched, _ = step_logits(policy, r)
    rows = []
    with torch.no_grad():
        for e in chosen:
            lo, hi = int(ds.offsets[e]), int(ds.offsets[e + 1])
            state = policy.initial_state(1)
            prev = START_ACTION
            for i in range(lo, hi):
                obs = ObsBatch.from_numpy(
                    ds.images[i : i + 1], ds.directions[i : i + 1], ds.missions[e : e + 1], np.array([prev])
                )
                logits, _, state = policy(obs, state)
                rows.append(logits[0])
                prev = int(ds.actions[i])
    torch.testing.assert_close(
        batched, torch.stack(rows), rtol=1e-3, atol=1e-3
    )  # batched vs single-row float32 sums


def test_the_carried_state_is_detached_and_only_the_last_updates_carry_gradient(tiny_demos, tiny):
    policy = AgentPolicy(PolicyConfig(**tiny))
    ds = demos.load(tiny_demos[0])
    obs = ObsBatch.from_numpy(
        ds.images[:3], ds.directions[:3], ds.missions[[0, 0, 0]], np.full(3, START_ACTION)
    )
    logits, subgoals, (z_H, z_L) = policy(obs, policy.initial_state(3))
    assert not z_H.requires_grad and not z_L.requires_grad
    (logits.sum() + subgoals.sum()).backward()
    assert all(p.grad is not None for p in policy.core.H_level.parameters())
    assert all(p.grad is not None for p in policy.core.L_level.parameters())


def test_reset_rows_restores_the_initial_state_of_one_module(tiny):
    policy = AgentPolicy(PolicyConfig(**tiny))
    z_H, z_L = policy.initial_state(2)
    state = (z_H + 1, z_L + 1)
    h, l = policy.reset_rows(state, torch.tensor([True, False]), "H")
    assert torch.equal(h[0], z_H[0]) and torch.equal(h[1], z_H[1] + 1)
    assert torch.equal(l, z_L + 1)
