"""Fuzzing `hrm agent` in this process with generated bad input (level names, counts, recipe files,
demonstration files, models of the wrong kind, seeds): each ends with a non-zero exit and exactly one
line on stderr, no traceback, nothing left behind, within a time bound."""

from __future__ import annotations

import string
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability_helpers import Result, build_sudoku4, hrm, snapshot, write_recipe

pytest.importorskip("minigrid")

SECONDS = 10.0
FUZZ = settings(
    max_examples=20,
    deadline=None,  # timed below, with a bound that tolerates a busy machine
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_./ ", min_size=1, max_size=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A puzzle run (a checkpoint of the wrong kind for the agent) and a scratch folder."""
    root = tmp_path_factory.mktemp("agent-fuzz")
    data = build_sudoku4(root / "data")
    recipe = write_recipe(root / "recipe.yaml", data, max_steps=3, ema=False)
    run = root / "run"
    assert hrm("train", recipe, f"run_dir={run}").code == 0
    scratch = root / "scratch"
    scratch.mkdir()
    return {"root": root, "run": run, "scratch": scratch}


def fails_cleanly(world: dict[str, Path], *args: object) -> Result:
    before = snapshot(world["root"])
    start = time.monotonic()
    result = hrm("agent", *map(str, args))
    assert time.monotonic() - start < SECONDS, args
    result.one_line_error()
    assert snapshot(world["root"]) == before, args
    return result


@FUZZ
@given(level=NAME.filter(lambda s: s.strip() not in ("UnlockLocal", "UnlockPickup")))
def test_demos_of_an_unknown_level(world, level):
    fails_cleanly(world, "demos", level, "--episodes", 1, "--out", world["scratch"] / "d", "--quiet")


@FUZZ
@given(
    flag=st.sampled_from(["--episodes", "--max-steps", "--time-limit"]),
    value=st.one_of(st.integers(max_value=0), st.integers(min_value=10**9)),
)
def test_demos_with_bad_counts(world, flag, value):
    out = world["scratch"] / "d"
    episodes = [] if flag == "--episodes" else ["--episodes", 1]
    fails_cleanly(world, "demos", "UnlockLocal", *episodes, flag, value, "--out", out, "--quiet")


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_train_from_a_bad_recipe_file(world, content):
    recipe = world["scratch"] / "bad.yaml"
    if isinstance(content, bytes):
        recipe.write_bytes(content)
    else:
        recipe.write_text(content)
    try:
        fails_cleanly(world, "train", recipe, f"run_dir={world['scratch'] / 'r'}")
    finally:
        recipe.unlink()


@FUZZ
@given(content=st.binary(max_size=300))
def test_train_from_a_corrupt_demonstration_file(world, content):
    demos = world["scratch"] / "demos"
    demos.mkdir(exist_ok=True)
    (demos / "demos.npz").write_bytes(content)
    (demos / "meta.json").write_bytes(content[:50])
    try:
        fails_cleanly(
            world, "train", "agent_unlocklocal", f"data_path={demos}", f"run_dir={world['scratch'] / 'r'}"
        )
    finally:
        for path in demos.iterdir():
            path.unlink()
        demos.rmdir()


@FUZZ
@given(command=st.sampled_from(["eval", "play"]), seed=st.integers(max_value=-1))
def test_eval_and_play_reject_a_puzzle_model_and_bad_seeds(world, command, seed):
    fails_cleanly(world, command, world["run"])
    if command == "play":
        fails_cleanly(world, "play", "agent-unlocklocal", "--seed", seed)
