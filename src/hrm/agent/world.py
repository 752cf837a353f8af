"""The agent's world: BabyAI levels of MiniGrid, and how an observation becomes tensors.

An observation is the agent's egocentric 7x7 view, each cell three symbols (object, colour, state),
the direction it faces (0-3) and the mission text. `encode_obs` turns it into integer arrays that
the policy embeds; missions become word ids over BabyAI's fixed vocabulary (`MISSION_WORDS`).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hrm.errors import ConfigError

# The levels we name, each a registered MiniGrid environment id.
AGENT_LEVELS: dict[str, str] = {
    "GoToRedBall": "BabyAI-GoToRedBall-v0",
    "GoToLocal": "BabyAI-GoToLocal-v0",
    "PickupLoc": "BabyAI-PickupLoc-v0",
    "OpenDoor": "BabyAI-OpenDoor-v0",
    "UnlockLocal": "BabyAI-UnlockLocal-v0",
    "UnlockLocalDist": "BabyAI-UnlockLocalDist-v0",
    "UnlockPickup": "BabyAI-UnlockPickup-v0",
    "KeyCorridorS3R1": "BabyAI-KeyCorridorS3R1-v0",
    "KeyCorridorS3R2": "BabyAI-KeyCorridorS3R2-v0",
    "KeyCorridorS3R3": "BabyAI-KeyCorridorS3R3-v0",
}

VIEW = 7  # the egocentric view is VIEW x VIEW cells
CELL_CHANNELS = 3  # object, colour, state
OBJECT_COUNT, COLOR_COUNT, STATE_COUNT = 11, 6, 3
ACTION_NAMES: tuple[str, ...] = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
DONE = ACTION_NAMES.index("done")

# The bot's sub-goals, as the policy's sub-goal head predicts them: the top of the bot's plan stack
# after `replan()`, named by what it is for (see `subgoal_of`). "Other": an empty plan, closing a
# door, or going to a bare position (not one it explores).
SUBGOALS: tuple[str, ...] = (
    "GoToKey", "PickupKey", "GoToDoor", "OpenDoor", "GoToObj", "PickupObj", "Drop", "Explore", "Other",
)  # fmt: skip
_OTHER = SUBGOALS.index("Other")

PAD, UNK = 0, 1
MISSION_WORDS: tuple[str, ...] = (
    "<pad>", "<unk>", "go", "to", "the", "a", "red", "green", "blue", "purple", "yellow", "grey",
    "ball", "box", "key", "door", "object", "open", "pick", "up", "put", "next", "and", "then",
    "after", "you", "first", "behind", "in", "front", "of", "on", "your", "left", "right", "unlock",
)  # fmt: skip
MISSION_LEN = 24
_WORD_ID = {w: i for i, w in enumerate(MISSION_WORDS)}


def env_id(level: str) -> str:
    """The MiniGrid environment id of a level name (or of a full `BabyAI-...-v0` id)."""
    if level in AGENT_LEVELS:
        return AGENT_LEVELS[level]
    if level.startswith("BabyAI-"):
        return level
    raise ConfigError(
        f"unknown level {level!r}; known levels: {', '.join(AGENT_LEVELS)} (or a BabyAI-... id)"
    )


def level_name(level: str) -> str:
    """The short name of a level (`BabyAI-UnlockLocal-v0` -> `UnlockLocal`)."""
    for name, full in AGENT_LEVELS.items():
        if level in (name, full):
            return name
    return level


def require_minigrid() -> None:
    try:
        import minigrid  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the agent needs MiniGrid: pip install 'hierarchical-reasoning-model[agent]'"
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Some levels print while they sample a layout; keep the terminal (and progress bars) clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def make_env(level: str) -> Any:
    require_minigrid()
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the BabyAI levels)

    with _quiet():
        return gym.make(env_id(level))


def reset(env: Any, seed: int) -> dict[str, Any]:
    with _quiet():
        obs, _ = env.reset(seed=seed)
    return dict(obs)


def tokenize_mission(mission: str) -> np.ndarray:
    """Word ids of a mission, padded (or cut) to MISSION_LEN."""
    words = re.findall(r"[a-z]+", mission.lower())[:MISSION_LEN]
    ids = np.full(MISSION_LEN, PAD, dtype=np.int64)
    ids[: len(words)] = [_WORD_ID.get(w, UNK) for w in words]
    return ids


@dataclass
class EncodedObs:
    image: np.ndarray  # [7, 7, 3] uint8 (object, colour, state)
    direction: int  # 0..3
    mission: np.ndarray  # [MISSION_LEN] int64


def encode_obs(obs: dict[str, Any]) -> EncodedObs:
    image = np.asarray(obs["image"], dtype=np.uint8)
    if image.shape != (VIEW, VIEW, CELL_CHANNELS):
        raise ConfigError(f"expected a {VIEW}x{VIEW}x{CELL_CHANNELS} view, got {image.shape}")
    return EncodedObs(image=image, direction=int(obs["direction"]), mission=tokenize_mission(obs["mission"]))


def _target_type(bot: Any, subgoal: Any) -> str | None:
    """The object type a bot sub-goal is about: its described or referenced object, or for a bare
    position (and for Pickup, which has none) whatever lies there / in front of the agent."""
    datum = subgoal.datum
    if datum is not None and hasattr(datum, "type"):  # an ObjDesc (type None: any) or a WorldObj
        return datum.type if isinstance(datum.type, str) else None
    env = bot.mission.unwrapped
    pos = env.front_pos if datum is None else tuple(datum)
    w, h = env.grid.width, env.grid.height
    if not (0 <= pos[0] < w and 0 <= pos[1] < h):
        return None
    cell = env.grid.get(int(pos[0]), int(pos[1]))
    return None if cell is None else str(cell.type)


# A world reflected left-right (x -> width-1-x) is another valid world of the same level: each
# egocentric view is flipped along its x axis, facing right and facing left swap, turning left and
# turning right swap, and so do the words "left" and "right". Sub-goals are unchanged.
MIRROR_DIRECTION = np.array([2, 1, 0, 3])
MIRROR_ACTION = np.arange(len(ACTION_NAMES) + 1)  # (+1: the policy's "no previous action")
MIRROR_ACTION[[ACTION_NAMES.index("left"), ACTION_NAMES.index("right")]] = [
    ACTION_NAMES.index("right"),
    ACTION_NAMES.index("left"),
]
MIRROR_WORD = np.arange(len(MISSION_WORDS))
MIRROR_WORD[[MISSION_WORDS.index("left"), MISSION_WORDS.index("right")]] = [
    MISSION_WORDS.index("right"),
    MISSION_WORDS.index("left"),
]


def subgoal_of(bot: Any) -> int:
    """The bot's current sub-goal as an index of SUBGOALS: the top of its plan stack, named by kind
    (GoNextTo, Pickup, Open, Drop, Explore) and, for going and picking up, by the object's type."""
    if not bot.stack:
        return _OTHER
    top = bot.stack[-1]
    name = type(top).__name__.removesuffix("Subgoal")
    if name == "GoNextTo":
        if top.reason == "Explore":
            return SUBGOALS.index("Explore")
        target = _target_type(bot, top)
        if target == "key":
            return SUBGOALS.index("GoToKey")
        if target == "door":
            return SUBGOALS.index("GoToDoor")
        return SUBGOALS.index("GoToObj") if target in ("ball", "box") else _OTHER
    if name == "Pickup":
        return SUBGOALS.index("PickupKey" if _target_type(bot, top) == "key" else "PickupObj")
    if name == "Open":
        return SUBGOALS.index("OpenDoor")
    if name in ("Drop", "Explore"):
        return SUBGOALS.index(name)
    return _OTHER


def make_bot(env: Any) -> Any:
    from minigrid.utils.baby_ai_bot import BabyAIBot

    return BabyAIBot(env)


def full_state(env: Any) -> dict[str, Any]:
    """The whole grid (for the viewer), the agent's pose and what it carries."""
    u = env.unwrapped
    grid = u.grid.encode()  # [W, H, 3]
    carrying = u.carrying.encode() if u.carrying is not None else None
    return {
        "grid": grid.transpose(1, 0, 2).tolist(),  # rows (y) of columns (x)
        "agent": [int(u.agent_pos[0]), int(u.agent_pos[1])],
        "dir": int(u.agent_dir),
        "carrying": None if carrying is None else [int(v) for v in carrying],
    }


# How a viewer draws each object symbol: a shape ("none", "fill", "frame", "circle", "square",
# "glyph") and a short label; door states as a mark; directions as arrows.
OBJECT_DRAW: dict[str, tuple[str, str]] = {
    "unseen": ("none", ""),
    "empty": ("none", ""),
    "wall": ("fill", ""),
    "floor": ("none", ""),
    "door": ("frame", ""),
    "key": ("glyph", "⚷"),
    "ball": ("circle", ""),
    "box": ("square", ""),
    "goal": ("fill", "★"),
    "lava": ("fill", "≈"),
    "agent": ("none", ""),
}
STATE_MARKS: dict[str, str] = {"open": "", "closed": "▮", "locked": "🔒"}
ARROWS = ("▶", "▼", "◀", "▲")


def legend() -> dict[str, Any]:
    """What the symbols mean, for anything that draws a grid (the viewer reads this, not names)."""
    from minigrid.core.constants import COLOR_TO_IDX, COLORS, OBJECT_TO_IDX, STATE_TO_IDX

    return {
        "objects": [k for k, _ in sorted(OBJECT_TO_IDX.items(), key=lambda kv: kv[1])],
        "colors": [k for k, _ in sorted(COLOR_TO_IDX.items(), key=lambda kv: kv[1])],
        "rgb": {k: [int(c) for c in COLORS[k]] for k in COLOR_TO_IDX},
        "states": [k for k, _ in sorted(STATE_TO_IDX.items(), key=lambda kv: kv[1])],
        "actions": list(ACTION_NAMES),
        "subgoals": list(SUBGOALS),
        "directions": ["right", "down", "left", "up"],
        "arrows": list(ARROWS),
        "draw": [
            dict(zip(("shape", "label"), OBJECT_DRAW.get(k, ("glyph", k[:1].upper()))))
            for k, _ in sorted(OBJECT_TO_IDX.items(), key=lambda kv: kv[1])
        ],
        "state_marks": [
            STATE_MARKS.get(k, "") for k, _ in sorted(STATE_TO_IDX.items(), key=lambda kv: kv[1])
        ],
    }
