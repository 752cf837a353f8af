from __future__ import annotations

import json

import numpy as np
import pytest

from hrm.agent import demos, world
from hrm.errors import ConfigError, DataError


def test_missions_become_word_ids_with_unknown_words_marked():
    ids = world.tokenize_mission("Open the red door, then pick up the zork")
    words = [world.MISSION_WORDS[i] for i in ids if i != world.PAD]
    assert words == ["open", "the", "red", "door", "then", "pick", "up", "the", "<unk>"]
    assert ids.shape == (world.MISSION_LEN,)


def test_an_observation_encodes_to_view_direction_and_mission():
    env = world.make_env("UnlockLocal")
    enc = world.encode_obs(world.reset(env, 3))
    assert enc.image.shape == (7, 7, 3) and enc.image.dtype == np.uint8
    assert 0 <= enc.direction < 4
    assert enc.mission[0] != world.PAD
    legend = world.legend()
    assert legend["objects"][int(enc.image.max(axis=(0, 1))[0])]  # every symbol has a name
    assert legend["actions"] == list(world.ACTION_NAMES)


def test_unknown_levels_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="UnlockLocal"):
        world.env_id("NoSuchLevel")
    assert world.level_name("BabyAI-UnlockLocal-v0") == "UnlockLocal"


def test_demos_round_trip_and_splits_are_disjoint(tiny_demos, tmp_path):
    train_dir, test_dir = tiny_demos
    train, test = demos.load(train_dir), demos.load(test_dir)
    assert train.episodes == 6 and test.episodes == 3
    assert train.seeds.max() < demos.TEST_SEED_BASE <= test.seeds.min()
    demos.check_disjoint(train, test)
    with pytest.raises(DataError, match="share"):
        demos.check_disjoint(train, train)
    assert int(train.offsets[-1]) == len(train.actions) == len(train.images)
    assert train.meta["format"] == demos.FORMAT and train.meta["failures"] == []
    assert not any(p.name.startswith(".") for p in train_dir.parent.iterdir())  # no temporary left
    with pytest.raises(ConfigError, match="exists"):
        demos.save(train, train_dir)


def test_the_watchdog_counts_and_reports_failures():
    ds = demos.generate("UnlockLocal", 2, max_steps=10, max_failures=100, progress=False)
    # Most UnlockLocal seeds take the bot more than 10 steps: those are failures, reported and skipped.
    assert ds.episodes == 2
    assert ds.meta["failures"] and all("watchdog" in f["reason"] for f in ds.meta["failures"])
    assert all(n <= 10 for n in ds.lengths())
    assert ds.meta["seed_last"] - ds.meta["seed_first"] + 1 == 2 + len(ds.meta["failures"])
    with pytest.raises(DataError, match="bot failures"):
        demos.generate("UnlockLocal", 2, max_steps=1, max_failures=2, progress=False)


def test_the_watchdog_caps_wall_time():
    env = world.make_env("UnlockLocal")
    with pytest.raises(demos.EpisodeTimeout):
        demos.bot_episode(env, 0, 500, time_limit_s=1e-6)


def test_a_corrupt_demo_directory_is_reported(tmp_path):
    (tmp_path / "demos.npz").write_bytes(b"not a zip")
    (tmp_path / "meta.json").write_text(json.dumps({"format": demos.FORMAT}))
    with pytest.raises(DataError):
        demos.load(tmp_path)
    with pytest.raises(DataError, match="not a demonstration"):
        demos.load(tmp_path / "nothing")


def test_the_bot_sub_goals_are_named_by_what_they_are_for():
    import itertools

    ds = demos.generate("UnlockLocal", 12, progress=False)
    plans = set()
    for e in range(ds.episodes):
        lo, hi = int(ds.offsets[e]), int(ds.offsets[e + 1])
        names = [world.SUBGOALS[i] for i in ds.subgoals[lo:hi]]
        plans.add(tuple(k for k, _ in itertools.groupby(n for n in names if n != "Explore")))
        for name, action in zip(names, ds.actions[lo:hi]):
            if name in ("PickupKey", "OpenDoor"):  # the step that carries the sub-goal out
                assert world.ACTION_NAMES[action] == {"PickupKey": "pickup", "OpenDoor": "toggle"}[name]
    assert plans == {("GoToKey", "PickupKey", "GoToDoor", "OpenDoor")}
    pickup = demos.generate("UnlockPickup", 3, progress=False)
    seen = {world.SUBGOALS[i] for i in pickup.subgoals}
    assert {"GoToObj", "PickupObj", "Drop"} <= seen  # the box after the door
    assert world.SUBGOALS[-1] == "Other" and len(set(world.SUBGOALS)) == len(world.SUBGOALS)


def test_the_mirror_augmentation_is_the_view_of_the_reflected_world():
    from minigrid.core.grid import Grid

    for seed in range(6):
        env = world.make_env("UnlockPickup")
        world.reset(env, seed)
        u = env.unwrapped
        for turn in range(4):
            u.agent_dir = turn
            view = u.gen_obs()["image"]
            w, h = u.grid.width, u.grid.height
            reflected = Grid(w, h)
            for x in range(w):
                for y in range(h):
                    reflected.set(w - 1 - x, y, u.grid.get(x, y))
            saved = (u.grid, u.agent_pos)
            u.grid, u.agent_pos = reflected, (w - 1 - u.agent_pos[0], u.agent_pos[1])
            u.agent_dir = int(world.MIRROR_DIRECTION[turn])
            assert np.array_equal(u.gen_obs()["image"], view[::-1])
            u.grid, u.agent_pos = saved
    left, right = world.ACTION_NAMES.index("left"), world.ACTION_NAMES.index("right")
    assert world.MIRROR_ACTION[left] == right and world.MIRROR_ACTION[right] == left
    assert (world.MIRROR_ACTION[world.MIRROR_ACTION] == np.arange(len(world.MIRROR_ACTION))).all()
    words = world.tokenize_mission("pick up the ball on your left")
    assert [world.MISSION_WORDS[i] for i in world.MIRROR_WORD[words] if i != world.PAD][-1] == "right"


def test_demos_are_reproducible():
    a, b = (demos.generate("UnlockPickup", 3, progress=False) for _ in range(2))
    for field in ("images", "directions", "actions", "subgoals", "missions", "offsets", "seeds"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    c = demos.generate("UnlockPickup", 3, split="test", progress=False)
    assert not set(a.seeds.tolist()) & set(c.seeds.tolist())
