from __future__ import annotations

import re

import pytest

from hrm.agent.evaluate import eval_seeds, run_episodes
from hrm.agent.policy import load_policy


def test_the_packaged_agent_loads_and_solves_held_out_episodes():
    loaded = load_policy("agent-unlocklocal")
    assert loaded.extra["level"] == "UnlockLocal"
    results = run_episodes(loaded.policy, "UnlockLocal", eval_seeds(5), shadow=False)
    assert sum(r.success for r in results) >= 4


@pytest.mark.slow
def test_the_demo_plays_the_packaged_agent_then_fine_tunes_it(demo_run):
    """`hrm demo`'s agent part (the session's one demo run): held-out UnlockLocal episodes, a trace,
    then fine-tuning on UnlockPickup from 10 demonstrations lifts held-out success."""
    assert demo_run.returncode == 0
    assert "held-out UnlockLocal" in demo_run.out
    assert (demo_run.workdir / "agent-trace.json").is_file()
    found = re.search(r"held-out UnlockPickup episodes: (\d+)% before, (\d+)% after", demo_run.out)
    assert found, demo_run.out[-2000:]
    before, after = int(found[1]), int(found[2])
    assert before <= 10 and after >= before + 20
    assert load_policy(demo_run.workdir / "agent-finetune" / "run").extra["level"] == "UnlockPickup"
