"""Training: config handling, exact resume after SIGKILL, torchrun parity, non-finite loss."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from hrm.config import load_config
from hrm.errors import ConfigError
from tiny_models import TINY_ARCH


@pytest.fixture(scope="module")
def sudoku4(tmp_path_factory) -> Path:
    from hrm.data.sudoku import build_sudoku_dataset

    out = tmp_path_factory.mktemp("data") / "sudoku4"
    build_sudoku_dataset(out, count=60, size=4, difficulty="easy", test_count=16, num_aug=3, seed=0)
    return out


def _recipe(tmp_path: Path, data: Path, **extra) -> Path:
    recipe = {
        "arch": dict(TINY_ARCH),
        "data_path": str(data),
        "global_batch_size": 16,
        "epochs": 100,
        "eval_interval": None,
        "max_steps": 12,
        "lr": 1e-3,
        "lr_warmup_steps": 3,
        "lr_min_ratio": 0.1,
        "weight_decay": 0.1,
        "puzzle_emb_lr": 1e-2,
        "puzzle_emb_weight_decay": 0.1,
        "log_interval": 1,
        "checkpoint_interval": 3,
        "keep_checkpoints": 2,
        "progress": False,
        "tensorboard": False,
        "threads": 1,
        "eval_max_batches": 1,
    }
    recipe.update(extra)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _env():
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {
        **os.environ,
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }


def _hrm(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "hrm", *args], capture_output=True, text=True, env=_env(), timeout=timeout
    )


def _records(run: Path, kind: str) -> list[dict]:
    drop = {"time", "steps_per_s", "examples_per_s"}
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == kind:
            out.append({k: v for k, v in rec.items() if k not in drop})
    return out


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run / "checkpoints" / latest / "model.safetensors"))


# -- configuration ------------------------------------------------------------------------------


def test_overrides_are_typed_and_dotted(tmp_path, sudoku4):
    cfg = load_config(
        _recipe(tmp_path, sudoku4), ["arch.L_cycles=8", "lr=3e-4", "ema=true", "eval_interval=null"]
    )
    assert cfg.arch["L_cycles"] == 8 and cfg.lr == pytest.approx(3e-4) and cfg.ema is True
    assert cfg.eval_interval is None


@pytest.mark.parametrize(
    "override,needle",
    [
        ("lrr=3", "unknown key 'lrr' (did you mean 'lr'?)"),
        ("arch.L_cycels=3", "unknown key 'arch.L_cycels'"),
        ("global_batch_size=zero", "global_batch_size"),
        ("nonsense", "key=value"),
        ("arch.name=gpt", "unknown model"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, sudoku4, override, needle):
    with pytest.raises(ConfigError) as exc:
        load_config(_recipe(tmp_path, sudoku4), [override])
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_cli_reports_a_missing_recipe_in_one_line(tmp_path):
    proc = _hrm("train", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "nope.yaml" in proc.stderr


def test_published_recipes_load():
    configs = Path(__file__).resolve().parents[1] / "configs"
    # agent_*.yaml are `hrm agent train` recipes (tests/agent/test_agent_train.py loads them)
    recipes = sorted(p for p in configs.glob("*.yaml") if not p.name.startswith("agent_"))
    assert recipes
    for recipe in recipes:
        cfg = load_config(recipe)
        assert cfg.model_name in ("hrm", "trm", "transformer")


# -- training components --------------------------------------------------------------------------


def _tiny_model():
    from hrm.models import build_model

    arch = {k: v for k, v in TINY_ARCH.items() if k not in ("name", "loss_type")}
    return build_model("hrm", dict(arch, seq_len=16, vocab_size=6, num_puzzle_identifiers=3, batch_size=4))


def test_ema_weights_are_swapped_in_and_the_live_ones_restored_exactly():
    from hrm.training.ema import EMA, ema_weights

    model = _tiny_model()
    ema = EMA(model, rate=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(model)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with ema_weights(model, ema):
        inside = model.state_dict()
        for name, average in ema.shadow.items():
            assert torch.equal(inside[name], average)
        assert not torch.equal(inside["inner.lm_head.weight"], live["inner.lm_head.weight"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in live.items())
    with pytest.raises(RuntimeError), ema_weights(model, ema):
        raise RuntimeError("an evaluation failed")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in live.items())
    with ema_weights(model, None):  # no EMA: the live weights stay in
        assert all(torch.equal(model.state_dict()[k], v) for k, v in live.items())
    saved = ema.full_state(model)
    restored = EMA(_tiny_model(), rate=0.5)
    restored.load_shadow(saved)
    assert all(torch.equal(restored.shadow[k], v) for k, v in ema.shadow.items())


def test_metrics_window_divides_losses_by_examples_and_the_rest_by_rows():
    from hrm.distributed import DistInfo
    from hrm.training.metrics import MetricsWindow

    window = MetricsWindow()
    steps = [
        {"count": 3.0, "exact_accuracy": 2.0, "steps": 6.0, "lm_loss": 8.0},
        {"count": 1.0, "exact_accuracy": 1.0, "steps": 1.0, "lm_loss": 4.0},
    ]
    for metrics in steps:
        window.add({k: torch.tensor(v) for k, v in metrics.items()})
    record = window.record(DistInfo(), lr=0.5, global_batch=4)
    assert record["lm_loss"] == pytest.approx(12.0 / (4 * 2))  # per example seen in the window
    assert record["exact_accuracy"] == pytest.approx(3.0 / 4)  # per row counted
    assert record["steps"] == pytest.approx(7.0 / 4)
    assert "count" not in record and record["lr"] == 0.5
    assert record["examples_per_s"] == pytest.approx(record["steps_per_s"] * 4)
    assert window.steps == 0 and window.sums is None  # the next window starts empty
    empty = {"count": 0.0, "exact_accuracy": 0.0, "steps": 0.0, "lm_loss": 2.0}
    window.add({k: torch.tensor(v) for k, v in empty.items()})
    later = window.record(DistInfo(), lr=0.1, global_batch=4)
    assert later["exact_accuracy"] == 0.0 and later["lm_loss"] == pytest.approx(
        0.5
    )  # no row: no division by 0


def test_rng_carry_and_exploration_state_round_trip():
    from hrm.distributed import DistInfo
    from hrm.models import Carry
    from hrm.training.state import (
        ExplorationNoise,
        capture_rng,
        carry_from_state,
        carry_state,
        preserved_rng,
        restore_rng,
    )

    state = capture_rng()
    first = torch.rand(5)
    restore_rng(state)
    assert torch.equal(torch.rand(5), first)
    with preserved_rng():
        torch.rand(100)
    after = torch.rand(5)
    restore_rng(state)
    torch.rand(5)
    assert torch.equal(torch.rand(5), after)  # the block drew nothing from the run's stream

    carry = Carry(
        z_H=torch.randn(4, 16, 8),
        z_L=torch.randn(4, 16, 8),
        steps=torch.tensor([0, 1, 2, 3], dtype=torch.int32),
        halted=torch.tensor([True, False, False, True]),
        current_data={"inputs": torch.randint(0, 6, (4, 16)), "puzzle_identifiers": torch.arange(4)},
    )
    back = carry_from_state(carry_state(carry), torch.device("cpu"))
    assert back is not None and back.current_data.keys() == carry.current_data.keys()
    for name in ("z_H", "z_L", "steps", "halted"):
        assert (
            torch.equal(getattr(back, name), getattr(carry, name))
            and getattr(back, name).dtype == getattr(carry, name).dtype
        )
    assert all(torch.equal(back.current_data[k], v) for k, v in carry.current_data.items())
    assert carry_state(None) is None and carry_from_state(None, torch.device("cpu")) is None

    noise = ExplorationNoise(seed=1, global_batch=8, halt_max_steps=4, info=DistInfo())
    noise(8)
    saved = noise.rng_state()
    expected = noise(8)
    again = ExplorationNoise(seed=99, global_batch=8, halt_max_steps=4, info=DistInfo())
    again.set_rng_state(saved)
    assert all(torch.equal(a, b) for a, b in zip(again(8), expected))
    # two processes each draw their half of the same global draws
    halves = [
        ExplorationNoise(seed=1, global_batch=8, halt_max_steps=4, info=DistInfo(rank=r, world_size=2))(4)
        for r in (0, 1)
    ]
    whole = ExplorationNoise(seed=1, global_batch=8, halt_max_steps=4, info=DistInfo())(8)
    for i in range(2):
        assert torch.equal(torch.cat([halves[0][i], halves[1][i]]), whole[i])


def test_batch_stream_resumes_at_the_same_batch(sudoku4):
    from hrm.data.dataset import PuzzleDataset
    from hrm.training.state import BatchStream

    def dataset():
        config = {
            "seed": 0,
            "dataset_path": str(sudoku4),
            "global_batch_size": 16,
            "test_set_mode": False,
            "epochs_per_iter": 1,
            "rank": 0,
            "num_replicas": 1,
        }
        return PuzzleDataset(config, split="train")

    straight = BatchStream(dataset())
    batches = [batch["inputs"] for _, batch, _ in itertools.islice(straight, 12)]
    first = BatchStream(dataset())
    for _ in itertools.islice(first, 5):
        pass
    resumed = BatchStream(dataset())
    resumed.load_state_dict(first.state_dict())
    later = [batch["inputs"] for _, batch, _ in itertools.islice(resumed, 7)]
    assert first.state_dict()["iters"] >= 1
    assert all(torch.equal(a, b) for a, b in zip(later, batches[5:], strict=True))


def test_resume_names_a_checkpoint_that_lacks_training_state(tmp_path, sudoku4):
    from hrm.training import train

    run = tmp_path / "run"
    train(load_config(_recipe(tmp_path, sudoku4), [f"run_dir={run}", "max_steps=3"]))
    state_file = run / "checkpoints" / "step_0000003" / "training_state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["stream"]
    torch.save(state, state_file)
    with pytest.raises(ConfigError) as exc:
        train(load_config(run / "config.yaml"), resume=run)
    message = str(exc.value)
    assert str(run) in message and "training_state.pt" in message and "stream" in message
    assert "\n" not in message


# -- training runs ------------------------------------------------------------------------------


def test_data_iteration_is_capped_at_the_epochs_a_run_reaches(tmp_path, sudoku4, monkeypatch):
    from hrm.distributed import DistInfo
    from hrm.training import build

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = load_config(_recipe(tmp_path, sudoku4), ["epochs=100000"])  # eval_interval None: 100k epochs
    monkeypatch.setattr(build, "ORDER_CAP", 1000)
    built = build.build_training(cfg, info)
    # 60 groups, 16 per batch, 12 steps: ceil(12 * 16 / 60) + 1 = 5 epochs, not 100,000
    assert built.total_steps == 12 and built.train_data.config.epochs_per_iter == 5
    assert sum(1 for _ in built.train_data) >= built.total_steps  # one iteration covers the whole run
    # below the cap the reference's rule (the eval interval) is kept, and with it the batch order
    monkeypatch.setattr(build, "ORDER_CAP", 100000 * 60)
    assert build.build_training(cfg, info).train_data.config.epochs_per_iter == 100000


def test_train_writes_a_run_and_eval_reads_it(tmp_path, sudoku4):
    from hrm.evaluate import evaluate_cli
    from hrm.training import train

    run = tmp_path / "run"
    cfg = load_config(_recipe(tmp_path, sudoku4), [f"run_dir={run}", "max_steps=4", "tensorboard=true"])
    result = train(cfg)
    assert result.step == 4
    assert (run / "config.yaml").exists() and (run / "tensorboard").is_dir()
    assert len(_records(run, "train")) == 4 and len(_records(run, "eval")) == 1
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert ckpts == ["step_0000003", "step_0000004"]  # the last two kept
    report = evaluate_cli(str(run), out=str(tmp_path / "ev"))
    assert report["metrics"]["all"]["count"] == 16
    assert (tmp_path / "ev" / "metrics.json").exists()


def test_max_minutes_ends_the_run_at_a_log_step_with_a_last_evaluation_and_checkpoint(tmp_path, sudoku4):
    from hrm.training import train

    run = tmp_path / "run"
    recipe = _recipe(tmp_path, sudoku4, log_interval=5, checkpoint_interval=100)
    result = train(load_config(recipe, [f"run_dir={run}", "max_minutes=1e-9"]))
    assert result.step == 5  # the time is out at once; the first log step ends the run
    assert [r["step"] for r in _records(run, "eval")] == [5]
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert ckpts == ["step_0000005"]
    again = train(load_config(recipe, [f"run_dir={tmp_path / 'long'}", "max_minutes=60"]))
    assert again.step == 12  # time to spare: max_steps ends it


@pytest.mark.parametrize("value", ["0", "-1", "1e7", "true"])
def test_max_minutes_must_be_a_positive_bounded_number(tmp_path, sudoku4, value):
    with pytest.raises(ConfigError, match="max_minutes"):
        load_config(_recipe(tmp_path, sudoku4), [f"max_minutes={value}"])


def test_init_from_starts_from_a_trained_model_and_names_a_bad_source(tmp_path, sudoku4):
    from hrm.distributed import DistInfo
    from hrm.training import build_training, train

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    first = tmp_path / "first"
    train(load_config(_recipe(tmp_path, sudoku4), [f"run_dir={first}", "max_steps=3"]))
    trained = _final_weights(first)
    cfg = load_config(_recipe(tmp_path, sudoku4), [f"init_from={first}", "seed=5"])
    own = build_training(cfg, info).model.state_dict()
    assert set(own) == set(trained)
    assert all(torch.equal(own[k], trained[k]) for k in own)
    fresh = build_training(load_config(_recipe(tmp_path, sudoku4), ["seed=5"]), info).model
    assert not torch.equal(fresh.state_dict()["inner.lm_head.weight"], trained["inner.lm_head.weight"])

    bad = [
        (f"init_from={tmp_path / 'missing'}", "missing"),
        ("arch.hidden_size=64", "do not fit"),
        ("arch.name=trm", "it is a hrm model, the recipe builds trm"),
    ]
    for override, needle in bad:
        overrides = [override] if override.startswith("init_from") else [f"init_from={first}", override]
        with pytest.raises(ConfigError) as exc:
            build_training(load_config(_recipe(tmp_path, sudoku4), overrides), info)
        message = str(exc.value)
        assert needle in message and "init_from" in message and "\n" not in message


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, sudoku4, monkeypatch):
    from hrm.models.losses import ACTLossHead
    from hrm.training import NonFiniteLossError, train

    calls = {"n": 0}
    original = ACTLossHead.forward

    def poisoned(self, carry, batch, hook=None, **options):
        step = original(self, carry, batch, hook, **options)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 5:
                step.loss = step.loss * float("nan")
        return step

    monkeypatch.setattr(ACTLossHead, "forward", poisoned)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="step 5"):
        train(load_config(_recipe(tmp_path, sudoku4), [f"run_dir={run}"]))
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_0000003"
    weights = _final_weights(run)
    assert all(torch.isfinite(v.float()).all() for v in weights.values())


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, sudoku4):
    recipe = _recipe(tmp_path, sudoku4, max_steps=30, checkpoint_interval=4, ema=True)
    straight = tmp_path / "straight"
    proc = _hrm("train", str(recipe), f"run_dir={straight}")
    assert proc.returncode == 0, proc.stderr

    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-m", "hrm", "train", str(recipe), f"run_dir={killed}"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    marker = killed / "checkpoints" / "latest"
    while time.time() < deadline and not (marker.exists() and marker.read_text().strip() == "step_0000008"):
        if child.poll() is not None:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert marker.exists(), "the run died before its first checkpoint"
    interrupted_at = marker.read_text().strip()
    assert interrupted_at != "step_0000030", "the run finished before it could be killed"

    proc = _hrm("train", "--resume", str(killed))
    assert proc.returncode == 0, proc.stderr
    a, b = _final_weights(straight), _final_weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _records(straight, "train") == _records(killed, "train")
    assert _records(straight, "eval") == _records(killed, "eval")
    ema_a = load_file(str(straight / "checkpoints" / "step_0000030" / "ema.safetensors"))
    ema_b = load_file(str(killed / "checkpoints" / "step_0000030" / "ema.safetensors"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


@pytest.mark.slow
def test_two_torchrun_processes_match_one(tmp_path, sudoku4):
    recipe = _recipe(tmp_path, sudoku4, max_steps=6, checkpoint_interval=6)
    one = tmp_path / "one"
    proc = _hrm("train", str(recipe), f"run_dir={one}")
    assert proc.returncode == 0, proc.stderr
    two = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*torchrun, "-m", "hrm", "train", str(recipe), f"run_dir={two}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _final_weights(one), _final_weights(two)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    ra, rb = _records(one, "train"), _records(two, "train")
    assert len(ra) == len(rb) == 6
    for x, y in zip(ra, rb):
        for key in ("lm_loss", "q_halt_loss", "q_continue_loss", "accuracy", "exact_accuracy", "steps", "lr"):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["step"], key)


def test_resume_refuses_a_different_world_size(tmp_path, sudoku4):
    from hrm.training import train

    run = tmp_path / "run"
    train(load_config(_recipe(tmp_path, sudoku4), [f"run_dir={run}", "max_steps=3"]))
    state_file = run / "checkpoints" / "step_0000003" / "training_state.pt"
    state = torch.load(state_file, weights_only=True)
    state["world_size"] = 2
    torch.save(state, state_file)
    proc = _hrm("train", "--resume", str(run))
    assert proc.returncode == 1 and "same number" in proc.stderr


def test_existing_run_dir_is_not_overwritten(tmp_path, sudoku4):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("x")
    proc = _hrm("train", str(_recipe(tmp_path, sudoku4)), f"run_dir={run}")
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert (run / "keep.txt").read_text() == "x"
    shutil.rmtree(run)


@pytest.mark.slow
def test_tiny_recipe_learns_4x4_sudoku(demo_run):
    """The CPU recipe reaches >= 95% exact accuracy on held-out puzzles (about a minute here). The run
    checked is the one `hrm demo` trains (the session's `demo_run`): the shipped sudoku4_cpu recipe on
    400 generated 4x4 puzzles x 50 augmentations, 200 held out, as this test used to build itself."""
    assert demo_run.returncode == 0
    run = demo_run.run_dir
    data = demo_run.workdir / "data-sudoku4"
    recipe = Path(__file__).resolve().parents[1] / "configs" / "sudoku4_cpu.yaml"
    expected = load_config(recipe, [f"data_path={data}", f"run_dir={run}", "seed=0"])
    assert yaml.safe_load((run / "config.yaml").read_text()) == expected.model_dump(mode="json")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if r["kind"] == "eval"][-1]
    assert final["step"] == expected.max_steps
    exact = final["all"]["exact_accuracy"]
    seconds = final["time"] - (run / "config.yaml").stat().st_mtime
    print(f"tiny recipe: exact accuracy {exact:.3f} on 200 held-out puzzles in {seconds:.0f} s")
    assert final["all"]["count"] == 200
    assert exact >= 0.95


def test_eval_reads_a_reference_checkpoint_directory(tmp_path, sudoku4):
    """A published run directory: all_config.yaml (reference names) + step_N (a pickled state dict of
    the compiled, loss-wrapped model) loads and evaluates, giving the same metrics as our own."""
    from hrm.checkpoint import load_model
    from hrm.evaluate import evaluate_cli
    from hrm.models import build_model

    arch = {k: v for k, v in TINY_ARCH.items() if k not in ("name", "loss_type")}
    model = build_model("hrm", dict(arch, seq_len=16, vocab_size=6, num_puzzle_identifiers=1))
    ref = tmp_path / "HRM-checkpoint"
    ref.mkdir()
    config = {
        "arch": {
            "name": "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1",
            "loss": {"name": "losses@ACTLossHead", "loss_type": "softmax_cross_entropy"},
            **arch,
        },
        "data_path": str(sudoku4),
        "global_batch_size": 768,
    }
    (ref / "all_config.yaml").write_text(yaml.safe_dump(config))
    torch.save({f"_orig_mod.model.{k}": v for k, v in model.state_dict().items()}, ref / "step_1234")
    loaded = load_model(ref)
    assert loaded.card.loss_type == "softmax_cross_entropy"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    report = evaluate_cli(str(ref), data=str(sudoku4))
    ours = tmp_path / "ours"
    from hrm.checkpoint import ModelCard, save_checkpoint

    save_checkpoint(ours, 1, model, ModelCard("hrm", model.config.model_dump(), "softmax_cross_entropy"), {})
    again = evaluate_cli(str(ours), data=str(sudoku4))
    assert report["metrics"] == again["metrics"]


def test_eval_rejects_a_corrupt_weights_file(tmp_path, sudoku4):
    from hrm.checkpoint import ModelCard, save_checkpoint
    from hrm.models import build_model

    arch = {k: v for k, v in TINY_ARCH.items() if k not in ("name", "loss_type")}
    model = build_model("hrm", dict(arch, seq_len=16, vocab_size=6, num_puzzle_identifiers=1))
    ckpt = save_checkpoint(tmp_path / "run", 1, model, ModelCard("hrm", model.config.model_dump()), {})
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    proc = _hrm("eval", str(ckpt), "--data", str(sudoku4))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "model.safetensors" in proc.stderr


@pytest.mark.slow
def test_background_batch_worker_gives_the_same_run(tmp_path, sudoku4):
    from hrm.training import train

    # One epoch per sampler iteration (eval_interval=1): 11 steps cross several iterations.
    recipe = _recipe(tmp_path, sudoku4, epochs=3, eval_interval=1, max_steps=None, checkpoint_interval=11)
    a, b = tmp_path / "inline", tmp_path / "worker"
    train(load_config(recipe, [f"run_dir={a}", "data_workers=0"]))
    train(load_config(recipe, [f"run_dir={b}", "data_workers=1"]))
    wa, wb = _final_weights(a), _final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert len(_records(a, "train")) == 11
    assert _records(a, "train") == _records(b, "train")


# -- a task's dataset score during training (ARC: voting, pass@k) ---------------------------------

ARC_TASKS = {
    "aaa": {
        "train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]}, {"input": [[3]], "output": [[3]]}],
        "test": [{"input": [[3, 0], [0, 4]]}, {"input": [[5]]}],
    },
    "bbb": {"train": [{"input": [[1, 1, 2]], "output": [[2, 1, 1]]}], "test": [{"input": [[4, 4, 6]]}]},
    "ccc": {"train": [{"input": [[0, 7], [7, 0]], "output": [[0]]}], "test": [{"input": [[0, 2], [2, 0]]}]},
}
ARC_SOLUTIONS = {"aaa": [[[4, 0], [0, 3]], [[5]]], "bbb": [[[6, 4, 4]]], "ccc": [[[0]]]}


@pytest.fixture(scope="module")
def arc_tiny(tmp_path_factory) -> Path:
    """Three held-out ARC tasks (four test inputs), four views each: 16 test rows of 900 cells."""
    from hrm.data.arc import build_arc_dataset

    root = tmp_path_factory.mktemp("arc")
    (root / "x_challenges.json").write_text(json.dumps(ARC_TASKS))
    (root / "x_solutions.json").write_text(json.dumps(ARC_SOLUTIONS))
    build_arc_dataset(root / "ds", sources=[f"kaggle:{root / 'x'}@eval"], num_aug=3, seed=0)
    return root / "ds"


def _arc_recipe(tmp_path: Path, data: Path, **extra) -> Path:
    arch = {**TINY_ARCH, "hidden_size": 16, "puzzle_emb_ndim": 16, "H_cycles": 1, "L_cycles": 1}
    arch["halt_max_steps"] = 2
    # Global batch 4, what an epoch of the 3-task training split supplies: 16 test rows in four batches;
    # with two processes each takes two rows of every batch. (Partial batches: the order test.)
    settings = {"global_batch_size": 4, "max_steps": 6, "checkpoint_interval": 6, "eval_max_batches": None}
    return _recipe(tmp_path, data, **{"arch": arch, "log_interval": 3, **settings, **extra})


def test_gathered_predictions_are_in_dataset_order(arc_tiny):
    """Each process keeps its share of every test batch; gathered, the rows are in dataset order
    again (ARC's votes break ties by first appearance), in compact types, padding dropped."""
    from hrm.data.dataset import PuzzleDataset
    from hrm.data.format import load_split
    from hrm.distributed import DistInfo
    from hrm.evaluate import Predictions, in_dataset_order

    def collected(rank: int, replicas: int) -> Predictions:
        config = {"dataset_path": str(arc_tiny), "global_batch_size": 6, "test_set_mode": True}
        data = PuzzleDataset({**config, "rank": rank, "num_replicas": replicas}, split="test")
        kept = Predictions(vocab_size=12)
        for set_name, batch, _ in data:
            # A stand-in for the model: the input reversed, the halting logit the row's token sum.
            kept.add(set_name, batch, batch["inputs"].flip(-1), batch["inputs"].sum(-1).float())
        return kept

    _, sets = load_split(arc_tiny, "test", mmap=False)
    arrays = sets["all"]
    rows = len(arrays.inputs)
    assert rows == 16
    puzzles = np.searchsorted(arrays.puzzle_indices, np.arange(rows), side="right") - 1
    ranks = [collected(0, 2).chunks, collected(1, 2).chunks]
    for gathered in (in_dataset_order(ranks), collected(0, 1).gather(DistInfo())):
        got = gathered["all"]
        np.testing.assert_array_equal(got["inputs"], arrays.inputs)
        np.testing.assert_array_equal(got["preds"], arrays.inputs[:, ::-1])
        np.testing.assert_array_equal(got["puzzle_identifiers"], arrays.puzzle_identifiers[puzzles])
        np.testing.assert_array_equal(got["q_halt_logits"], arrays.inputs.sum(-1))
        dtypes = {k: v.dtype for k, v in got.items()}
        assert dtypes == {
            "puzzle_identifiers": np.int32,
            "inputs": np.uint8,
            "preds": np.uint8,
            "q_halt_logits": np.float32,
        }
    # One rank's rows after the other's would not be the dataset's order.
    by_rank = np.concatenate([np.concatenate(r["all"]["inputs"]) for r in ranks])
    assert not np.array_equal(by_rank, arrays.inputs)


def test_training_logs_the_task_score_at_evaluations(tmp_path, arc_tiny):
    from hrm.training import train
    from hrm.training.metrics import flatten

    run = tmp_path / "run"
    recipe = _arc_recipe(tmp_path, arc_tiny, max_steps=2, checkpoint_interval=2)
    result = train(load_config(recipe, [f"run_dir={run}"]))
    (record,) = _records(run, "eval")
    score = record["arc"]
    assert score["tasks"] == 3 and score["test_inputs"] == 4 and score["scored_tasks"] == 3
    assert all(0 <= score[f"{rule}@{k}"] <= 1 for rule in ("pass", "all_tests_pass") for k in (1, 2, 1000))
    assert result.eval_score == {"arc": score}
    assert record["all"]["count"] == 16
    submission = json.loads((run / "evaluations" / "step_0000002" / "submission.json").read_text())
    assert sorted(submission) == ["aaa", "bbb", "ccc"] and len(submission["aaa"]) == 2
    flat = flatten({k: v for k, v in record.items() if isinstance(v, dict)}, "eval")
    assert flat["eval/arc/pass@2"] == score["pass@2"] and "eval/all/exact_accuracy" in flat
    # eval_dataset_score=false: the set metrics only.
    off = tmp_path / "off"
    train(load_config(recipe, [f"run_dir={off}", "eval_dataset_score=false"]))
    (record,) = _records(off, "eval")
    assert "arc" not in record and record["all"]["count"] == 16
    assert not (off / "evaluations").exists()


@pytest.mark.slow
def test_two_torchrun_processes_log_the_same_arc_score_as_one(tmp_path, arc_tiny):
    """Training evaluates ARC under torchrun as in one process (each process its share of the test
    rows, gathered and scored once), and so does `hrm eval`."""
    recipe = _arc_recipe(tmp_path, arc_tiny)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    one, two = tmp_path / "one", tmp_path / "two"
    proc = _hrm("train", str(recipe), f"run_dir={one}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [*torchrun, "-m", "hrm", "train", str(recipe), f"run_dir={two}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("eval arc: pass@1") == 1  # scored once, on the main process
    (ea,), (eb,) = _records(one, "eval"), _records(two, "eval")
    assert set(ea["arc"]) == set(eb["arc"]) and ea["arc"]["scored_tasks"] == 3
    for key, value in ea["arc"].items():
        assert eb["arc"][key] == value, key
    for key in ("exact_accuracy", "accuracy", "count"):
        assert eb["all"][key] == pytest.approx(ea["all"][key], rel=1e-4, abs=1e-6), key
    # A tiny model's pass@k may well be 0: the submissions (each test input's top two candidates,
    # ranked by votes, halting confidence and first appearance) are compared too.
    sub = "evaluations/step_0000006/submission.json"
    assert json.loads((one / sub).read_text()) == json.loads((two / sub).read_text())
    # `hrm eval` of the same model, one process and two.
    ev1, ev2 = tmp_path / "ev1", tmp_path / "ev2"
    proc = _hrm("eval", str(one), "--batch-size", "6", "--device", "cpu", "--out", str(ev1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    eval_args = [str(one), "--batch-size", "6", "--device", "cpu", "--out", str(ev2), "--json"]
    proc = subprocess.run(
        [*torchrun, "-m", "hrm", "eval", *eval_args], capture_output=True, text=True, env=_env(), timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"halt":') == 1  # the report, printed by the main process only
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (ev1, ev2))
    assert m1["arc"] == m2["arc"] and m1["arc"]["pass@1"] == ea["arc"]["pass@1"]
    assert m2["metrics"]["all"]["count"] == 16
    s1, s2 = (json.loads((d / "submission.json").read_text()) for d in (ev1, ev2))
    assert s1 == s2
