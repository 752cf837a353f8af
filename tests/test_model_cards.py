"""Every shipped model carries a model card (cards/NAME.yaml, stored in its model.json by
`hrm export --card`), and a bad card file is refused with one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hrm.checkpoint import PACKAGED_DIR, ModelCard, load_exportable, read_card_fields
from hrm.errors import ConfigError

CARDS = Path(__file__).resolve().parents[1] / "cards"
SHIPPED = sorted(d.name for d in PACKAGED_DIR.iterdir() if (d / "model.json").is_file())


def test_the_shipped_models_are_the_carded_ones():
    assert SHIPPED and sorted(p.stem for p in CARDS.glob("*.yaml")) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_carries_its_card_with_its_parameter_count(name):
    card = ModelCard.read(PACKAGED_DIR / name / "model.json").extra["card"]
    fields = {k: v for k, v in card.items() if k != "parameters"}
    assert fields == read_card_fields(CARDS / f"{name}.yaml")  # the package has the source's card
    _, model, _ = load_exportable(name)
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert any(name in line for line in card["recipe"]) and card["measured_with"]


def test_export_adds_a_card_and_keeps_where_the_weights_came_from(tmp_path, capsys):
    from hrm.cli import main

    out = tmp_path / "again"
    assert main(["export", "sudoku-9x9", str(out), "--card", str(CARDS / "sudoku-9x9.yaml")]) == 0
    extra = json.loads((out / "model.json").read_text())["extra"]
    shipped = json.loads((PACKAGED_DIR / "sudoku-9x9" / "model.json").read_text())["extra"]
    assert (
        extra == shipped
        and (out / "model.safetensors").read_bytes()
        == (PACKAGED_DIR / "sudoku-9x9" / "model.safetensors").read_bytes()
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("- a list\n", "a card is a mapping"),
        ("summary: x\n", "architecture"),
        (": : :\n", "cannot read it"),
        (
            yaml.safe_dump({**yaml.safe_load((CARDS / "sudoku-9x9.yaml").read_text()), "extra_field": 1}),
            "extra_field",
        ),
    ],
)
def test_a_bad_card_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        read_card_fields(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="cannot read it"):
        read_card_fields(tmp_path / "missing.yaml")


def test_the_shipped_weights_stay_small():
    total = sum(f.stat().st_size for f in PACKAGED_DIR.rglob("*") if f.is_file())
    assert total < 30 * 2**20, f"shipped models take {total / 2**20:.1f} MiB"


def test_export_sets_the_dtype_the_model_computes_in(tmp_path):
    from hrm.checkpoint import export_model

    out = export_model("sudoku-9x9", tmp_path / "bf16", forward_dtype="bfloat16")
    assert json.loads((out / "model.json").read_text())["config"]["forward_dtype"] == "bfloat16"
    assert (out / "model.safetensors").read_bytes() == (
        PACKAGED_DIR / "sudoku-9x9" / "model.safetensors"
    ).read_bytes()
    with pytest.raises(ConfigError, match="forward_dtype must be one of"):
        export_model("sudoku-9x9", tmp_path / "bad", forward_dtype="int8")
    with pytest.raises(ConfigError, match="has no forward_dtype"):
        export_model("agent-unlocklocal", tmp_path / "agent", forward_dtype="float32")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "agent").exists()


@pytest.mark.parametrize(
    "model, level, message",
    [
        ("maze-hard", "extreme", "maze difficulty 'extreme' is not one of any, hard"),
        ("sudoku-9x9", "impossible", "impossible"),
        ("agent-unlocklocal", "hard", "puzzle kind is not known"),
    ],
)
def test_a_card_difficulty_the_kind_does_not_generate_is_refused(tmp_path, model, level, message):
    from hrm.checkpoint import export_model

    card = tmp_path / "card.yaml"
    card.write_text(
        yaml.safe_dump({**yaml.safe_load((CARDS / f"{model}.yaml").read_text()), "difficulty": level})
    )
    with pytest.raises(ConfigError, match=message) as err:
        export_model(model, tmp_path / "out", card_file=card)
    assert str(card) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_the_maze_card_names_the_level_the_viewer_generates():
    card = ModelCard.read(PACKAGED_DIR / "maze-hard" / "model.json").extra["card"]
    assert card["difficulty"] == "hard"
