from __future__ import annotations

import copy
import io
import itertools
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hrm.distributed import DistInfo, teardown
from hrm.optim import (
    AdamAtan2,
    SparseEmbeddingSignSGD,
    cosine_schedule_with_warmup_lr,
    total_training_steps,
)

SHAPES = [(7,), (3, 5), (2, 3, 4), ()]


class _AdamAtan2Reference:
    """The spec's per-element formula in float64 numpy, independent of torch."""

    def __init__(self, params: list[np.ndarray], betas=(0.9, 0.95), weight_decay=0.0):
        self.params = [p.astype(np.float64).copy() for p in params]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = [0] * len(params)
        self.b1, self.b2 = betas
        self.wd = weight_decay

    def step(self, grads: list[np.ndarray | None], lr: float) -> None:
        b1, b2 = self.b1, self.b2
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = g.astype(np.float64)
            self.t[i] += 1
            t = self.t[i]
            p, m, v = self.params[i], self.m[i], self.v[i]
            p *= 1 - lr * self.wd
            m += (1 - b1) * (g - m)  # lerp(m, g, 1 - b1)
            v += (1 - b2) * (g * g - v)
            p -= (lr / (1 - b1**t)) * np.arctan2(m, np.sqrt(v) / np.sqrt(1 - b2**t))


def _grads(step: int, shapes, dtype=torch.float64) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    out = []
    for i, shape in enumerate(shapes):
        g = torch.randn(shape, generator=gen, dtype=dtype) * (10.0 ** (i - 2))
        if g.dim() > 0:
            g.view(-1)[0] = 0.0  # an element whose gradient is exactly zero at times
        out.append(g)
    return out


def _make_params(dtype=torch.float64) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES]


@pytest.mark.parametrize("foreach", [None, True, False])
def test_adam_atan2_matches_formula_float64(foreach):
    params = _make_params()
    frozen = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))  # never receives a gradient
    frozen_before = frozen.detach().clone()
    opt = AdamAtan2([*params, frozen], lr=0.05, betas=(0.9, 0.95), weight_decay=0.3, foreach=foreach)
    ref = _AdamAtan2Reference([p.detach().numpy() for p in params], betas=(0.9, 0.95), weight_decay=0.3)

    for step in range(8):
        lr = 0.05 * (1 + 0.1 * step)  # the trainer changes lr every step
        for group in opt.param_groups:
            group["lr"] = lr
        grads = _grads(step, SHAPES)
        if step in (2, 5):
            grads[1] = None  # this parameter skips a step: its own t lags behind
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        ref.step([None if g is None else g.numpy() for g in grads], lr)
        for p, expected in zip(params, ref.params):
            np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-12, atol=1e-14)

    assert torch.equal(frozen.detach(), frozen_before)
    assert frozen not in opt.state
    assert float(opt.state[params[0]]["step"]) == 8
    assert float(opt.state[params[1]]["step"]) == 6


def test_adam_atan2_float32_close_to_formula():
    params = _make_params(torch.float32)
    opt = AdamAtan2(params, lr=1e-2, weight_decay=1.0)
    ref = _AdamAtan2Reference([p.detach().numpy() for p in params], weight_decay=1.0)
    for step in range(5):
        grads = _grads(step, SHAPES, torch.float32)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        ref.step([g.numpy() for g in grads], 1e-2)
    for p, expected in zip(params, ref.params):
        np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_adam_atan2_zero_gradient_only_decays():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = AdamAtan2([p], lr=0.1, weight_decay=0.5)
    p.grad = torch.zeros(3, dtype=torch.float64)
    opt.step()  # atan2(0, 0) = 0: no NaN without an epsilon
    assert torch.equal(p.detach(), torch.full((3,), 0.95, dtype=torch.float64))


def test_adam_atan2_first_step_is_sign_like():
    # Step 1: m = (1-b1) g and sqrt(v / (1-b2)) = |g|, so the update is lr / (1-b1) * atan((1-b1) sign g):
    # the first bias correction sits outside atan2 (the spec's a = b = 1 convention), ~0.9967 lr here.
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = AdamAtan2([p], lr=0.1, betas=(0.9, 0.95))
    p.grad = torch.tensor([3.0, -1e-6, 1e4, -2.0], dtype=torch.float64)
    opt.step()
    expected = -(0.1 / 0.1) * math.atan(0.1) * torch.sign(p.grad)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lr_shape", [(), (1,)])
@pytest.mark.parametrize("foreach", [True, False])
def test_adam_atan2_tensor_lr_matches_float_lr(foreach, lr_shape):
    a, b = _make_params(), _make_params()
    opt_a = AdamAtan2(a, lr=0.01, weight_decay=0.1, foreach=foreach)
    opt_b = AdamAtan2(b, lr=torch.tensor(0.01, dtype=torch.float64), weight_decay=0.1, foreach=foreach)
    for step in range(4):
        lr = 0.01 / (step + 1)
        opt_a.param_groups[0]["lr"] = lr
        opt_b.param_groups[0]["lr"] = torch.full(lr_shape, lr, dtype=torch.float64)
        for pa, pb, g in zip(a, b, _grads(step, SHAPES)):
            pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=1e-13, atol=1e-15)


def test_adam_atan2_foreach_and_loop_agree_float32():
    a, b = _make_params(torch.float32), _make_params(torch.float32)
    opt_a = AdamAtan2(a, lr=3e-3, weight_decay=0.1, foreach=True)
    opt_b = AdamAtan2(b, lr=3e-3, weight_decay=0.1, foreach=False)
    for step in range(4):
        for pa, pb, g in zip(a, b, _grads(step, SHAPES, torch.float32)):
            pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)


def test_adam_atan2_mixed_dtypes_in_one_group():
    p32 = torch.nn.Parameter(torch.randn(5))
    p64 = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    ref = _AdamAtan2Reference([p32.detach().numpy(), p64.detach().numpy()], weight_decay=0.2)
    opt = AdamAtan2([p32, p64], lr=0.01, weight_decay=0.2)
    g = torch.randn(5, dtype=torch.float64)
    p32.grad, p64.grad = g.float(), g.clone()
    opt.step()
    ref.step([g.float().numpy(), g.numpy()], 0.01)
    np.testing.assert_allclose(p32.detach().numpy(), ref.params[0], rtol=1e-6)
    np.testing.assert_allclose(p64.detach().numpy(), ref.params[1], rtol=1e-12)


def test_adam_atan2_state_dict_resume_is_exact():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    data = [torch.randn(16, 4) for _ in range(6)]

    def train(model, opt, batches):
        for x in batches:
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()

    opt = AdamAtan2(model.parameters(), lr=1e-2, weight_decay=0.1)
    train(model, opt, data[:3])

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    resumed = copy.deepcopy(model)
    resumed.load_state_dict(saved["model"])
    resumed_opt = AdamAtan2(resumed.parameters(), lr=123.0, weight_decay=0.0)  # overwritten by load
    resumed_opt.load_state_dict(saved["opt"])
    assert resumed_opt.param_groups[0]["lr"] == 1e-2
    assert resumed_opt.param_groups[0]["weight_decay"] == 0.1

    train(model, opt, data[3:])
    train(resumed, resumed_opt, data[3:])
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_adam_atan2_loads_state_with_number_step():
    # State written elsewhere may store `step` as a number or on another device: normalised on use.
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = AdamAtan2([p], lr=0.1)
    opt.state[p] = {
        "step": 4,
        "exp_avg": torch.zeros(2, dtype=torch.float64),
        "exp_avg_sq": torch.ones(2, dtype=torch.float64),
    }
    p.grad = torch.ones(2, dtype=torch.float64)
    opt.step()
    assert isinstance(opt.state[p]["step"], torch.Tensor) and float(opt.state[p]["step"]) == 5


def test_adam_atan2_rejects_bad_arguments():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError):
        AdamAtan2([p], lr=-1.0)
    with pytest.raises(ValueError):
        AdamAtan2([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        AdamAtan2([p], weight_decay=-0.1)


# --------------------------------------------------------------------------- sparse sign-SGD


class FakePuzzleEmbedding:
    """What the model side provides: a table buffer, a per-batch leaf and the ids looked up."""

    def __init__(self, num_ids: int, dim: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(num_ids, dim, generator=gen)
        self.local_weights = torch.zeros(0, dim, requires_grad=True)
        self.local_ids = torch.zeros(0, dtype=torch.int32)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.local_weights = self.weights[ids.long()].clone().requires_grad_(True)
        self.local_ids = ids
        return self.local_weights


def _expected_sign_sgd(weights, grads, ids, lr, wd):
    expected = weights.clone().double()
    summed: dict[int, torch.Tensor] = {}
    for row, i in zip(grads.double(), ids.tolist()):
        summed[i] = summed.get(i, 0) + row
    for i, g in summed.items():
        expected[i] = expected[i] * (1 - lr * wd) - lr * torch.sign(g)
    return expected.to(weights.dtype)


def test_sign_sgd_sums_duplicates_before_sign_and_touches_only_looked_up_rows():
    emb = FakePuzzleEmbedding(num_ids=10, dim=3)
    before = emb.weights.clone()
    opt = SparseEmbeddingSignSGD(emb, lr=0.1, weight_decay=0.5)

    ids = torch.tensor([2, 5, 2, 7], dtype=torch.int32)
    out = emb.lookup(ids)
    # id 2 appears twice: +1 and -3 sum to -2 -> sign -1 (sum of signs would give 0).
    grad = torch.tensor([[1.0, 0.0, 2.0], [0.5, -0.5, 0.0], [-3.0, 0.0, -1.0], [0.0, 4.0, -4.0]])
    (out * grad).sum().backward()
    opt.step()

    w = emb.weights
    expected = _expected_sign_sgd(before, grad, ids, 0.1, 0.5)
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w[2], before[2] * 0.95 - 0.1 * torch.tensor([-1.0, 0.0, 1.0]))
    # Zero gradient component: decay only, no sign step.
    torch.testing.assert_close(w[5, 2], before[5, 2] * 0.95)
    untouched = [i for i in range(10) if i not in (2, 5, 7)]
    assert torch.equal(w[untouched], before[untouched])  # no decay on rows not looked up


def test_sign_sgd_noop_without_grad_and_zero_grad_clears():
    emb = FakePuzzleEmbedding(num_ids=4, dim=2)
    before = emb.weights.clone()
    opt = SparseEmbeddingSignSGD(emb, lr=0.1, weight_decay=0.1)
    emb.lookup(torch.tensor([0, 1]))
    opt.step()
    assert torch.equal(emb.weights, before)

    emb.lookup(torch.tensor([0, 1])).sum().backward()
    opt.zero_grad()
    assert emb.local_weights.grad is None
    opt.step()
    assert torch.equal(emb.weights, before)


def test_sign_sgd_lr_per_step_and_state_dict():
    emb = FakePuzzleEmbedding(num_ids=5, dim=2)
    opt = SparseEmbeddingSignSGD(emb, lr=1.0, weight_decay=0.0)
    opt.param_groups[0]["lr"] = 0.25
    before = emb.weights.clone()
    emb.lookup(torch.tensor([3])).sum().backward()
    opt.step()
    torch.testing.assert_close(emb.weights[3], before[3] - 0.25)

    # A 0-dim tensor lr works too.
    opt.param_groups[0]["lr"] = torch.tensor(0.5)
    before = emb.weights.clone()
    emb.lookup(torch.tensor([1])).sum().backward()
    opt.step()
    torch.testing.assert_close(emb.weights[1], before[1] - 0.5)

    opt.param_groups[0]["lr"] = 0.125
    opt.param_groups[0]["weight_decay"] = 0.3
    other = SparseEmbeddingSignSGD(FakePuzzleEmbedding(5, 2), lr=9.0, weight_decay=9.0)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.125
    assert other.param_groups[0]["weight_decay"] == 0.3


def test_sign_sgd_requires_embedding_attributes():
    with pytest.raises(TypeError, match="local_ids"):
        SparseEmbeddingSignSGD(type("E", (), {"weights": torch.zeros(2, 2), "local_weights": None})(), lr=0.1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Per-rank batches of different sizes with ids shared across ranks, chosen so that summing across
# ranks before the sign differs from each rank applying its own sign.
_DIST_IDS = [torch.tensor([1, 4, 4, 6, 9]), torch.tensor([4, 1, 8])]
_DIST_GRADS = [
    torch.tensor([[1.0, -1.0], [2.0, 0.0], [1.0, 1.0], [-1.0, 0.5], [0.0, 3.0]]),
    torch.tensor([[-5.0, 0.5], [-2.0, 3.0], [0.25, -0.25]]),
]


def _dist_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    info = DistInfo(rank=rank, world_size=world_size, local_rank=rank, device=torch.device("cpu"))
    finished = False
    try:
        emb = FakePuzzleEmbedding(num_ids=12, dim=2, seed=0)  # same initial table on every rank
        opt = SparseEmbeddingSignSGD(emb, lr=0.1, weight_decay=0.5)
        out = emb.lookup(_DIST_IDS[rank])
        (out * _DIST_GRADS[rank]).sum().backward()
        opt.step()
        torch.save(emb.weights, os.path.join(out_dir, f"rank{rank}.pt"))
        finished = True
    finally:
        # Both ranks wait for each other before leaving: a rank that leaves while the other still
        # talks to it can abort in gloo's destructor.
        teardown(info, finished)


@pytest.mark.slow
def test_sign_sgd_distributed_gloo_matches_single_process(tmp_path):
    mp.spawn(_dist_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    tables = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(tables[0], tables[1])

    emb = FakePuzzleEmbedding(num_ids=12, dim=2, seed=0)
    opt = SparseEmbeddingSignSGD(emb, lr=0.1, weight_decay=0.5)
    out = emb.lookup(torch.cat(_DIST_IDS))
    (out * torch.cat(_DIST_GRADS)).sum().backward()
    opt.step()
    assert torch.equal(tables[0], emb.weights)
    # And it is not what rank 0 alone would have done (id 1 and 4 get the other rank's gradient).
    alone = _expected_sign_sgd(
        FakePuzzleEmbedding(12, 2, seed=0).weights, _DIST_GRADS[0], _DIST_IDS[0], 0.1, 0.5
    )
    assert not torch.equal(alone, tables[0])


# --------------------------------------------------------------------------- schedule


def test_cosine_schedule_values():
    base, warm, total = 1e-4, 100, 1100
    assert cosine_schedule_with_warmup_lr(0, base, warm, total) == 0.0
    assert cosine_schedule_with_warmup_lr(50, base, warm, total) == pytest.approx(base / 2)
    assert cosine_schedule_with_warmup_lr(warm, base, warm, total) == pytest.approx(base)
    assert cosine_schedule_with_warmup_lr(600, base, warm, total) == pytest.approx(base / 2)
    assert cosine_schedule_with_warmup_lr(total, base, warm, total) == pytest.approx(0.0, abs=1e-20)

    r = 0.1
    assert cosine_schedule_with_warmup_lr(0, base, warm, total, min_ratio=r) == 0.0
    assert cosine_schedule_with_warmup_lr(warm, base, warm, total, min_ratio=r) == pytest.approx(base)
    assert cosine_schedule_with_warmup_lr(600, base, warm, total, min_ratio=r) == pytest.approx(base * 0.55)
    assert cosine_schedule_with_warmup_lr(total, base, warm, total, min_ratio=r) == pytest.approx(base * r)
    # Past the end it holds the final value instead of climbing back up the cosine.
    assert cosine_schedule_with_warmup_lr(total + 300, base, warm, total, min_ratio=r) == pytest.approx(
        base * r
    )


def test_cosine_schedule_matches_reference_formula_and_is_monotone_after_warmup():
    base, warm, total, r = 2e-3, 10, 60, 0.2
    lrs = [cosine_schedule_with_warmup_lr(s, base, warm, total, min_ratio=r) for s in range(total + 1)]
    for s in range(warm, total + 1):
        progress = (s - warm) / (total - warm)
        expected = base * (r + max(0.0, (1 - r) * 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))))
        assert lrs[s] == pytest.approx(expected, rel=1e-12)
    assert all(a <= b for a, b in itertools.pairwise(lrs[: warm + 1]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[warm:]))


def test_cosine_schedule_without_warmup():
    assert cosine_schedule_with_warmup_lr(0, 1.0, 0, 10) == pytest.approx(1.0)


def test_total_training_steps():
    # Sudoku-Extreme 1k recipe shape: 20000 epochs over 1000 groups of ~1001 examples, batch 768.
    assert total_training_steps(20000, 1000, 1001.0, 768) == int(20000 * 1000 * 1001.0 / 768)
    assert total_training_steps(3, 10, 2.5, 4) == 18  # 18.75 truncated
    with pytest.raises(ValueError):
        total_training_steps(1, 1, 1.0, 0)
