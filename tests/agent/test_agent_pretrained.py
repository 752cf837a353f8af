from __future__ import annotations

import pytest

from hrm.agent.evaluate import eval_seeds, run_episodes
from hrm.agent.policy import load_policy
from hrm.demo import agent_part


def test_the_packaged_agent_loads_and_solves_held_out_episodes():
    loaded = load_policy("agent-unlocklocal")
    assert loaded.extra["level"] == "UnlockLocal"
    results = run_episodes(loaded.policy, "UnlockLocal", eval_seeds(5), shadow=False)
    assert sum(r.success for r in results) >= 4


@pytest.mark.slow
def test_the_demo_part_plays_the_packaged_agent(tmp_path, capsys):
    summary = agent_part(tmp_path)
    assert summary is not None and summary["success"] >= 0.8
    assert (tmp_path / "agent-trace.json").is_file()
    assert "held-out UnlockLocal" in capsys.readouterr().out
