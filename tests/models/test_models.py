from __future__ import annotations

import pytest
import torch

from hrm.errors import CheckpointError, ConfigError
from hrm.models import (
    ACTLossHead,
    build_model,
    count_parameters,
    cpu_rows_per_slice,
    load_weights,
    make_config,
)
from hrm.models.layers import trunc_normal_
from tiny_models import tiny_config

SMALL = tiny_config(batch_size=4, num_puzzle_identifiers=3, puzzle_emb_ndim=32, halt_max_steps=2)


def _batch(size=4, seq=16, vocab=6, ids=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "inputs": torch.randint(1, vocab, (size, seq), generator=g, dtype=torch.int32),
        "labels": torch.randint(1, vocab, (size, seq), generator=g, dtype=torch.int32),
        "puzzle_identifiers": torch.randint(0, ids, (size,), generator=g, dtype=torch.int32),
    }


def test_default_hrm_has_the_published_parameter_count():
    model = build_model("hrm", seq_len=81, vocab_size=11, puzzle_emb_ndim=512)
    assert count_parameters(model) == 27_275_266


def test_transformer_baseline_matches_hrm_budget():
    hrm = build_model("hrm", seq_len=81, vocab_size=11, puzzle_emb_ndim=512)
    base = build_model("transformer", seq_len=81, vocab_size=11, puzzle_emb_ndim=512)
    assert count_parameters(base) == count_parameters(hrm)


def test_truncated_normal_has_the_requested_std():
    torch.manual_seed(0)
    x = trunc_normal_(torch.empty(200_000), std=0.5)
    assert x.std().item() == pytest.approx(0.5, rel=0.01)
    assert x.abs().max().item() <= 2 * 0.5 / 0.87  # truncated near 2 sigma of the widened normal


def _saved_tensor_bytes(head: ACTLossHead, batch) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    head.train()
    carry = head.initial_carry(batch)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = head(carry, batch).loss
    loss.backward()
    return total


@pytest.mark.parametrize("name", ["hrm", "trm"])
def test_one_step_gradient_memory_does_not_grow_with_cycles(name):
    sizes = {}
    for cycles in (2, 4, 8):
        cfg = dict(SMALL, H_cycles=cycles, L_cycles=cycles)
        if name == "trm":
            cfg["puzzle_emb_len"] = 1
        torch.manual_seed(0)
        head = ACTLossHead(build_model(name, cfg))
        sizes[cycles] = _saved_tensor_bytes(head, _batch())
    if name == "hrm":
        # One L step and one H step keep activations, whatever the cycles.
        assert sizes[2] == sizes[4] == sizes[8]
    else:
        # TRM back-propagates through its last full cycle (L_cycles updates): grows with L only.
        assert sizes[8] < 8 * sizes[2]
    # Full back-propagation through time, for contrast, grows with the number of updates.
    cfg = dict(SMALL, H_cycles=8, L_cycles=8, full_backprop=True)
    if name == "trm":
        cfg["puzzle_emb_len"] = 1
    full = _saved_tensor_bytes(ACTLossHead(build_model(name, cfg)), _batch())
    assert full > 10 * sizes[8 if name == "hrm" else 2]


def test_hrm_saved_tensors_constant_across_cycle_grid():
    seen = set()
    for h, l in [(2, 2), (2, 8), (8, 2), (8, 8)]:
        torch.manual_seed(0)
        head = ACTLossHead(build_model("hrm", dict(SMALL, H_cycles=h, L_cycles=l)))
        seen.add(_saved_tensor_bytes(head, _batch()))
    assert len(seen) == 1


def test_load_weights_accepts_compiled_and_wrapped_prefixes():
    src = build_model("hrm", SMALL)
    dst = build_model("hrm", SMALL)
    state = {f"_orig_mod.model.{k}": v for k, v in src.state_dict().items()}
    load_weights(dst, state)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_load_weights_reports_missing_and_unexpected_in_one_message():
    model = build_model("hrm", SMALL)
    state = dict(model.state_dict())
    state.pop("inner.lm_head.weight")
    state["inner.bogus.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as exc:
        load_weights(model, state, source="my.safetensors")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "my.safetensors" in msg and "inner.lm_head.weight" in msg and "inner.bogus.weight" in msg


def test_load_weights_reports_shape_mismatch():
    model = build_model("hrm", SMALL)
    other = build_model("hrm", dict(SMALL, vocab_size=9))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(model, other.state_dict())


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="L_cycels"):
        make_config("hrm", dict(SMALL, L_cycels=3))
    with pytest.raises(ConfigError, match="num_heads"):
        make_config("hrm", dict(SMALL, num_heads=5))
    with pytest.raises(ConfigError, match="unknown model"):
        make_config("gpt", SMALL)
    with pytest.raises(ConfigError, match="puzzle_emb_len"):
        make_config("trm", dict(SMALL, puzzle_emb_ndim=0))


def test_reference_class_names_resolve():
    assert type(make_config("HierarchicalReasoningModel_ACTV1", SMALL)).__name__ == "HRMConfig"
    cfg = make_config("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", SMALL)
    assert type(cfg).__name__ == "TRMConfig"
    cfg = make_config("recursive_reasoning.transformers_baseline@Model_ACTV2", SMALL)
    assert type(cfg).__name__ == "TransformerConfig" and cfg.block_count() == SMALL["H_layers"]
    # The TRM repository's ablations reuse TRM's class name in other modules: refused, not mistaken.
    with pytest.raises(ConfigError, match=r"unknown model 'recursive_reasoning\.trm_singlez@"):
        make_config("recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1", SMALL)


def test_the_transformer_baseline_is_the_references_ablation():
    model = build_model("transformer", seq_len=16, vocab_size=5, hidden_size=32, num_heads=2, H_layers=3)
    assert len(model.inner.H_level.layers) == 3 and "inner.L_init" not in model.state_dict()
    batch = {
        "inputs": torch.randint(0, 5, (2, 16)),
        "labels": torch.randint(0, 5, (2, 16)),
        "puzzle_identifiers": torch.zeros(2, dtype=torch.int32),
    }
    carry = model.initial_carry(batch)
    assert carry.z_L is carry.z_H  # no L state
    # act_enabled=false: training runs every row for all segments, whatever the Q head says
    off = build_model(
        "transformer",
        seq_len=16,
        vocab_size=5,
        hidden_size=32,
        num_heads=2,
        halt_max_steps=3,
        act_enabled=False,
    )
    with torch.no_grad():
        off.inner.q_head.bias.copy_(torch.tensor([9.0, -9.0]))  # Q-halt far above Q-continue
    off.train()
    carry = off.initial_carry(batch)
    for _ in range(2):
        carry, outputs = off(carry, batch)
        assert not carry.halted.any() and "target_q_continue" not in outputs
    with pytest.raises(ConfigError, match="act_inference must be false"):
        make_config("transformer", SMALL, act_inference=True)


@pytest.mark.parametrize(
    "name,extra",
    [
        ("hrm", dict(pos_encodings="learned", puzzle_emb_ndim=48, expansion=2.5)),
        ("trm", dict(mlp_t=True, pos_encodings="none", puzzle_emb_len=0, puzzle_emb_ndim=48)),
        ("trm", dict(no_ACT_continue=False, puzzle_emb_ndim=0, puzzle_emb_len=0)),
        ("transformer", dict(halt_max_steps=1)),
        ("hrm", dict(forward_dtype="bfloat16")),
    ],
)
def test_variants_train_and_evaluate(name, extra):
    torch.manual_seed(0)
    head = ACTLossHead(build_model(name, dict(SMALL, **extra)), "softmax_cross_entropy")
    batch = _batch()
    head.train()
    carry = head.initial_carry(batch)
    loss = head(carry, batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    head.eval()
    carry = head.initial_carry(batch)
    with torch.no_grad():
        for _ in range(head.model.config.halt_max_steps):
            out = head(carry, batch)
            carry = out.carry
    assert bool(out.all_halted)
    assert out.outputs["logits"].shape == (4, 16, 6)
    assert int(out.metrics["count"]) == 4


def test_adaptive_halting_stops_early_at_inference():
    torch.manual_seed(0)
    model = build_model("hrm", dict(SMALL, halt_max_steps=8)).eval()
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([5.0, -5.0]))  # Q says halt at once
    batch = _batch()
    carry = model.initial_carry(batch)
    with torch.no_grad():
        carry, _ = model(carry, batch, halt="adaptive")
    assert carry.halted.all() and (carry.steps == 1).all()
    carry = model.initial_carry(batch)
    with torch.no_grad():
        carry, _ = model(carry, batch, halt="max")
    assert not carry.halted.any()
    carry = model.initial_carry(batch)
    with torch.no_grad():
        for _ in range(3):  # a segment limit given per call halts every row at that count
            carry, _ = model(carry, batch, halt="max", max_segments=3)
    assert carry.halted.all() and (carry.steps == 3).all()


def test_trace_hook_sees_every_inner_update():
    model = build_model("hrm", dict(SMALL, H_cycles=3, L_cycles=4)).eval()
    seen = []
    batch = _batch()
    with torch.no_grad():
        model(model.initial_carry(batch), batch, hook=lambda kind, i, zh, zl: seen.append(kind))
    assert seen.count("L") == 12 and seen.count("H") == 3
    assert seen[:5] == ["L", "L", "L", "L", "H"]


@pytest.mark.parametrize(
    "name,extra",
    [
        ("hrm", dict(H_cycles=2, L_cycles=3)),
        ("trm", dict(mlp_t=True, pos_encodings="none", puzzle_emb_len=0, puzzle_emb_ndim=0)),
        ("transformer", dict(halt_max_steps=2)),
    ],
)
def test_reasoning_over_batch_slices_changes_no_number(name, extra):
    """On a CPU `reason` runs over slices of the batch; loss, outputs, new state and every gradient
    are those of the whole batch at once, in training and at inference."""
    results = []
    for chunk_bytes in (0, 1):  # off; one row per slice (the smallest the rule gives)
        torch.manual_seed(0)
        head = ACTLossHead(build_model(name, dict(SMALL, batch_size=5, **extra)), "softmax_cross_entropy")
        rows = cpu_rows_per_slice(head.model.config, 5, torch.device("cpu"), chunk_bytes)
        assert rows == (None if chunk_bytes == 0 else 1)
        batch = _batch(size=5)
        head.train()
        torch.manual_seed(1)
        step = head(head.initial_carry(batch), batch, rows_per_slice=rows)
        carry, loss, outputs = step.carry, step.loss, step.outputs
        loss.backward()
        grads = {k: p.grad.clone() for k, p in head.named_parameters() if p.grad is not None}
        head.eval()
        with torch.no_grad():
            eval_out = head(carry, batch, rows_per_slice=rows).outputs
        results.append((loss.detach(), carry.z_H, carry.z_L, outputs, grads, eval_out["logits"]))
    (loss0, h0, l0, out0, g0, e0), (loss1, h1, l1, out1, g1, e1) = results
    torch.testing.assert_close(loss1, loss0)
    torch.testing.assert_close(h1, h0)
    torch.testing.assert_close(l1, l0)
    for key in ("logits", "q_halt_logits", "q_continue_logits"):
        torch.testing.assert_close(out1[key], out0[key])
    assert g1.keys() == g0.keys() and len(g0) > 0
    for key in g0:
        torch.testing.assert_close(g1[key], g0[key], msg=key)
    torch.testing.assert_close(e1, e0)


def test_batch_slices_keep_the_trace_hook_whole():
    """A trace hook sees the whole batch's state at every update, even when slicing is on."""
    model = build_model("hrm", dict(SMALL, H_cycles=2, L_cycles=2)).eval()
    shapes = []
    batch = _batch()
    with torch.no_grad():
        model(
            model.initial_carry(batch),
            batch,
            hook=lambda kind, i, zh, zl: shapes.append(zh.shape[0]),
            rows_per_slice=1,
        )
    assert shapes and set(shapes) == {4}


def test_default_batch_slices_grow_with_the_weights():
    """By default a slice holds 4 MB of its widest activation, or 4x the largest weight matrix."""
    cpu = torch.device("cpu")
    small = build_model("hrm", dict(SMALL, seq_len=81, hidden_size=128, expansion=4)).config
    large = build_model("hrm", dict(SMALL, seq_len=81, hidden_size=512, expansion=4)).config
    assert small.total_len == 82 and small.forward_dtype == "float32"
    assert cpu_rows_per_slice(small, 128, cpu) == (4 << 20) // (82 * 1024 * 4)  # 12 rows
    assert cpu_rows_per_slice(large, 128, cpu) == (4 * 512 * 3072 * 4) // (82 * 3072 * 4)  # 24 rows
    assert cpu_rows_per_slice(large, 128, cpu, budget_bytes=0) is None  # slicing off
    assert cpu_rows_per_slice(large, 20, cpu) is None  # one slice would hold the whole batch
    assert cpu_rows_per_slice(large, 128, torch.device("meta")) is None  # only on a CPU
