"""One episode of a policy as a JSON trace (`hrm agent play`, the viewer's Agent page).

The trace follows `trace_schema.json` beside this file: the level, seed and mission, whether the
policy succeeded and in how many steps (and the bot's steps on the same seed), a `legend` naming
every symbol (objects, colours, door states, actions, sub-goals, directions) so a reader needs no
knowledge of the world, and one frame per step: the whole grid (rows of [object, colour, state]),
the agent's position and direction, what it carries, the action taken with the policy's action
probabilities, its predicted sub-goal and the shadow bot's action. The last frame is the final
state (action null).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hrm.agent import world
from hrm.agent.demos import EpisodeTimeout, bot_episode
from hrm.agent.evaluate import ABLATIONS, run_episodes
from hrm.agent.policy import AgentPolicy
from hrm.errors import ConfigError

TRACE_FORMAT = "hrm-agent-trace/1"
AGENT_TRACE_SCHEMA = Path(__file__).resolve().parent / "trace_schema.json"


def play(
    policy: AgentPolicy,
    level: str,
    seed: int,
    ablation: str | None = None,
    model: str = "",
    max_steps: int | None = None,
) -> dict[str, Any]:
    if ablation is not None and ablation not in ABLATIONS:
        raise ConfigError(f"ablation must be one of {', '.join(ABLATIONS)}")
    result = run_episodes(
        policy, level, [seed], ablation=ablation, shadow=True, record=True, max_steps=max_steps
    )[0]
    env = world.make_env(level)
    mission = str(world.reset(env, seed)["mission"])
    try:
        bot = bot_episode(env, seed, 10_000, 10.0)
        bot_steps: int | None = len(bot.actions) if bot.success else None
    except EpisodeTimeout:
        bot_steps = None
    except Exception:  # the bot's own failure on this seed
        bot_steps = None
    finally:
        env.close()
    return {
        "format": TRACE_FORMAT,
        "level": world.level_name(level),
        "seed": seed,
        "mission": mission,
        "model": model,
        "hierarchy": policy.config.hierarchy,
        "ablation": ablation,
        "success": result.success,
        "steps": result.steps,
        "bot_steps": bot_steps,
        "shadow_agreement": result.agreement / result.shadowed if result.shadowed else None,
        "legend": world.legend(),
        "frames": result.frames,
    }


def write_trace(trace: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trace, separators=(",", ":")))
    return out
