"""How well a policy acts: closed-loop episodes on held-out seeds, and teacher-forced accuracy.

- success: the fraction of episodes the policy finishes within the level's own step limit
- steps vs bot: on the episodes the policy finishes, its steps over the bot's on the same seeds
- teacher-forced action / sub-goal accuracy: the policy fed the bot's episodes (the bot's
  observations and previous actions), its argmax against the bot's action and sub-goal
- shadow-bot agreement: while the policy acts, a bot follows along (told the action actually
  taken) and the fraction of steps where the policy did what the bot would have done
- ablations: the same episodes with the H state, the L state, or both, reset at every step
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hrm.agent import demos as demos_mod
from hrm.agent import world
from hrm.agent.policy import START_ACTION, AgentPolicy, ObsBatch
from hrm.agent.replay import replay, step_logits

ABLATIONS: dict[str, str] = {"reset_H": "H", "reset_L": "L", "reset_both": "HL"}


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    agreement: int = 0  # steps where the policy chose the shadow bot's action
    shadowed: int = 0  # steps the shadow bot could judge
    frames: list[dict[str, Any]] = field(default_factory=list)


class _Episode:
    def __init__(self, level: str, seed: int, shadow: bool, record: bool):
        self.env = world.make_env(level)
        self.seed = seed
        self.obs = world.reset(self.env, seed)
        self.limit = int(self.env.unwrapped.max_steps)
        self.bot: Any = world.make_bot(self.env) if shadow else None
        self.result = EpisodeResult(seed=seed, success=False, steps=0)
        self.prev_action = START_ACTION
        self.done = False
        self.record = record

    def shadow_action(self) -> int | None:
        if self.bot is None:
            return None
        try:
            taken = None if self.prev_action == START_ACTION else self.prev_action
            return int(self.bot.replan(taken))
        except Exception:  # the bot cannot follow some states the policy gets into; stop judging
            self.bot = None
            return None


@torch.no_grad()
def run_episodes(
    policy: AgentPolicy,
    level: str,
    seeds: list[int],
    ablation: str | None = None,
    shadow: bool = True,
    record: bool = False,
    max_steps: int | None = None,
) -> list[EpisodeResult]:
    """Greedy closed-loop episodes, all seeds at once (one batched policy call per step)."""
    policy.eval()
    eps = [_Episode(level, s, shadow, record) for s in seeds]
    state = policy.initial_state(len(eps))
    reset_which = ABLATIONS[ablation] if ablation else None
    while True:
        live = [i for i, e in enumerate(eps) if not e.done]
        if not live:
            break
        encoded = [world.encode_obs(eps[i].obs) for i in live]
        obs = ObsBatch.from_numpy(
            np.stack([e.image for e in encoded]),
            np.array([e.direction for e in encoded]),
            np.stack([e.mission for e in encoded]),
            np.array([eps[i].prev_action for i in live]),
        )
        rows = torch.as_tensor(live)
        sub_state = (state[0][rows], state[1][rows])
        if reset_which:
            sub_state = policy.reset_rows(sub_state, torch.ones(len(live), dtype=torch.bool), reset_which)
        logits, sub_logits, (h, l) = policy(obs, sub_state)
        state[0][rows], state[1][rows] = h, l
        probs = torch.softmax(logits, -1)
        chosen = logits.argmax(-1).tolist()
        subgoals = sub_logits.argmax(-1).tolist()
        sub_probs = torch.softmax(sub_logits, -1)
        for k, i in enumerate(live):
            e = eps[i]
            action = int(chosen[k])
            bot_action = e.shadow_action()
            if bot_action is not None:
                e.result.shadowed += 1
                e.result.agreement += int(bot_action == action)
            if e.record:
                e.result.frames.append(
                    {
                        "t": e.result.steps,
                        **world.full_state(e.env),
                        "action": action,
                        "probs": [round(float(p), 4) for p in probs[k]],
                        "subgoal": int(subgoals[k]),
                        "subgoal_probs": [round(float(p), 4) for p in sub_probs[k]],
                        "bot_action": bot_action,
                        "bot_subgoal": world.subgoal_of(e.bot) if e.bot is not None else None,
                    }
                )
            e.obs, reward, terminated, truncated, _ = e.env.step(action)
            e.obs = dict(e.obs)
            e.prev_action = action
            e.result.steps += 1
            if terminated or truncated or (max_steps is not None and e.result.steps >= max_steps):
                e.done = True
                e.result.success = bool(terminated and reward > 0)
                if e.record:
                    e.result.frames.append({"t": e.result.steps, **world.full_state(e.env), "action": None})
                e.env.close()
    return [e.result for e in eps]


def eval_seeds(episodes: int, first: int = 0) -> list[int]:
    """Held-out seeds: the test split's, never used by `hrm agent demos` for training."""
    base = demos_mod.seed_base("test")
    return list(range(base + first, base + first + episodes))


@torch.no_grad()
def teacher_forced(policy: AgentPolicy, demos: demos_mod.DemoSet, batch: int = 64) -> dict[str, float]:
    policy.eval()
    right_a = right_s = total = 0
    for lo in range(0, demos.episodes, batch):
        r = replay(policy, demos, np.arange(lo, min(lo + batch, demos.episodes)))
        a, s = step_logits(policy, r)
        right_a += int((a.argmax(-1) == r.actions).sum())
        right_s += int((s.argmax(-1) == r.subgoals).sum())
        total += len(r.actions)
    return {"action_accuracy": right_a / max(total, 1), "subgoal_accuracy": right_s / max(total, 1)}


def summarize(results: list[EpisodeResult], bot_steps: dict[int, int] | None = None) -> dict[str, float]:
    n = max(len(results), 1)
    won = [r for r in results if r.success]
    out = {
        "success": len(won) / n,
        "mean_steps": float(np.mean([r.steps for r in results])) if results else 0.0,
        "shadow_agreement": sum(r.agreement for r in results) / max(sum(r.shadowed for r in results), 1),
    }
    if bot_steps:
        pairs = [(r.steps, bot_steps[r.seed]) for r in won if r.seed in bot_steps]
        if pairs:
            out["steps_vs_bot"] = sum(a for a, _ in pairs) / sum(b for _, b in pairs)
    return out


def evaluate_policy(
    policy: AgentPolicy,
    level: str,
    episodes: int = 200,
    ablations: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Everything above, on `episodes` held-out seeds of `level`."""
    held_out = demos_mod.generate(level, episodes, split="test", progress=progress)
    seeds = held_out.seeds.tolist()
    bot_steps = held_out.bot_steps()
    report: dict[str, Any] = {"level": world.level_name(level), "episodes": len(seeds)}
    report.update(summarize(run_episodes(policy, level, seeds), bot_steps))
    report["bot_failures"] = len(held_out.meta["failures"])
    report.update(teacher_forced(policy, held_out))
    if ablations and policy.config.hierarchy:
        report["ablations"] = {
            name: summarize(run_episodes(policy, level, seeds, ablation=name, shadow=False), bot_steps)[
                "success"
            ]
            for name in ABLATIONS
        }
    return report
