"""What a hostile user can do to training, evaluation, export and solving: batches larger than the
data, `--overwrite` aimed at the wrong thing, torn and corrupt files, killed runs, NaN weights, values
out of range, absurd model cards and traces. Each ends in one line (or resumes), leaving nothing
half-written, and a resumed run ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hrm.config import TrainConfig, load_config
from hrm.errors import ConfigError, a_grid
from reliability_helpers import (
    assert_same_run,
    build_sudoku4,
    hrm,
    snapshot,
    write_recipe,
)

PUZZLE4 = "1.3.|..1.|4...|.1.."


@pytest.fixture(scope="module")
def sudoku4(tmp_path_factory) -> Path:
    return build_sudoku4(tmp_path_factory.mktemp("data") / "sudoku4")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, sudoku4) -> Path:
    return write_recipe(tmp_path_factory.mktemp("recipe") / "recipe.yaml", sudoku4)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, recipe) -> Path:
    """The uninterrupted run every resumed one must match."""
    run = tmp_path_factory.mktemp("straight") / "run"
    assert hrm("train", recipe, f"run_dir={run}").code == 0
    return run


class Killed(Exception):
    """Stands for SIGKILL: the run stops in the middle of a step, without saving anything."""


@contextlib.contextmanager
def killed_at(step: int) -> Iterator[None]:
    """Training dies inside step `step` (after the checkpoints of the steps before it)."""
    from hrm.models.losses import ACTLossHead

    original = ACTLossHead.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        if self.training:
            calls["n"] += 1
            if calls["n"] == step:
                raise Killed
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ACTLossHead, "forward", forward)
        yield


def interrupted(tmp_path: Path, recipe: Path, step: int) -> Path:
    """A run killed inside step `step`."""
    run = tmp_path / "run"
    with killed_at(step), pytest.raises(Killed):
        hrm("train", recipe, f"run_dir={run}")
    return run


def resume(run: Path) -> str:
    """`hrm train --resume RUN`, which must succeed; its stderr."""
    result = hrm("train", "--resume", run)
    assert result.code == 0, result.err
    return result.err


# -- 2: a global batch larger than the data ----------------------------------------------------


def test_a_global_batch_larger_than_an_epoch_is_refused_with_the_numbers(tmp_path, recipe):
    from hrm.distributed import DistInfo
    from hrm.training import build_training

    cfg = load_config(recipe, ["global_batch_size=61"])  # one epoch is 60 groups x 1 example
    with pytest.raises(ConfigError) as exc:
        build_training(cfg, DistInfo())
    message = str(exc.value)
    assert "61" in message and "60 examples" in message and "\n" not in message
    run = tmp_path / "run"
    line = hrm("train", recipe, f"run_dir={run}", "global_batch_size=100000").one_line_error()
    assert "100,000" in line and not run.exists()


def test_the_epochs_drawn_per_iteration_stay_within_the_order_cap(recipe, monkeypatch):
    from hrm.training import build

    monkeypatch.setattr(build, "ORDER_CAP", 1000)
    cfg = load_config(recipe, ["epochs=1000000", "max_steps=null"])
    # a run of 10^6 epochs reaches them all: still no more than 1000 order entries at a time
    epochs = build.epochs_per_iteration(cfg, total_groups=60, total_steps=3_750_000)
    assert epochs >= 1 and epochs * 60 <= 1000


# -- 3: --overwrite replaces only what the command made ---------------------------------------------


def test_export_overwrite_replaces_only_an_earlier_export(tmp_path, straight, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    run = tmp_path / "a" / "run"
    shutil.copytree(straight, run)
    other = tmp_path / "a" / "other-run"
    other.mkdir()
    (other / "config.yaml").write_text("data_path: x\n")
    stuff = tmp_path / "a" / "stuff"
    stuff.mkdir()
    (stuff / "notes.txt").write_text("mine")
    (tmp_path / "a" / "file.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    targets = {
        ".": "current directory",
        "..": "current directory or one above",
        str(run): "holds the model",
        str(run / "checkpoints"): "not an earlier export",
        str(tmp_path / "a"): "one above",  # the input's parent, and the current directory's
        str(other): "training run",
        str(stuff): "notes.txt",
        str(tmp_path / "a" / "file.txt"): "is a file",
    }
    for target, needle in targets.items():
        line = hrm("export", run, target, "--overwrite").one_line_error()
        assert needle in line and "refusing" in line, (target, line)
        assert snapshot(tmp_path) == before, target
    line = hrm("export", run / "checkpoints" / "step_0000012", run, "--overwrite").one_line_error()
    assert "refusing" in line and snapshot(tmp_path) == before

    out = tmp_path / "export"
    assert hrm("export", run, out).code == 0
    assert "already exists" in hrm("export", run, out).one_line_error()
    assert hrm("export", run, out, "--overwrite", "--no-ema").code == 0  # an earlier export: replaced
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_eval_out_refuses_a_file_and_files_it_did_not_write(tmp_path, straight, sudoku4):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    line = hrm("eval", straight, "--out", afile).one_line_error()
    assert "is a file" in line and afile.read_text() == "mine"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text("my own notes")
    line = hrm("eval", straight, "--out", foreign).one_line_error()
    assert "refusing" in line and (foreign / "metrics.json").read_text() == "my own notes"
    out = tmp_path / "ev"
    assert hrm("eval", straight, "--out", out).code == 0
    assert hrm("eval", straight, "--out", out, "--halt", "adaptive").code == 0  # its own output: replaced
    assert json.loads((out / "metrics.json").read_text())["halt"] == "adaptive"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]


# -- 4: durability ------------------------------------------------------------------------------


def test_a_torn_last_metrics_line_is_dropped_and_the_run_resumes(tmp_path, recipe, straight):
    run = interrupted(tmp_path, recipe, step=8)
    with (run / "metrics.jsonl").open("ab") as f:
        f.write(b'{"step": 8, "kind": "tra' + b"\0" * 64)
    err = resume(run)
    assert "metrics.jsonl" in err and "dropped 1" in err and len(err.splitlines()) == 1
    assert_same_run(straight, run)


def test_a_run_killed_before_its_first_checkpoint_restarts_in_place(tmp_path, recipe, straight):
    run = interrupted(tmp_path, recipe, step=2)
    assert (run / "config.yaml").exists() and not (run / "checkpoints").exists()
    err = resume(run)
    assert "no checkpoint was written yet" in err and "step 0" in err
    assert_same_run(straight, run)


@pytest.mark.parametrize(
    "part,damage",
    [
        ("training_state.pt", b"\0" * 100),
        ("training_state.pt", None),  # truncated to half
        ("model.safetensors", b"garbage"),
        ("ema.safetensors", None),
        ("rank0.pt", b""),
    ],
    ids=["state-nul", "state-cut", "weights-garbage", "ema-cut", "rank-empty"],
)
def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path, recipe, straight, part, damage):
    run = interrupted(tmp_path, recipe, step=8)  # checkpoints at steps 3 and 6
    target = run / "checkpoints" / "step_0000006" / part
    data = target.read_bytes()
    target.write_bytes(damage if damage is not None else data[: len(data) // 2])
    err = resume(run)
    lines = err.splitlines()
    assert len(lines) == 1 and "step_0000006" in lines[0] and part in lines[0]
    assert "resuming from step_0000003" in lines[0]
    assert_same_run(straight, run)


def test_a_checkpoint_of_the_wrong_shape_is_refused_saying_what_differs(tmp_path, recipe, straight):
    run = interrupted(tmp_path, recipe, step=5)  # one checkpoint, step 3
    state_file = run / "checkpoints" / "step_0000003" / "training_state.pt"
    original = state_file.read_bytes()
    state = torch.load(state_file, weights_only=True)
    entry = next(iter(state["optimizers"][1]["state"].values()))
    entry["exp_avg"] = torch.zeros(7, 3)
    torch.save(state, state_file)
    line = hrm("train", "--resume", run).one_line_error()
    assert "training_state.pt" in line and "exp_avg" in line and "7x3" in line

    rank_file = run / "checkpoints" / "step_0000003" / "rank0.pt"
    state_file.write_bytes(original)
    rank = torch.load(rank_file, weights_only=True)
    rank["carry"]["z_H"] = rank["carry"]["z_H"][:5]
    torch.save(rank, rank_file)
    line = hrm("train", "--resume", run).one_line_error()
    assert "rank0.pt" in line and "z_H" in line and "5x" in line


def test_a_wrongly_shaped_newest_carry_falls_back(tmp_path, recipe, straight):
    run = interrupted(tmp_path, recipe, step=8)
    rank_file = run / "checkpoints" / "step_0000006" / "rank0.pt"
    rank = torch.load(rank_file, weights_only=True)
    rank["carry"]["z_L"] = torch.zeros(2, 2)
    torch.save(rank, rank_file)
    err = resume(run)
    assert "z_L is 2x2" in err and "resuming from step_0000003" in err
    assert_same_run(straight, run)


def test_when_no_checkpoint_can_be_used_resume_says_which_and_why(tmp_path, recipe):
    run = interrupted(tmp_path, recipe, step=8)
    for step in ("step_0000003", "step_0000006"):
        (run / "checkpoints" / step / "model.safetensors").write_bytes(b"x")
    before = snapshot(run)
    line = hrm("train", "--resume", run).one_line_error()
    assert "step_0000003" in line and "step_0000006" in line and "start again from step 0" in line
    assert snapshot(run) == before


def test_stray_entries_and_leftovers_in_checkpoints_are_ignored_and_cleaned(tmp_path, recipe, straight):
    run = interrupted(tmp_path, recipe, step=8)
    root = run / "checkpoints"
    (root / "step_abc").mkdir()
    (root / "step_12x").mkdir()
    (root / "step_abc" / "model.safetensors").write_bytes(b"x")
    (root / ".tmp_step_0000009").mkdir()  # a save killed half-way
    (root / ".tmp_step_0000009" / "model.safetensors").write_bytes(b"half")
    (root / "latest").write_text("../../../elsewhere")
    assert hrm("eval", run).code == 0  # reads the newest complete checkpoint
    resume(run)
    assert not (root / ".tmp_step_0000009").exists()
    assert (root / "step_abc").is_dir()  # not ours to remove, only to ignore
    assert_same_run(straight, run)


def test_checkpoints_and_exports_fsync_their_files_and_directories(tmp_path, monkeypatch):
    import os

    from hrm.checkpoint import ModelCard, export_model, save_checkpoint
    from tiny_models import tiny_config, tiny_model

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the synced files")
    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run = tmp_path / "run"
    ckpt = save_checkpoint(run, 5, tiny_model(), ModelCard("hrm", tiny_config()), {"step": 5}, [{"rng": 1}])
    names = {Path(p).name for p in synced}
    for f in ("model.safetensors", "model.json", "rank0.pt", "training_state.pt"):
        assert f in names, f
    assert str((run / "checkpoints").resolve()) in synced  # the rename into place
    assert any(p.endswith(".tmp_step_0000005") for p in synced)  # the directory before it
    assert {"latest", ".latest.tmp"} & names
    synced.clear()
    out = export_model(ckpt, tmp_path / "exported")
    assert str(out.parent.resolve()) in synced
    assert {"model.safetensors", "model.json"} <= {Path(p).name for p in synced}


# -- 5: wrong results with exit 0 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory, straight) -> Path:
    out = tmp_path_factory.mktemp("nan") / "model"
    assert hrm("export", straight, out).code == 0
    weights = load_file(str(out / "model.safetensors"))
    save_file({k: v * float("nan") for k, v in weights.items()}, str(out / "model.safetensors"))
    return out


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_nan_weights_give_valid_json_a_warning_and_no_q_halt_credit(nan_model, sudoku4, tmp_path):
    result = hrm("eval", nan_model, "--data", sudoku4, "--json", "--out", tmp_path / "ev")
    assert result.code == 0
    assert len(result.err_lines) == 1 and "NaN" in result.err and result.err.startswith("hrm: warning:")
    report = _strict_json(result.out[result.out.index("{") :])
    metrics = report["metrics"]["all"]
    assert metrics["q_halt_accuracy"] == 0.0 and metrics["lm_loss"] is None
    _strict_json((tmp_path / "ev" / "metrics.json").read_text())

    result = hrm("solve", "-m", nan_model, PUZZLE4, "--json")
    assert result.code == 0 and len(result.err_lines) == 1 and "NaN" in result.err
    solution = _strict_json(result.out)["solutions"][0]
    assert solution["confidence"] is None and solution["q_halt"] is None


def test_q_halt_accuracy_never_counts_a_nan_as_right():
    from hrm.models import act_metrics

    labels = torch.tensor([[1, 2], [1, 2]])
    preds = torch.tensor([[0, 0], [1, 2]])  # wrong, right
    q = torch.tensor([float("nan"), float("nan")])
    m = act_metrics(labels, preds, q, torch.ones(2), torch.ones(2, dtype=torch.bool))
    assert m["q_halt_accuracy"].item() == 0


@pytest.mark.parametrize("value", ["-1", "0"])
def test_eval_max_batches_must_be_positive(straight, value):
    assert "--max-batches" in hrm("eval", straight, "--max-batches", value).one_line_error()


@pytest.mark.parametrize(
    "override",
    [
        "ema_rate=5",
        "eval_interval=0",
        "checkpoint_interval=-1",
        "lr_warmup_steps=-5",
        "arch.H_layers=0",
        "lr=nan",
        "lr=-1",
        "threads=-1",
        "arch.expansion=-1",
        "arch.hidden_size=1e9",
        "arch.L_cycles=1000000",
        "beta2=1",
        "seed=-3",
        "global_batch_size=true",
        "arch.rms_norm_eps=inf",
    ],
)
def test_config_values_out_of_range_are_refused_at_load(tmp_path, recipe, override):
    with pytest.raises(ConfigError) as exc:
        load_config(recipe, [override])
    assert override.split("=")[0].split(".")[-1] in str(exc.value) and "\n" not in str(exc.value)
    run = tmp_path / "run"
    hrm("train", recipe, f"run_dir={run}", override).one_line_error()
    assert not run.exists()  # refused before anything was created


def test_every_number_of_the_training_config_has_a_range():
    numeric = [
        name
        for name, field in TrainConfig.model_fields.items()
        if field.annotation in (int, float, int | None, float | None)
    ]
    assert len(numeric) >= 20
    base = {"data_path": "x"}
    for name in numeric:
        floating = TrainConfig.model_fields[name].annotation in (float, float | None)
        for bad in (-1, float("nan"), float("inf")) if floating else (-1, 2**64, 1.5, True):
            with pytest.raises(ValueError):
                TrainConfig(**base, **{name: bad})


def test_every_number_of_a_model_config_has_a_range():
    from hrm.models import MODELS, make_config

    for spec in MODELS.values():
        for name, field in spec.config_cls.model_fields.items():
            if field.annotation not in (int, float):
                continue
            floating = field.annotation is float
            for bad in (-1, float("nan"), float("inf")) if floating else (-1, 2**41, True):
                with pytest.raises(ConfigError):
                    make_config(spec.name, {"seq_len": 16, "vocab_size": 6, name: bad})


# -- 6: one line instead of a traceback -----------------------------------------------------------


def test_binary_recipe_and_config_yaml_are_one_line(tmp_path, recipe):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "binary.yaml" in hrm("train", binary).one_line_error()
    run = interrupted(tmp_path, recipe, step=2)
    (run / "config.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    assert "config.yaml" in hrm("train", "--resume", run).one_line_error()


def _card(tmp_path: Path, straight: Path, name: str, change) -> Path:
    out = tmp_path / name
    shutil.copytree(straight / "checkpoints" / "step_0000012", out)
    card = json.loads((out / "model.json").read_text())
    change(card)
    (out / "model.json").write_text(json.dumps(card))
    return out


@pytest.mark.parametrize(
    "name,change,needle",
    [
        ("huge", lambda c: c["config"].update(hidden_size=10**9), "GiB"),
        ("cycles", lambda c: c["config"].update(H_cycles=10**6), "H_cycles"),
        ("segments", lambda c: c["config"].update(halt_max_steps=10**6), "halt_max_steps"),
        ("list", lambda c: c.update(config=[1, 2]), "config"),
        ("model", lambda c: c.update(model=5), "model"),
        ("extra", lambda c: c.update(extra="x"), "extra"),
        ("nan", lambda c: c["config"].update(rope_theta=float("nan")), "rope_theta"),
    ],
)
def test_absurd_model_cards_are_one_line(tmp_path, straight, sudoku4, name, change, needle):
    card = _card(tmp_path, straight, name, change)
    commands = [
        ("eval", card, "--data", sudoku4),
        ("solve", "-m", card, PUZZLE4),
        ("export", card, tmp_path / "x"),
    ]
    for args in commands:
        line = hrm(*args).one_line_error()
        assert needle in line and "model.json" in line, (args, line)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "content", [b"- 1\n- 2\n", b"arch: [1, 2]\n", b"\xff\xfe\0binary", b"arch: {hidden_size: 1.0e+9}\n"]
)
def test_a_hostile_reference_config_is_one_line(tmp_path, straight, sudoku4, content):
    ref = tmp_path / "reference"
    ref.mkdir()
    torch.save(
        load_file(str(straight / "checkpoints" / "step_0000012" / "model.safetensors")), ref / "step_100"
    )
    (ref / "all_config.yaml").write_bytes(content)
    assert str(ref) in hrm("eval", ref, "--data", sudoku4).one_line_error()


@pytest.mark.parametrize(
    "flag,value", [("--views", "100000000"), ("--segments", "100000000"), ("--colour-perms", "100000000")]
)
def test_solve_caps_views_and_segments(straight, flag, value):
    line = hrm("solve", "-m", straight, PUZZLE4, flag, value).one_line_error()
    assert flag in line and "at most" in line


@pytest.fixture(scope="module")
def trace(tmp_path_factory, straight) -> dict:
    path = tmp_path_factory.mktemp("trace") / "trace.json"
    assert hrm("solve", "-m", straight, PUZZLE4, "--trace", path).code == 0
    return json.loads(path.read_text())


def _hostile(trace: dict, change) -> dict:
    copy = json.loads(json.dumps(trace))
    change(copy)
    return copy


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda t: t["puzzle"]["grid"][1].pop(), "rectangular"),
        (lambda t: t["puzzle"]["grid"][0].__setitem__(0, 999), "999"),
        (lambda t: t["segments"][0]["answer"][0].__setitem__(0, "x"), "'x'"),
        (lambda t: t["segments"][0]["steps"][0]["answer"].append([1, 2, 3, 4]), "size"),
        (lambda t: t["puzzle"].__setitem__("grid", [[0] * 40] * 40), "30"),
        (lambda t: t.__setitem__("segments", t["segments"] * 1000), "segments"),
        (lambda t: t["segments"][0].__setitem__("steps", t["segments"][0]["steps"] * 2000), "steps"),
        (lambda t: t["segments"][0].__setitem__("answer", [[True] * 4] * 4), "True"),
    ],
)
def test_hostile_traces_are_one_line(tmp_path, trace, change, needle):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_hostile(trace, change)))
    line = hrm("viz", "--export", path, "--out", tmp_path / "t.html").one_line_error()
    assert needle in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_a_deeply_nested_trace_is_one_line(tmp_path, trace):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(trace)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "t.json" in hrm("viz", "--export", path).one_line_error()


def test_the_limits_are_documented_with_their_values():
    from hrm import limits

    doc = limits.__doc__ or ""
    for name in dir(limits):
        if name.startswith("MAX_"):
            assert name in doc, name
    assert math.isclose(limits.MAX_MODEL_BYTES, 8 * 2**30)
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    assert "Reliability" in text and "8 GiB" in text


def test_a_killed_export_leaves_nothing_and_the_next_export_cleans_up(tmp_path, straight, monkeypatch):
    import hrm.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(checkpoint, "save_file", full)
    out = tmp_path / "deep" / "er" / "export"
    line = hrm("export", straight, out).one_line_error()
    assert "No space left" in line and "free some space" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert hrm("export", straight, out).code == 0


# -- 8: faults injected at every write of a checkpoint ------------------------------------------------


class Fault:
    """Raise `error` at the `at`-th call (1-based; 0: never) of the functions it wraps, counting calls."""

    def __init__(self, error: BaseException, at: int = 0):
        self.error, self.at, self.calls, self.active = error, at, 0, True

    def wrap(self, real):
        def wrapped(*args, **kwargs):
            if self.active:
                self.calls += 1
                if self.calls == self.at:
                    raise self.error
            return real(*args, **kwargs)

        return wrapped


def _inject(mp: pytest.MonkeyPatch, target: str, fault: Fault) -> None:
    import os

    import hrm.checkpoint
    import hrm.fileio

    places = {
        "safetensors": [(hrm.checkpoint, "save_file")],
        "torch.save": [(torch, "save")],
        "text": [(hrm.checkpoint, "write_file"), (hrm.fileio, "write_file")],
        "replace": [(os, "replace")],
        "fsync": [(os, "fsync")],
        "mkdir": [(os, "mkdir")],
    }[target]
    for owner, name in places:
        mp.setattr(owner, name, fault.wrap(getattr(owner, name)))


def _os_error(code: int) -> OSError:
    import os

    return OSError(code, os.strerror(code))


WRITES = ("safetensors", "torch.save", "text", "replace", "fsync", "mkdir")


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EACCES"])
@pytest.mark.parametrize("target", WRITES)
def test_a_failure_at_every_write_of_a_checkpoint_leaves_the_earlier_ones_intact(tmp_path, target, code):
    import errno

    from hrm.checkpoint import (
        ModelCard,
        latest_checkpoint,
        load_state,
        read_weights,
        save_checkpoint,
    )
    from hrm.errors import StorageError
    from tiny_models import tiny_config, tiny_model

    model, card = tiny_model(), ModelCard("hrm", tiny_config())
    ema = {k: v + 1 for k, v in model.state_dict().items()}

    def save(run: Path, step: int) -> Path:
        state = {"step": step, "optimizers": [{"x": torch.ones(3)}]}
        return save_checkpoint(run, step, model, card, state, [{"rng": torch.ones(2)}], ema, keep=2)

    template = tmp_path / "template"
    save(template, 1)
    counter = Fault(_os_error(errno.ENOSPC))
    shutil.copytree(template, tmp_path / "count")
    with pytest.MonkeyPatch.context() as mp:
        _inject(mp, target, counter)
        save(tmp_path / "count", 2)
    assert counter.calls >= 1, f"{target} is not used by a checkpoint save"
    for at in range(1, counter.calls + 1):
        run = tmp_path / f"run{at}"
        shutil.copytree(template, run)
        failed: StorageError | None = None
        with pytest.MonkeyPatch.context() as mp:
            _inject(mp, target, Fault(_os_error(getattr(errno, code)), at))
            try:
                save(run, 2)
            except StorageError as exc:
                failed = exc
        if failed is None:  # a failure the write survives (mkdir of a directory that exists): saved
            assert latest_checkpoint(run) == run / "checkpoints" / "step_0000002", at
        else:
            message = str(failed)
            assert "\n" not in message and "step_0000002" in message and os_strerror(code) in message
            assert "hrm train --resume" in message
        assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], at
        latest = latest_checkpoint(run)
        assert latest is not None and latest.name in ("step_0000001", "step_0000002"), at
        read_weights(latest / "model.safetensors")
        read_weights(latest / "ema.safetensors")
        assert load_state(latest / "training_state.pt")["step"] in (1, 2)
        assert save(run, 2).name == "step_0000002"  # the disk has room again
        assert latest_checkpoint(run) == run / "checkpoints" / "step_0000002"
        assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def os_strerror(code: str) -> str:
    import errno
    import os

    return os.strerror(getattr(errno, code))


@contextlib.contextmanager
def failing_save(number: int, target: str, error: BaseException) -> Iterator[None]:
    """The `number`-th checkpoint save of a training run meets `error` at its first `target` write."""
    import hrm.training.checkpointing as checkpointing

    real = checkpointing.save_checkpoint
    saves = {"n": 0}

    def save(*args, **kwargs):
        saves["n"] += 1
        if saves["n"] != number:
            return real(*args, **kwargs)
        with pytest.MonkeyPatch.context() as mp:
            _inject(mp, target, Fault(error, at=1))
            return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpointing, "save_checkpoint", save)
        yield


@pytest.mark.parametrize(
    "target,error,needle",
    [
        ("torch.save", "ENOSPC", "the disk is full"),
        ("replace", "EROFS", "read-only"),
        ("safetensors", "EACCES", "permission denied"),
        ("torch.save", "memory", "out of memory"),
    ],
)
def test_a_run_whose_checkpoint_fails_stops_in_one_line_and_resumes_bit_identical(
    tmp_path, recipe, straight, target, error, needle
):
    import errno

    fault = MemoryError() if error == "memory" else _os_error(getattr(errno, error))
    run = tmp_path / "run"
    with failing_save(2, target, fault):  # the checkpoint of step 6
        line = hrm("train", recipe, f"run_dir={run}").one_line_error()
    assert needle in line and "step_0000006" in line and "--resume" in line
    root = run / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000003"]
    resume(run)
    assert_same_run(straight, run)


def test_a_full_disk_while_logging_metrics_stops_in_one_line_and_resumes(tmp_path, recipe, straight):
    import errno

    real_open = Path.open
    writes = {"n": 0}

    def open_(self, mode="r", *args, **kwargs):
        if self.name == "metrics.jsonl" and mode == "a":
            writes["n"] += 1
            if writes["n"] == 8:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_open(self, mode, *args, **kwargs)

    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "open", open_)
        line = hrm("train", recipe, f"run_dir={run}").one_line_error()
    assert "metrics.jsonl" in line and "the disk is full" in line and "--resume" in line
    resume(run)
    assert_same_run(straight, run)


def _torchrun(*args: object) -> None:
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*command, "-m", "hrm", "train", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.slow
def test_two_processes_agree_on_the_checkpoint_to_fall_back_to(tmp_path, recipe):
    """Under torchrun only process 1's own state of the newest checkpoint is broken: both processes
    fall back to the checkpoint before it, and the run ends as the uninterrupted two-process run."""
    whole = tmp_path / "whole"
    _torchrun(recipe, f"run_dir={whole}", "max_steps=6")
    run = tmp_path / "resumed"
    shutil.copytree(whole, run)
    (run / "checkpoints" / "step_0000006" / "rank1.pt").write_bytes(b"\0" * 10)
    err = _torchrun("--resume", run)
    assert "rank1.pt" in err and "resuming from step_0000003" in err
    assert_same_run(whole, run)


def test_a_read_only_file_system_when_a_run_starts_is_one_line_and_leaves_nothing(tmp_path, recipe):
    import errno

    from hrm import fileio

    run = tmp_path / "a" / "b" / "run"
    with pytest.MonkeyPatch.context() as mp:
        _inject(mp, "text", Fault(_os_error(errno.EROFS), at=1))  # config.yaml
        line = hrm("train", recipe, f"run_dir={run}").one_line_error()
    assert "read-only" in line and str(run) in line
    assert not (tmp_path / "a").exists()
    assert fileio.write_file.__name__ == "write_file"  # the patch is gone


@pytest.mark.parametrize(
    ("rows", "cols", "text"),
    [
        (9, None, "a 9x9"),
        (8, None, "an 8x8"),
        (11, None, "an 11x11"),
        (18, 30, "an 18x30"),
        (81, None, "an 81x81"),
        (110, None, "a 110x110"),
        (30, 11, "a 30x11"),
    ],
)
def test_grid_sizes_take_the_spoken_article(rows, cols, text):
    assert a_grid(rows, cols) == text
