"""Parity with the reference implementations, through every golden fixture found.

Fixtures are pairs NAME.json + NAME.safetensors recorded from the reference models (see
tests/fixtures/README.md). The public ones ship in tests/fixtures/; ../shared/fixtures (beside the
repository) and $HRM_FIXTURES_DIR add more. A fixture name found twice is tested once (the first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hrm.models import ACTLossHead, build_model, load_weights

# The fixtures' documented tolerance, for tensors and for the metrics summed from them alike.
RTOL = ATOL = 1e-3
METRIC_RTOL = RTOL
REPO = Path(__file__).resolve().parents[2]


def _fixture_dirs() -> list[Path]:
    dirs = [REPO / "tests" / "fixtures", REPO.parent / "shared" / "fixtures"]
    env = os.environ.get("HRM_FIXTURES_DIR")
    if env:
        dirs.append(Path(env))
    return dirs


def _discover() -> list[Path]:
    found: dict[str, Path] = {}
    for root in _fixture_dirs():
        if root.is_dir():
            for p in sorted(root.glob("*.json")):
                if p.with_suffix(".safetensors").exists():
                    found.setdefault(p.stem, p)
    return [found[name] for name in sorted(found)]


FIXTURES = _discover()


def test_the_public_fixtures_ship_with_the_repository():
    """A fresh clone runs parity: the public fixtures are in tests/fixtures, not only beside it."""
    names = {p.stem for p in FIXTURES}
    assert {"hrm_parity_a", "trm_parity_a", "transformer_rope", "transformer_learned_no_act"} <= names


def _batch(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    names = ("inputs", "labels", "puzzle_identifiers")
    return {k: tensors[f"{prefix}.{k}"] for k in names}


def _close(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    ours64, ref64 = ours.detach().double(), ref.double()
    if not torch.allclose(ours64, ref64, rtol=RTOL, atol=ATOL):
        worst = (ours64 - ref64).abs().max().item()
        raise AssertionError(f"{name}: max abs difference {worst:.3e}")


def _exact(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert torch.equal(ours.to(ref.dtype).cpu(), ref), f"{name}: {ours.tolist()} != {ref.tolist()}"


def _metrics_match(where: str, ours: dict[str, torch.Tensor], ref: dict[str, float]) -> None:
    for key, expected in ref.items():
        assert key in ours, f"{where}: metric {key} missing"
        got = float(ours[key])
        assert got == pytest.approx(expected, rel=METRIC_RTOL, abs=1e-6), (
            f"{where}: {key} {got} != {expected}"
        )
    extra = set(ours) - set(ref)
    assert not extra, f"{where}: metrics {sorted(extra)} not in the reference"


def _build(spec: dict, tensors: dict[str, torch.Tensor]) -> ACTLossHead:
    model = build_model(spec["model"], spec["config"])
    state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    load_weights(model, state, source="fixture state")
    return ACTLossHead(model, spec["loss_type"])


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_eval_parity(fixture: Path):
    spec = json.loads(fixture.read_text())
    tensors = load_file(str(fixture.with_suffix(".safetensors")))
    assert spec.get("ignore_label_id", -100) == -100
    head = _build(spec, tensors).eval()
    batch = _batch(tensors, "batch1")
    carry = head.initial_carry(batch)
    metrics = {}
    with torch.no_grad():
        for k in range(1, spec["eval_steps"] + 1):
            step = head(carry, batch)
            carry, loss, metrics, outputs = step.carry, step.loss, step.metrics, step.outputs
            p = f"eval.step{k}"
            for name in ("logits", "q_halt_logits", "q_continue_logits"):
                _close(f"{p}.{name}", outputs[name], tensors[f"{p}.{name}"])
            _close(f"{p}.z_H", carry.z_H, tensors[f"{p}.z_H"])
            if f"{p}.z_L" in tensors:
                _close(f"{p}.z_L", carry.z_L, tensors[f"{p}.z_L"])
            else:  # a model with no L state (the transformer baseline) carries z_H alone
                assert not head.model.inner.has_L_state, f"{p}.z_L: the reference has no L state, we do"
            _close(f"{p}.loss", loss.reshape(1), tensors[f"{p}.loss"])
            _exact(f"{p}.halted", carry.halted, tensors[f"{p}.halted"])
    _metrics_match("eval final", metrics, spec["eval_final_metrics"])


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_train_parity(fixture: Path):
    spec = json.loads(fixture.read_text())
    tensors = load_file(str(fixture.with_suffix(".safetensors")))
    head = _build(spec, tensors).train()
    params = dict(head.model.named_parameters())
    carry = head.initial_carry(_batch(tensors, "batch1"))
    for k, ref_metrics in enumerate(spec["train"], start=1):
        p = f"train.step{k}"
        for param in params.values():
            param.grad = None
        step = head(carry, _batch(tensors, f"batch{k}"))
        carry, loss, metrics, outputs = step.carry, step.loss, step.metrics, step.outputs
        loss.backward()
        _close(f"{p}.loss", loss.reshape(1), tensors[f"{p}.loss"])
        _exact(f"{p}.halted", carry.halted, tensors[f"{p}.halted"])
        _exact(f"{p}.steps", carry.steps, tensors[f"{p}.steps"])
        for name, value in carry.current_data.items():
            _exact(f"{p}.current_data.{name}", value, tensors[f"{p}.current_data.{name}"])
        for name in ("logits", "q_halt_logits", "q_continue_logits", "target_q_continue"):
            key = f"{p}.{name}"
            if key in tensors:
                assert name in outputs, f"{key}: the reference has it, we do not"
                _close(key, outputs[name], tensors[key])
            elif name == "target_q_continue":
                assert name not in outputs, f"{key}: we compute it, the reference does not"
        grads = {k.removeprefix(f"{p}.grad."): v for k, v in tensors.items() if k.startswith(f"{p}.grad.")}
        assert grads, f"{p}: fixture holds no gradients"
        for name, ref in grads.items():
            if name == "inner.puzzle_emb.local_weights":
                ours = head.model.inner.puzzle_emb.local_weights.grad
            else:
                assert name in params, f"{p}.grad.{name}: no such parameter"
                ours = params[name].grad
            assert ours is not None, f"{p}.grad.{name}: no gradient reached it"
            _close(f"{p}.grad.{name}", ours, ref)
        own_grads = {n for n, prm in params.items() if prm.grad is not None}
        assert own_grads <= set(grads), (
            f"{p}: gradients the reference lacks: {sorted(own_grads - set(grads))}"
        )
        _metrics_match(p, metrics, ref_metrics)
