from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch
from safetensors.torch import load_file

from hrm.agent.evaluate import evaluate_policy, run_episodes
from hrm.agent.play import AGENT_TRACE_SCHEMA, play
from hrm.agent.policy import AgentPolicy, load_policy
from hrm.agent.train import load_agent_config, train
from hrm.cli import main
from hrm.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _cfg(tiny_demos, tmp_path, tiny, *overrides):
    train_dir, test_dir = tiny_demos
    base = [
        f"demos={train_dir}",
        f"eval_demos={test_dir}",
        f"run_dir={tmp_path / 'run'}",
        "steps=4",
        "batch_episodes=3",
        "eval_episodes=2",
        "log_interval=2",
        "progress=false",
        "tensorboard=false",
        "lr_warmup_steps=1",
    ]
    base += [f"arch.{k}={v}" for k, v in tiny.items()]
    return load_agent_config(None, base + list(overrides))


def test_agent_recipes_load():
    recipes = sorted(CONFIGS.glob("agent_*.yaml"))
    assert recipes
    for recipe in recipes:
        cfg = load_agent_config(recipe, [])
        assert cfg.policy_config().hidden_size > 0


def test_bad_overrides_are_one_line_errors():
    with pytest.raises(ConfigError, match="freeze"):
        load_agent_config(None, ["demos=x", "freeze=Q"])
    with pytest.raises(ConfigError, match="arch"):
        load_agent_config(None, ["demos=x", "arch.num_heads=3"])


def test_a_run_has_the_shared_layout_and_resumes_to_the_same_weights(tiny_demos, tmp_path, tiny):
    cfg = _cfg(tiny_demos, tmp_path, tiny, "checkpoint_interval=2", "eval_interval=null")
    whole = train(cfg)
    run = whole.run_dir
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "latest").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"train", "eval"}
    assert "action_accuracy" in records[-1] and "success" in records[-1]
    final = load_file(str(run / "checkpoints" / "step_0000004" / "model.safetensors"))

    # Interrupt a second, identical run after step 2 and resume it.
    cfg2 = _cfg(tiny_demos, tmp_path / "b", tiny, "checkpoint_interval=2", "eval_interval=null")
    stop = {"n": 0}

    def should_stop() -> bool:
        stop["n"] += 1
        return stop["n"] > 2

    assert train(cfg2, should_stop=should_stop).step == 2
    resumed = train(cfg2, resume=True)
    assert resumed.step == 4
    again = load_file(str(resumed.run_dir / "checkpoints" / "step_0000004" / "model.safetensors"))
    for k, v in final.items():
        torch.testing.assert_close(again[k], v)
    with pytest.raises(ConfigError, match="exists"):
        train(cfg)


def test_fine_tuning_from_a_run_with_H_frozen_leaves_H_unchanged(tiny_demos, tmp_path, tiny):
    first = train(_cfg(tiny_demos, tmp_path, tiny))
    cfg = _cfg(tiny_demos, tmp_path / "ft", tiny, f"init_from={first.run_dir}", "freeze=H")
    tuned = train(cfg)
    before, after = load_policy(first.run_dir).policy, load_policy(tuned.run_dir).policy
    for (name, p), q in zip(before.core.H_level.named_parameters(), after.core.H_level.parameters()):
        assert torch.equal(p, q), name
    changed = [
        not torch.equal(p, q)
        for p, q in zip(before.core.L_level.parameters(), after.core.L_level.parameters())
    ]
    assert any(changed)


def test_the_flat_baseline_trains_and_refuses_freezing(tiny_demos, tmp_path, tiny):
    flat = train(_cfg(tiny_demos, tmp_path, tiny, "hierarchy=false"))
    assert load_policy(flat.run_dir).policy.config.hierarchy is False
    with pytest.raises(Exception, match="hierarch"):
        train(_cfg(tiny_demos, tmp_path / "x", tiny, "hierarchy=false", "freeze=L"))


def test_evaluation_and_a_trace_that_follows_its_schema(tiny_demos, tmp_path, tiny):
    run = train(_cfg(tiny_demos, tmp_path, tiny)).run_dir
    policy = load_policy(run).policy
    results = run_episodes(policy, "UnlockLocal", [1_000_000, 1_000_001], max_steps=5)
    assert [r.steps for r in results] == [5, 5]
    assert all(0 <= r.agreement <= r.shadowed <= 5 for r in results)
    report = evaluate_policy(policy, "UnlockLocal", episodes=2)
    for key in ("success", "steps_vs_bot", "action_accuracy", "subgoal_accuracy", "shadow_agreement"):
        assert key in report or (key == "steps_vs_bot" and report["success"] == 0)
    assert set(report["ablations"]) == {"reset_H", "reset_L", "reset_both"}

    trace = play(policy, "UnlockLocal", 1_000_000, model=str(run), max_steps=6)
    jsonschema.validate(trace, json.loads(AGENT_TRACE_SCHEMA.read_text()))
    assert len(trace["frames"]) == trace["steps"] + 1 and trace["frames"][-1]["action"] is None
    assert trace["bot_steps"] and trace["bot_steps"] > 0


def test_the_cli_records_demos_and_plays_an_episode(tiny_demos, tmp_path, tiny, capsys):
    out = tmp_path / "d"
    assert main(["agent", "demos", "UnlockLocal", "--episodes", "2", "--out", str(out), "--quiet"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert main(["agent", "demos", "UnlockLocal", "--episodes", "2", "--out", str(out), "--quiet"]) == 1
    run = train(_cfg(tiny_demos, tmp_path, tiny)).run_dir
    trace = tmp_path / "t.json"
    assert (
        main(["agent", "play", str(run), "--seed", "1000001", "--max-steps", "8", "--out", str(trace)]) == 0
    )
    assert json.loads(trace.read_text())["seed"] == 1000001
    assert main(["agent", "play", str(tmp_path / "nope")]) == 1


def test_an_agent_run_exports_to_a_directory_that_loads_the_same_policy(tiny_demos, tmp_path, tiny, capsys):
    run = train(_cfg(tiny_demos, tmp_path, tiny, "eval_interval=null", "ema=true")).run_dir
    out = tmp_path / "exported"
    assert main(["export", str(run), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    card = json.loads((out / "model.json").read_text())
    assert card["model"] == "hrm-agent" and card["extra"]["level"] == "UnlockLocal"
    exported, original = load_policy(out).policy, load_policy(run).policy  # EMA weights by default
    for (name, a), (_, b) in zip(exported.state_dict().items(), original.state_dict().items()):
        assert torch.equal(a, b), name
    assert main(["agent", "eval", str(out), "--episodes", "2", "--no-ablations"]) == 0
    assert main(["export", str(run), str(out)]) != 0  # an earlier export is replaced only with --overwrite
    assert "already exists" in capsys.readouterr().err


def test_replay_reflects_only_the_episodes_it_is_told_to(tiny_demos, tiny):
    import numpy as np

    from hrm.agent import demos, world
    from hrm.agent.policy import AgentPolicy, PolicyConfig
    from hrm.agent.replay import replay

    ds = demos.load(tiny_demos[0])
    policy = AgentPolicy(PolicyConfig(**tiny))
    chosen = np.array([0, 1])
    plain, flipped = replay(policy, ds, chosen), replay(policy, ds, chosen, np.array([False, True]))
    n = int(ds.offsets[1])  # the first episode's steps come first
    assert torch.equal(plain.obs.image[:n], flipped.obs.image[:n])
    assert torch.equal(flipped.obs.image[n:], plain.obs.image[n:].flip(1))
    mirror = torch.as_tensor(world.MIRROR_ACTION)
    assert torch.equal(flipped.actions[n:], mirror[plain.actions[n:]])
    assert torch.equal(flipped.obs.prev_action[n:], mirror[plain.obs.prev_action[n:]])
    assert torch.equal(
        flipped.obs.direction[n:], torch.as_tensor(world.MIRROR_DIRECTION)[plain.obs.direction[n:]]
    )
    assert torch.equal(flipped.subgoals, plain.subgoals)
    assert (ds.actions == demos.load(tiny_demos[0]).actions).all()  # the demonstrations are untouched


@pytest.mark.slow
def test_a_small_policy_learns_a_small_level(tmp_path):
    """Behaviour cloning works end to end: 100 bot episodes of GoToRedBallNoDists, 300 steps of a
    small policy (about half a minute on one CPU thread), and it goes to the ball on held-out seeds,
    which the untrained policy does not."""
    from hrm.agent import demos
    from hrm.agent.evaluate import eval_seeds, summarize

    level = "BabyAI-GoToRedBallNoDists-v0"
    train_dir = demos.save(demos.generate(level, 100, progress=False), tmp_path / "demos")
    arch = {"hidden_size": 32, "num_heads": 2, "expansion": 2.0, "cell_dim": 8, "conv_channels": 16}
    cfg = load_agent_config(
        None,
        [
            f"level={level}",
            f"demos={train_dir}",
            f"run_dir={tmp_path / 'run'}",
            "steps=300",
            "lr=0.003",
            "lr_warmup_steps=5",
            "batch_episodes=16",
            "eval_episodes=1",
            "progress=false",
            "tensorboard=false",
            "threads=1",
            *[f"arch.{k}={v}" for k, v in arch.items()],
        ],
    )
    untrained = AgentPolicy(cfg.policy_config())
    seeds = eval_seeds(40)
    before = summarize(run_episodes(untrained, level, seeds, shadow=False))["success"]
    train(cfg)
    after = summarize(run_episodes(load_policy(cfg.run_dir).policy, level, seeds, shadow=False))["success"]
    assert before <= 0.25 and after >= 0.9, (before, after)
