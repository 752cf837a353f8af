"""CUDA checks: bfloat16, flash attention through SDPA, torch.compile and the training loop on a GPU.
They skip without CUDA (see conftest.py)."""

from __future__ import annotations

import pytest
import torch

from hrm.models import ACTLossHead, build_model

pytestmark = pytest.mark.gpu

CFG = dict(
    batch_size=8,
    seq_len=81,
    vocab_size=11,
    puzzle_emb_ndim=128,
    hidden_size=128,
    num_heads=4,
    H_layers=2,
    L_layers=2,
    halt_max_steps=4,
)


def _batch(device, size=8):
    g = torch.Generator().manual_seed(0)
    return {
        "inputs": torch.randint(1, 11, (size, 81), generator=g, dtype=torch.int32).to(device),
        "labels": torch.randint(1, 11, (size, 81), generator=g, dtype=torch.int32).to(device),
        "puzzle_identifiers": torch.zeros(size, dtype=torch.int32).to(device),
    }


def test_bfloat16_on_cuda_agrees_with_float32_on_cpu():
    torch.manual_seed(0)
    cpu = build_model("hrm", dict(CFG, forward_dtype="float32")).eval()
    gpu = build_model("hrm", dict(CFG, forward_dtype="bfloat16"))
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda().eval()
    with torch.no_grad():
        b = _batch("cpu")
        _, out_cpu = cpu(cpu.initial_carry(b), b)
        bg = _batch("cuda")
        _, out_gpu = gpu(gpu.initial_carry(bg), bg)
    a, c = out_cpu["logits"].float(), out_gpu["logits"].float().cpu()
    assert torch.nn.functional.cosine_similarity(a.flatten(), c.flatten(), dim=0) > 0.99


def test_attention_runs_on_the_flash_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = build_model("hrm", dict(CFG, forward_dtype="bfloat16")).cuda()
    b = _batch("cuda")
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.no_grad():
        _, out = model(model.initial_carry(b), b)
    assert out["logits"].dtype == torch.bfloat16


def test_compiled_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    head = ACTLossHead(build_model("hrm", dict(CFG, forward_dtype="bfloat16"))).cuda().train()
    step = torch.compile(head)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    b = _batch("cuda")
    carry = head.initial_carry(b)
    losses = []
    for _ in range(30):
        out = step(carry, b)
        carry = out.carry
        (out.loss / 8).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]


def test_training_loop_on_cuda(tmp_path):
    from hrm.config import load_config
    from hrm.data.sudoku import build_sudoku_dataset
    from hrm.training import train

    data = tmp_path / "s4"
    build_sudoku_dataset(data, count=200, size=4, difficulty="easy", test_count=16, num_aug=3, seed=0)
    cfg = load_config(
        "sudoku4_cpu",
        [f"data_path={data}", f"run_dir={tmp_path / 'run'}", "max_steps=20", "device=cuda", "progress=false"],
    )
    result = train(cfg)
    assert result.step == 20 and "all" in result.eval_metrics
