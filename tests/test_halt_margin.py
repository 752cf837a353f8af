"""The margin of adaptive halting: a call argument of the model and the runner (evaluation only),
`hrm.solve(halt_margin=)` and `hrm solve --halt-margin`, and a model card's default
(`hrm export --halt-margin`); the shipped Sudoku model's card asks for 4 (benchmarks/halting.py)."""

from __future__ import annotations

import json

import pytest
import torch

import hrm
from hrm.checkpoint import ModelCard, save_checkpoint
from hrm.cli import main
from hrm.errors import HRMError
from hrm.inference import run_until_halted
from hrm.models import ACTModel
from tiny_models import save_tiny, tiny_config, tiny_model

EASY4 = "1.3..3.1.4.2..1."  # a consistent 4x4 puzzle: the tiny model's answers are not checked


def _batch(rows: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "inputs": torch.randint(1, 6, (rows, 16), generator=g, dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(rows, dtype=torch.int32),
    }


@pytest.mark.parametrize("name", ["hrm", "trm"])
def test_the_margin_moves_the_halting_point_and_zero_is_the_reference_rule(name):
    model = tiny_model(name, halt_max_steps=8)
    batch = _batch()
    default = run_until_halted(model, batch, halt="adaptive")
    zero = run_until_halted(model, batch, halt="adaptive", halt_margin=0.0)
    assert torch.equal(default.steps, zero.steps) and torch.equal(default.preds, zero.preds)
    never = run_until_halted(model, batch, halt="adaptive", halt_margin=100.0)
    assert (never.steps == 8).all()  # no Q value of these weights reaches 100
    always = run_until_halted(model, batch, halt="adaptive", halt_margin=-100.0)
    assert (always.steps == 1).all()
    higher = run_until_halted(model, batch, halt="adaptive", halt_margin=0.5)
    assert (higher.steps >= zero.steps).all()  # a larger margin never halts earlier
    assert torch.equal(run_until_halted(model, batch, halt="max", halt_margin=-100.0).steps, never.steps)


def test_training_halts_by_the_reference_rule_whatever_the_margin():
    model = tiny_model("hrm", halt_max_steps=8).train()
    batch = _batch()
    halted = []
    for margin in (0.0, 100.0):
        torch.manual_seed(0)
        carry = model.initial_carry(batch)
        carry, _ = model(carry, batch, halt_margin=margin)
        carry, _ = model(carry, batch, halt_margin=margin)
        halted.append(carry.halted)
    assert torch.equal(halted[0], halted[1])


@pytest.mark.parametrize("margin", [float("nan"), float("inf"), 101.0, True, "4"])
def test_a_bad_margin_is_refused(margin):
    with pytest.raises(HRMError, match="halt margin"):
        run_until_halted(tiny_model("hrm"), _batch(), halt="adaptive", halt_margin=margin)


def test_the_shipped_sudoku_model_halts_with_its_cards_margin(capsys):
    card = json.loads((hrm.checkpoint.PACKAGED_DIR / "sudoku-9x9" / "model.json").read_text())
    assert card["extra"]["halt_margin"] == 4.0
    puzzle = "053006000106000040800100300000604502005070008400201000000000004004903650600000000"
    model = hrm.load_model("sudoku-9x9")
    assert hrm.solve(model, puzzle).halt_margin == 4.0
    assert hrm.solve(model, puzzle, halt_margin=0).halt_margin == 0.0
    assert main(["solve", "-m", "sudoku-9x9", "--json", "--halt-margin", "1.5", puzzle]) == 0
    assert json.loads(capsys.readouterr().out)["solutions"][0]["halt_margin"] == 1.5
    assert main(["solve", "-m", "sudoku-9x9", "--halt-margin", "nan", puzzle]) == 1
    err = capsys.readouterr().err
    assert "halt margin" in err and err.count("\n") == 1


def test_export_stores_a_margin_that_solving_then_uses_and_a_bad_card_margin_is_one_line(tmp_path, capsys):
    run = save_tiny(tmp_path / "run", tiny_config())
    out = tmp_path / "exported"
    assert main(["export", str(run), str(out), "--halt-margin", "-2.5"]) == 0
    assert json.loads((out / "model.json").read_text())["extra"]["halt_margin"] == -2.5
    assert hrm.solve(str(out), EASY4).halt_margin == -2.5
    assert main(["export", str(run), str(tmp_path / "bad"), "--halt-margin", "1e9"]) == 1
    assert not (tmp_path / "bad").exists()
    card = json.loads((out / "model.json").read_text())
    card["extra"]["halt_margin"] = "high"
    (out / "model.json").write_text(json.dumps(card))
    with pytest.raises(HRMError, match="card's halt margin"):
        hrm.solve(str(out), EASY4)


def test_export_sets_the_segments_solving_runs_and_a_bad_count_is_one_line(tmp_path, capsys):
    """`hrm export --segments N`: the exported model's halt_max_steps, all of which `--halt max` runs;
    the weights are the run's, unchanged."""
    run = save_tiny(tmp_path / "run", tiny_config())
    plain, longer = tmp_path / "plain", tmp_path / "longer"
    assert main(["export", str(run), str(plain)]) == 0
    assert main(["export", str(run), str(longer), "--segments", "11"]) == 0
    assert json.loads((longer / "model.json").read_text())["config"]["halt_max_steps"] == 11
    assert (plain / "model.safetensors").read_bytes() == (longer / "model.safetensors").read_bytes()
    assert hrm.solve(str(longer), EASY4, halt="max").segments == 11
    assert hrm.solve(str(plain), EASY4, halt="max").segments == tiny_config()["halt_max_steps"]
    capsys.readouterr()
    for bad in ("0", "257", "-3"):
        assert main(["export", str(run), str(tmp_path / f"bad{bad}"), "--segments", bad]) == 1
        err = capsys.readouterr().err
        assert "segments must be a whole number" in err and err.count("\n") == 1, err
        assert not (tmp_path / f"bad{bad}").exists()


def test_export_sets_the_h_cycles_solving_runs_and_refuses_a_model_without_them(tmp_path, capsys):
    """`hrm export --h-cycles N`: the exported model recurses N H cycles per segment when solving; the
    weights are the run's, unchanged. A count out of range, or a transformer (no cycles), is one line
    and writes nothing."""
    run = save_tiny(tmp_path / "run", tiny_config())
    plain, deeper = tmp_path / "plain", tmp_path / "deeper"
    assert main(["export", str(run), str(plain)]) == 0
    assert main(["export", str(run), str(deeper), "--h-cycles", "3", "--segments", "4"]) == 0
    config = json.loads((deeper / "model.json").read_text())["config"]
    assert (config["H_cycles"], config["halt_max_steps"]) == (3, 4)
    assert (plain / "model.safetensors").read_bytes() == (deeper / "model.safetensors").read_bytes()
    loaded = hrm.load_model(str(deeper)).model
    assert isinstance(loaded, ACTModel) and loaded.inner.config.H_cycles == 3
    batch = _batch()
    deep_out = run_until_halted(loaded, batch, halt="max").logits
    plain_out = run_until_halted(hrm.load_model(str(plain)).model, batch, halt="max").logits
    assert not torch.allclose(deep_out, plain_out)  # the extra cycle changes the answer's logits
    capsys.readouterr()
    for bad in ("0", "33"):
        assert main(["export", str(run), str(tmp_path / f"bad{bad}"), "--h-cycles", bad]) == 1
        err = capsys.readouterr().err
        assert "H cycles must be a whole number in 1..32" in err and err.count("\n") == 1, err
        assert not (tmp_path / f"bad{bad}").exists()
    flat = tiny_model("transformer")
    save_checkpoint(tmp_path / "flat", 1, flat, ModelCard("transformer", flat.inner.config.model_dump()), {})
    assert main(["export", str(tmp_path / "flat"), str(tmp_path / "flat-out"), "--h-cycles", "2"]) == 1
    err = capsys.readouterr().err
    assert "not a transformer model" in err and err.count("\n") == 1, err
    assert not (tmp_path / "flat-out").exists()


@pytest.mark.parametrize("name", ["hrm", "trm"])
def test_one_segment_of_four_h_cycles_is_two_segments_of_two(name):
    """A segment hands (z_H, z_L) to the next unchanged, so the H cycles per segment are not in the
    weights: 2 segments of 4 H cycles compute bit for bit what 4 segments of 2 do (why an export with
    more H cycles is the same model given more recursion), and 3 cycles differ."""
    batch = _batch()
    outs = {
        (cycles, segments): run_until_halted(
            tiny_model(name, H_cycles=cycles, halt_max_steps=segments), batch, halt="max"
        ).logits
        for cycles, segments in ((2, 4), (4, 2), (3, 2))
    }
    assert torch.equal(outs[2, 4], outs[4, 2])
    assert not torch.allclose(outs[2, 4], outs[3, 2])
