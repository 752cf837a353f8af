"""Bot demonstrations: the BabyAI bot solves a level, seed after seed, and every step it takes is
recorded with the observation it saw and the sub-goal it was working on.

On-disk format (a directory, written to `.NAME.tmp` and renamed into place, so a crash never leaves a
half-written set):

    DIR/demos.npz   images    uint8 [N, 7, 7, 3]  the egocentric view before each step
                    directions uint8 [N]          the direction faced (0 right, 1 down, 2 left, 3 up)
                    actions   uint8 [N]           the bot's action (world.ACTION_NAMES)
                    subgoals  uint8 [N]           the bot's sub-goal at that step (world.SUBGOALS)
                    missions  int64 [E, 24]       each episode's mission as word ids (world.MISSION_WORDS)
                    offsets   int64 [E + 1]       episode e is steps offsets[e] .. offsets[e+1]-1
                    seeds     int64 [E]           the environment seed of each episode
    DIR/meta.json   format, level, env_id, split, seeds tried, episodes, steps, failures (each with
                    its seed and reason), the watchdog's caps, seconds taken

Seeds: the `train` split uses seeds 0, 1, 2, ... and the `test` split TEST_SEED_BASE + 0, 1, ...,
so held-out episodes are never trained on (`check_disjoint`). An episode the bot does not finish
(it fails, raises, exceeds the step cap or the wall-time cap) is counted as a failure, reported, and
replaced by the next seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm.agent import world
from hrm.errors import ConfigError, DataError

FORMAT = "hrm-agent-demos/2"  # 2: the named sub-goals of world.SUBGOALS
DEMOS_FILE = "demos.npz"
META_FILE = "meta.json"
TEST_SEED_BASE = 1_000_000
# The watchdog's bounds: BabyAI's own step limits are in the hundreds; a bot episode takes milliseconds.
MAX_EPISODE_STEPS = 100_000
MAX_EPISODE_SECONDS = 3600.0
SPLITS = ("train", "test")


def seed_base(split: str) -> int:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    return 0 if split == "train" else TEST_SEED_BASE


class EpisodeTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Interrupt a bot stuck inside one call after `seconds` (main thread on POSIX; elsewhere the
    per-step clock check below is the only cap)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise EpisodeTimeout(f"over {seconds:g}s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Episode:
    seed: int
    mission: str
    images: list[np.ndarray] = field(default_factory=list)
    directions: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    subgoals: list[int] = field(default_factory=list)
    success: bool = False


def bot_episode(env: Any, seed: int, max_steps: int, time_limit_s: float) -> Episode:
    """The bot's episode on `seed`; raises EpisodeTimeout or the bot's own error when it fails."""
    obs = world.reset(env, seed)
    max_steps = min(max_steps, int(env.unwrapped.max_steps) or max_steps)
    bot = world.make_bot(env)
    ep = Episode(seed=seed, mission=str(obs["mission"]))
    started = time.monotonic()
    with _alarm(time_limit_s):
        for _ in range(max_steps):
            action = int(bot.replan())
            enc = world.encode_obs(obs)
            ep.images.append(enc.image)
            ep.directions.append(enc.direction)
            ep.actions.append(action)
            ep.subgoals.append(world.subgoal_of(bot))
            obs, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                ep.success = bool(terminated and reward > 0)
                return ep
            if time.monotonic() - started > time_limit_s:
                raise EpisodeTimeout(f"over {time_limit_s:g}s")
    raise EpisodeTimeout(f"over {max_steps} steps")


@dataclass
class DemoSet:
    """Demonstrations in memory (the arrays of demos.npz) and their meta."""

    images: np.ndarray
    directions: np.ndarray
    actions: np.ndarray
    subgoals: np.ndarray
    missions: np.ndarray
    offsets: np.ndarray
    seeds: np.ndarray
    meta: dict[str, Any]

    @property
    def episodes(self) -> int:
        return len(self.seeds)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def bot_steps(self) -> dict[int, int]:
        """The bot's steps on each seed (what `evaluate.summarize` compares a policy's with)."""
        return dict(zip(self.seeds.tolist(), self.lengths().tolist()))


def generate(
    level: str,
    episodes: int,
    split: str = "train",
    max_steps: int = 500,
    time_limit_s: float = 10.0,
    max_failures: int | None = None,
    progress: bool = True,
) -> DemoSet:
    """`episodes` successful bot episodes on consecutive seeds of `split`."""
    if episodes < 1:
        raise ConfigError("episodes must be at least 1")
    if not 1 <= max_steps <= MAX_EPISODE_STEPS:
        raise ConfigError(
            f"the watchdog's steps per episode must be 1 to {MAX_EPISODE_STEPS}, got {max_steps}"
        )
    if not 0 < time_limit_s <= MAX_EPISODE_SECONDS:  # also false for NaN
        raise ConfigError(
            f"the watchdog's seconds per episode must be above 0 and at most {MAX_EPISODE_SECONDS}, "
            f"got {time_limit_s}"
        )
    if episodes >= TEST_SEED_BASE:
        raise ConfigError(
            f"at most {TEST_SEED_BASE - 1} episodes per split (the splits' seeds must not meet)"
        )
    env = world.make_env(level)
    budget = max_failures if max_failures is not None else max(10, episodes // 2)
    base = seed_base(split)
    kept: list[Episode] = []
    failures: list[dict[str, Any]] = []
    started = time.monotonic()
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes, desc=f"demos {world.level_name(level)}", unit="ep", dynamic_ncols=True)
    seed = base
    try:
        while len(kept) < episodes:
            try:
                ep = bot_episode(env, seed, max_steps, time_limit_s)
                reason = None if ep.success else "the bot did not reach the goal"
            except EpisodeTimeout as exc:
                reason = f"watchdog: {exc}"
            except Exception as exc:  # the bot's own failures (e.g. DisappearedBoxError)
                reason = f"bot error: {type(exc).__name__}: {exc}"
            if reason is None:
                kept.append(ep)
                if bar is not None:
                    bar.update(1)
            else:
                failures.append({"seed": seed, "reason": reason})
                if bar is not None:
                    bar.set_postfix(failures=len(failures))
                if len(failures) > budget:
                    raise DataError(
                        f"{world.level_name(level)}: {len(failures)} bot failures before {episodes} "
                        f"episodes (last: seed {seed}, {reason})"
                    )
            seed += 1
    finally:
        if bar is not None:
            bar.close()
        env.close()
    lengths = [len(e.actions) for e in kept]
    meta = {
        "format": FORMAT,
        "level": world.level_name(level),
        "env_id": world.env_id(level),
        "split": split,
        "seed_first": base,
        "seed_last": seed - 1,
        "episodes": len(kept),
        "steps": int(sum(lengths)),
        "failures": failures,
        "max_steps": max_steps,
        "time_limit_s": time_limit_s,
        "seconds": round(time.monotonic() - started, 2),
    }
    return DemoSet(
        images=np.stack([im for e in kept for im in e.images]).astype(np.uint8),
        directions=np.array([d for e in kept for d in e.directions], dtype=np.uint8),
        actions=np.array([a for e in kept for a in e.actions], dtype=np.uint8),
        subgoals=np.array([s for e in kept for s in e.subgoals], dtype=np.uint8),
        missions=np.stack([world.tokenize_mission(e.mission) for e in kept]),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        seeds=np.array([e.seed for e in kept], dtype=np.int64),
        meta=meta,
    )


def save(demos: DemoSet, out: str | Path, overwrite: bool = False) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists (pass --overwrite to replace it)")
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    np.savez(
        tmp / DEMOS_FILE,
        images=demos.images,
        directions=demos.directions,
        actions=demos.actions,
        subgoals=demos.subgoals,
        missions=demos.missions,
        offsets=demos.offsets,
        seeds=demos.seeds,
    )
    (tmp / META_FILE).write_text(json.dumps(demos.meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def load(path: str | Path) -> DemoSet:
    path = Path(path)
    if not (path / DEMOS_FILE).is_file() or not (path / META_FILE).is_file():
        raise DataError(f"{path}: not a demonstration directory (no {DEMOS_FILE} and {META_FILE})")
    try:
        meta = json.loads((path / META_FILE).read_text())
        with np.load(path / DEMOS_FILE) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the demonstrations ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        demos = DemoSet(meta=meta, **arrays)
    except TypeError as exc:
        raise DataError(f"{path}: {exc}") from None
    n = int(demos.offsets[-1])
    if any(len(a) != n for a in (demos.images, demos.directions, demos.actions, demos.subgoals)):
        raise DataError(f"{path}: step arrays disagree with offsets (expected {n} steps)")
    if len(demos.missions) != demos.episodes or len(demos.offsets) != demos.episodes + 1:
        raise DataError(f"{path}: episode arrays disagree")
    return demos


def check_disjoint(train: DemoSet, test: DemoSet) -> None:
    shared = set(train.seeds.tolist()) & set(test.seeds.tolist())
    if shared:
        raise DataError(f"train and test demonstrations share {len(shared)} seeds, e.g. {min(shared)}")
