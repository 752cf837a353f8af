"""Fuzzing the commands in this process (`hrm.cli.main`) with generated bad input: arguments,
overrides, recipe files, model cards, checkpoints, traces and puzzle texts. Every bad input must end
with a non-zero exit and exactly one line on stderr, no traceback, nothing left behind (no file
created or changed) and within a time bound. Inputs that may happen to be valid (free puzzle text,
arbitrary trace edits) must either succeed or fail that way."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrm.config import DATA_FIELDS, TrainConfig
from hrm.models import HRMConfig
from reliability_helpers import Result, build_sudoku4, hrm, snapshot, write_recipe

SECONDS = 10.0  # the most any one bad input may take
FUZZ = settings(
    max_examples=25,
    deadline=None,  # timed below, with a bound that tolerates a busy machine
    database=None,  # nothing written to the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PUZZLE4 = "1.3.|..1.|4...|.1.."


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A dataset, a run with one checkpoint, its export and a trace: what the fuzzed commands read."""
    root = tmp_path_factory.mktemp("fuzz")
    data = build_sudoku4(root / "data")
    recipe = write_recipe(root / "recipe.yaml", data, max_steps=3, ema=False)
    run = root / "run"
    assert hrm("train", recipe, f"run_dir={run}").code == 0
    export = root / "export"
    assert hrm("export", run, export).code == 0
    trace = root / "trace.json"
    assert hrm("solve", "-m", run, PUZZLE4, "--trace", trace).code == 0
    scratch = root / "scratch"
    scratch.mkdir()
    return {
        "root": root,
        "data": data,
        "recipe": recipe,
        "run": run,
        "export": export,
        "trace": trace,
        "scratch": scratch,
    }


@contextlib.contextmanager
def unchanged(world: dict[str, Path]) -> Iterator[Path]:
    """A fresh scratch directory (the working directory too) for one example; afterwards the world,
    the scratch directory included, must be as it was when the block's command started."""
    scratch = world["scratch"]
    shutil.rmtree(scratch)
    scratch.mkdir()
    with contextlib.chdir(scratch):
        yield scratch


def fails_cleanly(world: dict[str, Path], *args: Any) -> Result:
    """Run `hrm ARGS`; it must fail in one line, quickly, changing nothing."""
    before = snapshot(world["root"])
    start = time.monotonic()
    result = hrm(*args)
    elapsed = time.monotonic() - start
    result.one_line_error()
    assert elapsed < SECONDS, (args, elapsed)
    assert snapshot(world["root"]) == before, args
    return result


def succeeds_or_fails_cleanly(world: dict[str, Path], *args: Any) -> Result:
    start = time.monotonic()
    before = snapshot(world["root"])
    result = hrm(*args)
    assert time.monotonic() - start < SECONDS, args
    if result.code != 0:
        result.one_line_error()
        assert snapshot(world["root"]) == before, args
    else:
        assert "Traceback" not in result.err
    return result


# -- generated values -----------------------------------------------------------------------------

TEXT = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=30)
JUNK = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1", "[1, 2]", "{a: 1}", "abc", "None", "''"]),
    st.from_regex(r"-[1-9][0-9]{0,12}", fullmatch=True),
)
BAD_INT = st.one_of(JUNK, st.sampled_from(["1.5", "9" * 30, "1e300", "true", "2e40"]))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

NUMBER_FIELDS = sorted(
    name
    for name, field in TrainConfig.model_fields.items()
    if field.annotation in (int, float, int | None, float | None)
)
UNIT_FIELDS = ("lr_min_ratio", "beta1", "beta2", "ema_rate")  # in [0, 1]
ARCH_INTS = sorted(
    name for name, f in HRMConfig.model_fields.items() if f.annotation is int and name not in DATA_FIELDS
)
ARCH_FLOATS = sorted(name for name, f in HRMConfig.model_fields.items() if f.annotation is float)


@st.composite
def bad_override(draw) -> str:
    kind = draw(st.sampled_from(["number", "unit", "arch-int", "arch-float", "unknown", "form"]))
    if kind == "number":
        field = draw(st.sampled_from(NUMBER_FIELDS))
        floating = TrainConfig.model_fields[field].annotation in (float, float | None)
        return f"{field}={draw(JUNK if floating else BAD_INT)}"
    if kind == "unit":
        return f"{draw(st.sampled_from(UNIT_FIELDS))}={draw(st.sampled_from(['5', '1.5', '-0.1', '2']))}"
    if kind == "arch-int":
        value = draw(st.one_of(BAD_INT, st.sampled_from(["0", "1e9", "1000000"])))
        field = draw(st.sampled_from(ARCH_INTS))
        if field == "puzzle_emb_ndim" and value == "0":
            value = "-1"
        return f"arch.{field}={value}"
    if kind == "arch-float":
        return f"arch.{draw(st.sampled_from(ARCH_FLOATS))}={draw(JUNK)}"
    if kind == "unknown":
        key = draw(st.from_regex(r"[a-z][a-z_.]{0,14}", fullmatch=True))
        if key in TrainConfig.model_fields or key.startswith("arch."):
            key = "no_such_" + key
        return f"{key}={draw(TEXT)}"
    return draw(st.from_regex(r"[a-z_.]{1,12}", fullmatch=True))  # no '='


# -- hrm train ----------------------------------------------------------------------------------------


@FUZZ
@given(overrides=st.lists(bad_override(), min_size=1, max_size=3))
def test_train_with_bad_overrides(world, overrides):
    with unchanged(world) as scratch:
        fails_cleanly(world, "train", world["recipe"], f"run_dir={scratch / 'run'}", *overrides)


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300), JSON.map(yaml.safe_dump)))
def test_train_with_a_bad_recipe_file(world, content):
    with unchanged(world) as scratch:
        recipe = scratch / "recipe.yaml"
        if isinstance(content, bytes):
            recipe.write_bytes(content)
        else:
            recipe.write_text(content)
        fails_cleanly(world, "train", recipe)  # no data_path: nothing it describes can train


COUNT_FIELDS = {"global_batch_size", "epochs", "eval_interval", "max_steps", "eval_max_batches"} | {
    "threads",
    "checkpoint_interval",
    "keep_checkpoints",
    "log_interval",
}


def in_documented_range(key: str, value: Any) -> bool:
    """The README's rule, independently of the code: a finite number, an integer where a count is
    meant (seeds up to 2**63 - 1, threads up to 1024, other counts up to 2**40), at least 1 for counts,
    at least 0 otherwise, and at most 1 (below 1 for betas) for rates."""
    annotation = TrainConfig.model_fields[key].annotation
    if value is None:
        return annotation in (int | None, float | None)  # "not set" is in the range of an optional
    floating = annotation in (float, float | None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    most = {"seed": 2**63 - 1, "threads": 1024}.get(key, 2**40)
    if not floating and (not float(value).is_integer() or value > most):
        return False
    if value < (1 if key in COUNT_FIELDS else 0):
        return False
    if key in ("beta1", "beta2"):
        return value < 1
    return value <= 1 if key in UNIT_FIELDS else True


@FUZZ
@given(
    key=st.sampled_from(NUMBER_FIELDS),
    value=st.one_of(JSON, st.floats(), st.integers(-(2**65), 2**65), st.sampled_from([5, 1, 1.0, -0.5])),
)
def test_train_with_a_recipe_value_of_any_type(world, key, value):
    if in_documented_range(key, value):
        return  # not a bad input
    recipe = yaml.safe_load(world["recipe"].read_text())
    recipe[key] = value
    with unchanged(world) as scratch:
        recipe["run_dir"] = str(scratch / "run")
        path = scratch / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        fails_cleanly(world, "train", path)


@FUZZ
@given(
    part=st.sampled_from(["training_state.pt", "rank0.pt", "model.safetensors"]),
    content=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                ["step", "world_size", "optimizers", "stream", "exploration_rng", "carry", "rng"]
            ),
            st.one_of(st.integers(-5, 5), st.builds(torch.zeros, st.integers(0, 3), st.integers(0, 3))),
            max_size=7,
        ),
    ),
)
def test_resume_from_a_bad_checkpoint(world, part, content):
    with unchanged(world) as scratch:
        run = scratch / "run"
        shutil.copytree(world["run"], run)
        target = run / "checkpoints" / "step_0000003" / part
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            torch.save(content, target)
        before = snapshot(run)
        fails_cleanly(world | {"root": run}, "train", "--resume", run)
        assert snapshot(run) == before


# -- hrm eval, hrm export: model cards and targets -------------------------------------------------

INT_BAD = st.one_of(
    st.sampled_from([2**41, 2**70, 1.5, None, "x", [], {}, float("nan")]), st.integers(max_value=-1)
)
FLOAT_BAD = st.sampled_from([-1.0, float("nan"), float("inf"), None, "x", [], {}])
OTHER_BAD = st.sampled_from(["x", None, [], {}, 1.5, -1])
MODEL_NAMES = {"hrm", "trm", "transformer"}
_CARD: list[Path] = []  # the exported model's card, set by the `world` fixture's user below


@st.composite
def bad_card(draw) -> Any:
    """A model card with one field out of its range or of the wrong type, or any JSON at all."""
    card = json.loads(_CARD[0].read_text())
    how = draw(st.sampled_from(["field", "model", "config", "loss_type", "extra", "any"]))
    if how == "field":
        field = draw(st.sampled_from(sorted(card["config"])))
        annotation = HRMConfig.model_fields[field].annotation
        value = draw(INT_BAD if annotation is int else FLOAT_BAD if annotation is float else OTHER_BAD)
        card["config"][field] = value
    elif how == "model":
        card["model"] = draw(st.one_of(OTHER_BAD, st.text(max_size=8).filter(lambda t: t not in MODEL_NAMES)))
    elif how == "config":
        card["config"] = draw(st.one_of(OTHER_BAD, st.lists(st.integers(), max_size=3)))
    elif how == "loss_type":
        card["loss_type"] = draw(st.one_of(OTHER_BAD, st.text(max_size=8)))
    elif how == "extra":
        card["extra"] = draw(st.sampled_from(["x", 1, [], 1.5, True]))
    else:
        card = draw(JSON)
    return card


@pytest.fixture(scope="module", autouse=True)
def _card_source(world):
    _CARD[:] = [world["export"] / "model.json"]


@FUZZ
@given(card=bad_card())
def test_eval_solve_and_export_a_bad_model_card(world, card):
    with unchanged(world) as scratch:
        model = scratch / "model"
        shutil.copytree(world["export"], model)
        (model / "model.json").write_text(json.dumps(card))
        fails_cleanly(world, "eval", model, "--data", world["data"])
        fails_cleanly(world, "solve", "-m", model, PUZZLE4)
        fails_cleanly(world, "export", model, scratch / "out")


@FUZZ
@given(
    flag=st.sampled_from(["--batch-size", "--max-batches"]),
    value=st.one_of(st.integers(max_value=0), st.integers(min_value=65537)),
)
def test_eval_with_bad_options(world, flag, value):
    if flag == "--max-batches" and value > 0:
        value = -value
    with unchanged(world) as scratch:
        fails_cleanly(world, "eval", world["run"], flag, value, "--out", scratch / "ev")


@FUZZ
@given(
    target=st.sampled_from(["cwd", "dot", "dotdot", "run", "ckpt", "ckpts", "data", "file", "notes", "root"])
)
def test_export_overwrite_aimed_at_the_wrong_thing(world, target):
    with unchanged(world) as scratch:
        (scratch / "file").write_text("mine")
        (scratch / "notes").mkdir()
        (scratch / "notes" / "a.txt").write_text("mine")
        run = world["run"]
        out = {
            "cwd": scratch,
            "dot": ".",
            "dotdot": "..",
            "run": run,
            "ckpt": run / "checkpoints" / "step_0000003",
            "ckpts": run / "checkpoints",
            "data": world["data"],
            "file": scratch / "file",
            "notes": scratch / "notes",
            "root": world["root"],  # holds the run exported
        }[target]
        assert "refusing" in fails_cleanly(world, "export", run, out, "--overwrite").err


# -- hrm solve --------------------------------------------------------------------------------------


@FUZZ
@given(
    flag=st.sampled_from(["--views", "--segments", "--batch-size", "--colour-perms", "--max-views"]),
    value=st.one_of(st.integers(min_value=70000, max_value=10**12), st.integers(max_value=-1)),
)
def test_solve_with_bad_counts(world, flag, value):
    with unchanged(world):
        fails_cleanly(world, "solve", "-m", world["run"], flag, value, PUZZLE4)


PUZZLE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=120
)


@FUZZ
@given(text=PUZZLE_TEXT, at=st.integers(min_value=0))
def test_solve_a_puzzle_no_kind_reads(world, text, at):
    bad = text[: at % (len(text) + 1)] + "z" + text[at % (len(text) + 1) :]  # 'z' is in no kind
    with unchanged(world):
        fails_cleanly(world, "solve", "-m", world["run"], "--json", "--", bad)


@FUZZ
@given(text=PUZZLE_TEXT)
def test_solve_any_puzzle_text(world, text):
    with unchanged(world):
        result = succeeds_or_fails_cleanly(world, "solve", "-m", world["run"], "--json", "--", text)
        if result.code == 0:
            json.loads(result.out)


@FUZZ
@given(content=st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_solve_a_file_of_anything(world, content):
    with unchanged(world) as scratch:
        path = scratch / "puzzles.txt"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        result = succeeds_or_fails_cleanly(world, "solve", "-m", world["run"], "--file", path)
        assert result.code != 0 or result.out


# -- hrm viz --export ---------------------------------------------------------------------------------

BAD_CELLS = st.sampled_from([999, -1, 10, "x", "", None, [], {}, 1.5, True, "#"])


def _grids(trace: dict[str, Any]) -> list[list[list[Any]]]:
    grids = [trace["puzzle"]["grid"]]
    for seg in trace["segments"]:
        grids.append(seg["answer"])
        grids.extend(step["answer"] for step in seg["steps"])
    return grids


@FUZZ
@given(data=st.data())
def test_viz_export_of_a_trace_with_a_bad_grid(world, data):
    trace = json.loads(world["trace"].read_text())
    grids = _grids(trace)
    grid = grids[data.draw(st.integers(0, len(grids) - 1))]
    how = data.draw(st.sampled_from(["cell", "ragged", "huge", "not-a-list"]))
    row = data.draw(st.integers(0, len(grid) - 1))
    if how == "cell":
        grid[row][data.draw(st.integers(0, len(grid[row]) - 1))] = data.draw(BAD_CELLS)
    elif how == "ragged":
        grid[row].append(0) if data.draw(st.booleans()) else grid[row].pop()
    elif how == "huge":
        grid.extend([[0] * len(grid[0])] * data.draw(st.integers(27, 200)))
    else:
        grid[row] = data.draw(st.one_of(JSON_SCALARS, st.dictionaries(st.text(max_size=3), st.integers())))
    with unchanged(world) as scratch:
        path = scratch / "trace.json"
        path.write_text(json.dumps(trace))
        fails_cleanly(world, "viz", "--export", path, "--out", scratch / "page.html")


@st.composite
def edited_trace(draw, trace: dict[str, Any]) -> dict[str, Any]:
    """`trace` with one value somewhere in it replaced by arbitrary JSON."""
    node: Any = trace
    path: list[Any] = []
    while isinstance(node, dict | list) and node and draw(st.integers(0, 3)) > 0:
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    value = draw(st.one_of(JSON, st.lists(st.integers(), min_size=3000, max_size=3000)))
    if not path:
        return value
    parent: Any = trace
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return trace


@FUZZ
@given(data=st.data())
def test_viz_export_of_an_edited_trace(world, data):
    trace = data.draw(edited_trace(json.loads(world["trace"].read_text())))
    with unchanged(world) as scratch:
        path = scratch / "trace.json"
        path.write_text(json.dumps(trace))
        result = succeeds_or_fails_cleanly(world, "viz", "--export", path, "--out", scratch / "page.html")
        assert (result.code == 0) == (scratch / "page.html").exists()


@FUZZ
@given(content=st.one_of(JSON.map(json.dumps), st.binary(max_size=300)))
def test_viz_export_of_anything(world, content):
    with unchanged(world) as scratch:
        path = scratch / "trace.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        fails_cleanly(world, "viz", "--export", path, "--out", scratch / "page.html")
