"""Training-step time of the reference HRM (github.com/sapientinc/HRM) against this project's, at the
same config, batch, dtype, initial weights and data, each side in its own worker process.

Each side runs in a worker subprocess (multiprocessing, "spawn": a fresh interpreter with glibc's
defaults) that builds its own model, loss head and optimisers; the parent builds nothing and only
drives them, so at any moment at most one worker computes. The steps are timed interleaved: after
the warm-up, each round asks each worker for one step and waits for its measured seconds (which goes
first alternates between rounds), so a shared machine's speed drift falls on both alike; the table
gives each side's median and `speedup` is reference s/step over ours.

* ours: exactly `train_throughput.py`'s step: `ACTLossHead` forward in training mode (with the
  Q-target segment), `(loss / batch).backward()`, `AdamAtan2` and `SparseEmbeddingSignSGD` steps,
  zero_grad.
* reference: the same step as its `pretrain.py` takes it, with its own classes:
  `HierarchicalReasoningModel_ACTV1` in `models/losses.py`'s `ACTLossHead` (stablemax loss, as its
  arch configs), `((1 / global_batch_size) * loss).backward()`, then
  `CastedSparseEmbeddingSignSGD_Distributed` (world size 1) and `AdamATan2` each step and zero_grad.

No reference code is part of this project: supply your own checkout and point --reference at it.

    git clone https://github.com/sapientinc/HRM ~/HRM
    python benchmarks/reference_compare.py --reference ~/HRM
    python benchmarks/reference_compare.py --reference ~/HRM --config small --batch 128 --rounds 5 --warmup 1
    python benchmarks/reference_compare.py --reference ~/HRM --config 27m --batch 32
    python benchmarks/reference_compare.py --reference ~/HRM --same-allocator ours

Defaults: both configs (batch 128 for small, 32 for 27m), float32, CPU; results go to
benchmarks/results/reference_compare-cpu-float32.json (with --same-allocator MODE,
reference_compare-cpu-float32-same-MODE.json).

Allocator: by default each side runs as it ships. Our worker applies
`hrm.runtime.tune_cpu_allocator()` before building anything, as `hrm train` does on the CPU (large
allocations stay on the glibc heap instead of an mmap/munmap per tensor per step); the reference
worker keeps glibc's defaults, as its `pretrain.py` does. `--same-allocator ours` applies the tuning
in both workers and `--same-allocator glibc` in neither, for a like-for-like comparison of the code
alone. The `allocator` column (and each JSON row) says what each side ran with.

The reference imports CUDA-only packages; before importing it, the reference worker registers
stand-ins in its `sys.modules` (they replace any installed copy, in that process only):

* `flash_attn_interface` and `flash_attn`: `flash_attn_func(q, k, v, causal=False)` on flash-attn's
  [batch, seq, heads, head_dim] layout through `torch.nn.functional.scaled_dot_product_attention`,
  returning one contiguous tensor (flash-attn 2's convention; the reference accepts either).
* `adam_atan2`: `AdamATan2` is this project's `hrm.optim.AdamAtan2` (the same update), so the two
  sides run the same optimiser code and differ in model, loss head and sparse-embedding optimiser.

Nothing in the reference is patched to run on the CPU: its model builds on the default device
(`pretrain.py` wraps construction and `initial_carry` in `with torch.device("cuda")`), which here is
the CPU. Our worker writes its freshly initialised state dict to a temporary file that the reference
worker loads into its model (the state-dict keys are the same; the file is deleted once loaded).
Before timing, each worker runs one training forward and backward from a fresh carry on the same
batch and RNG seed and sends back loss, logits and gradients; the parent checks that they agree, and
the differences are printed and saved.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import batches_for, hrm_train_step_flops, model_config, random_batch, save, table
from hrm.optim import AdamAtan2
from hrm.runtime import tune_cpu_allocator
from train_throughput import training_step

REFERENCE_MODEL = Path("models/hrm/hrm_act_v1.py")
LR, WEIGHT_DECAY, BETAS = 1e-4, 0.1, (0.9, 0.95)  # train_throughput's lr and decay; betas as cfg_pretrain
# Largest allowed |difference| relative to the magnitude compared, per dtype.
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}
# The puzzle-embedding gradient's key among the parameter gradients a worker sends back.
LOCAL_GRAD = "<puzzle_emb.local_weights>"
SIDES = ("ours", "reference")


# -- stand-ins for the reference's CUDA-only imports (registered in the reference worker) -----------
def flash_attn_func(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """flash-attn's call on [batch, seq, heads, head_dim] tensors, computed by SDPA."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        dropout_p=dropout_p,
        is_causal=causal,
        scale=softmax_scale,
    )
    # flash-attn returns a contiguous [B, S, H, D] tensor and the reference `.view`s it.
    return out.transpose(1, 2).contiguous()


def install_stand_ins() -> None:
    for name in ("flash_attn_interface", "flash_attn"):
        module = types.ModuleType(name, "reference_compare.py stand-in: attention through SDPA")
        module.flash_attn_func = flash_attn_func  # type: ignore[attr-defined]
        sys.modules[name] = module
    adam = types.ModuleType("adam_atan2", "reference_compare.py stand-in: hrm.optim.AdamAtan2")
    adam.AdamATan2 = AdamAtan2  # type: ignore[attr-defined]
    sys.modules["adam_atan2"] = adam


# -- the reference -----------------------------------------------------------------------------------
@dataclass
class Reference:
    model_cls: Any
    loss_head_cls: Any
    sparse_optimizer_cls: Any
    adam_cls: Any


def reference_root(path: str | None) -> Path:
    """The checkout's root, checked in the parent without importing anything from it."""
    if not path:
        raise SystemExit("--reference is required: a checkout of github.com/sapientinc/HRM")
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(f"--reference {path}: no such directory")
    if not (root / REFERENCE_MODEL).is_file():
        raise SystemExit(f"--reference {path}: no {REFERENCE_MODEL} there (is it a sapientinc/HRM checkout?)")
    return root


def reference_commit(root: Path) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def import_reference(root: Path) -> Reference:
    """Imports the reference's classes (in the reference worker, after registering the stand-ins)."""
    install_stand_ins()
    # The reference imports itself as the top-level package `models`, from its repository root.
    sys.path.insert(0, str(root))
    try:
        act = importlib.import_module("models.hrm.hrm_act_v1")
        losses = importlib.import_module("models.losses")
        sparse = importlib.import_module("models.sparse_embedding")
    except ImportError as exc:
        raise SystemExit(f"cannot import the reference from {root}: {exc}") from None
    # A regular package named `models` elsewhere on sys.path would win over the checkout's namespace
    # package; timing the wrong code must not pass silently.
    for module in (act, losses, sparse):
        if not Path(module.__file__ or "").resolve().is_relative_to(root):
            raise SystemExit(f"`{module.__name__}` was imported from {module.__file__}, not from {root}")
    return Reference(
        model_cls=act.HierarchicalReasoningModel_ACTV1,
        loss_head_cls=losses.ACTLossHead,
        sparse_optimizer_cls=sparse.CastedSparseEmbeddingSignSGD_Distributed,
        adam_cls=sys.modules["adam_atan2"].AdamATan2,
    )


# -- the two training steps (each built and run in its own worker) ---------------------------------
@dataclass
class Side:
    impl: str
    head: nn.Module
    batch: dict[str, torch.Tensor]
    optimizers: list[torch.optim.Optimizer]
    step: Callable[[], float]  # one training step from the carry left by the last one; its seconds

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad()

    def parity(self, seed: int) -> dict:
        """One training forward and backward from a fresh carry with RNG seed `seed`: the loss, logits
        and every gradient (as float32 arrays), gradients zeroed afterwards."""
        n = self.batch["inputs"].shape[0]
        torch.manual_seed(seed)
        carry = self.head.initial_carry(self.batch)
        if self.impl == "ours":
            step = self.head(carry, self.batch)
            loss, out = step.loss, step.outputs
            (loss / n).backward()
        else:
            _, loss, _, out, _ = self.head(carry=carry, batch=self.batch, return_keys=["logits"])
            ((1 / n) * loss).backward()
        grads = {
            name: None if p.grad is None else p.grad.detach().float().numpy().copy()
            for name, p in self.head.named_parameters()
        }
        # The puzzle-embedding gradient of the backward (the table itself is a buffer).
        local = self.head.model.inner.puzzle_emb.local_weights.grad
        grads[LOCAL_GRAD] = None if local is None else local.detach().float().numpy().copy()
        result = {
            "loss": loss.item(),
            "logits": out["logits"].detach().float().numpy().copy(),
            "grads": grads,
        }
        self.zero_grad()
        return result


def build_ours(config: str, batch: int, dtype: str, weights: Path) -> Side:
    """`train_throughput.py`'s step; its initial weights are written to `weights` for the reference."""
    run = training_step(config, batch, torch.device("cpu"), dtype, False)
    torch.save(run.head.model.state_dict(), weights)
    return Side("ours", run.head, run.batch, run.optimizers, run.step)


def build_reference(config: str, batch: int, dtype: str, weights: Path, ref: Reference) -> Side:
    """Built as pretrain.py's create_model builds it, then given our initial weights."""
    cfg = model_config(config, forward_dtype=dtype, batch_size=batch)
    data = random_batch(cfg, batch)
    ref_model = ref.model_cls(dict(cfg))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        ref_model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SystemExit(f"our state dict does not load into the reference model: {exc}") from None
    ref_head = ref.loss_head_cls(ref_model, loss_type="stablemax_cross_entropy").train()
    optimizers = [
        ref.sparse_optimizer_cls(
            ref_model.puzzle_emb.buffers(), lr=LR, weight_decay=WEIGHT_DECAY, world_size=1
        ),
        ref.adam_cls(ref_head.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS),
    ]
    carry = ref_head.initial_carry(data)

    def step() -> float:
        nonlocal carry
        start = time.perf_counter()
        carry, loss, *_ = ref_head(carry=carry, batch=data, return_keys=[])
        # pretrain.py's train_batch: scale by 1 / global batch, then step and zero each optimiser.
        ((1 / batch) * loss).backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
        return time.perf_counter() - start

    return Side("reference", ref_head, data, optimizers, step)


# -- the workers -------------------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {text}"


def worker(conn: Any, impl: str, tune: bool, threads: int | None, root: str) -> None:
    """A worker's loop: answers ("ok", value) or ("error", one line) to each command of the parent."""
    try:
        # Before building anything, as `hrm train` applies it.
        tuned = tune_cpu_allocator() if tune else False
        if threads:
            torch.set_num_threads(threads)
        ref = import_reference(Path(root)) if impl == "reference" else None
        conn.send(("ok", {"allocator": "ours" if tuned else "glibc", "threads": torch.get_num_threads()}))
        side: Side | None = None
        while True:
            cmd, arg = conn.recv()
            if cmd == "quit":
                return
            if cmd == "build":
                args = (arg["config"], arg["batch"], arg["dtype"], Path(arg["weights"]))
                side = build_ours(*args) if ref is None else build_reference(*args, ref)
                reply: Any = None
            elif side is None:
                raise RuntimeError(f"{cmd!r} before 'build'")
            elif cmd == "parity":
                reply = side.parity(arg)
            elif cmd == "step":
                reply = side.step()
            else:
                raise RuntimeError(f"unknown command {cmd!r}")
            conn.send(("ok", reply))
    except (Exception, SystemExit) as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", one_line(exc)))
    finally:
        conn.close()


class Worker:
    """The parent's handle on one side's worker process."""

    def __init__(self, impl: str, tune: bool, threads: int | None, root: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.impl = impl
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker,
            args=(child, impl, tune, threads, str(root)),
            name=f"reference_compare-{impl}",
            daemon=True,
        )
        self.process.start()
        child.close()  # so that a dead worker reads as EOF here
        self.info: dict = self.receive()

    def died(self) -> SystemExit:
        self.process.join(10)
        code = self.process.exitcode
        if code is None:
            how = "its pipe closed"
        elif code < 0:
            how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return SystemExit(f"the {self.impl} worker died ({how})")

    def receive(self) -> Any:
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise self.died() from None
        if status == "error":
            raise SystemExit(f"{self.impl} worker: {value}")
        return value

    def call(self, cmd: str, arg: Any = None) -> Any:
        try:
            self.conn.send((cmd, arg))
        except OSError:
            raise self.died() from None
        return self.receive()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("quit", None))
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


# -- the comparison (in the parent) ------------------------------------------------------------------
def parity(results: dict[str, dict], dtype: str) -> dict:
    """Compares the two workers' training forward and backward (same batch, seed and weights)."""
    o, r = results["ours"], results["reference"]
    if set(o["grads"]) != set(r["grads"]):
        raise SystemExit("parity check: the two sides' gradients do not line up (different parameters)")
    grad_diff, grad_scale = 0.0, 0.0
    for name, a in o["grads"].items():
        b = r["grads"][name]
        if a is None or b is None or a.shape != b.shape:
            raise SystemExit("parity check: the two sides' gradients do not line up (missing or reshaped)")
        if a.size:
            grad_diff = max(grad_diff, float(np.abs(a - b).max()))
            grad_scale = max(grad_scale, float(np.abs(a).max()))
    if o["logits"].shape != r["logits"].shape:
        raise SystemExit("parity check: the two sides' logits differ in shape")
    result = {
        "loss_ours": o["loss"],
        "loss_reference": r["loss"],
        "loss_abs_diff": abs(o["loss"] - r["loss"]),
        "logits_max_abs_diff": float(np.abs(o["logits"] - r["logits"]).max()),
        "grad_max_abs_diff": grad_diff,
        "grad_max_abs": grad_scale,
    }
    tol = TOLERANCE[dtype]
    if result["loss_abs_diff"] > tol * abs(result["loss_ours"]) or grad_diff > tol * grad_scale:
        raise SystemExit(f"parity check failed (tolerance {tol} relative): {result}")
    return result


def compare(
    config: str,
    batch: int,
    rounds: int,
    warmup: int,
    dtype: str,
    root: Path,
    tune: dict[str, bool],
    threads: int | None,
):
    workers: dict[str, Worker] = {}
    try:
        # Started one after the other, so that only one of them works at a time.
        for impl in SIDES:
            workers[impl] = Worker(impl, tune[impl], threads, root)
        with tempfile.TemporaryDirectory(prefix="reference_compare-") as tmp:
            build = {"config": config, "batch": batch, "dtype": dtype, "weights": str(Path(tmp) / "init.pt")}
            for impl in SIDES:  # ours first: it writes the initial weights the reference loads
                workers[impl].call("build", build)
        check = parity({impl: workers[impl].call("parity", 1) for impl in SIDES}, dtype)
        print(
            f"parity {config} b{batch}: loss ours {check['loss_ours']:.6g}"
            f" reference {check['loss_reference']:.6g} (|diff| {check['loss_abs_diff']:.2g}),"
            f" logits max |diff| {check['logits_max_abs_diff']:.2g},"
            f" grads max |diff| {check['grad_max_abs_diff']:.2g} of max |grad| {check['grad_max_abs']:.2g}",
            flush=True,
        )
        times: dict[str, list[float]] = {impl: [] for impl in SIDES}
        for i in range(warmup + rounds):
            # Alternate which side goes first so neither always follows the other's memory traffic.
            for impl in SIDES if i % 2 == 0 else SIDES[::-1]:
                elapsed = workers[impl].call("step")
                if i >= warmup:
                    times[impl].append(elapsed)
        infos = {impl: workers[impl].info for impl in SIDES}
    finally:
        for w in workers.values():
            w.close()

    flops = hrm_train_step_flops(model_config(config, forward_dtype=dtype, batch_size=batch), batch)
    seq_len = model_config(config)["seq_len"]
    rows = []
    for impl in SIDES:
        step = statistics.median(times[impl])
        rows.append(
            {
                "impl": impl,
                "allocator": infos[impl]["allocator"],
                "config": config,
                "batch": batch,
                "dtype": dtype,
                "device": "cpu",
                "threads": infos[impl]["threads"],
                "s_per_step": step,
                "examples_per_s": batch / step,
                "tokens_per_s": batch * seq_len / step,
                "gflop_per_step": flops / 1e9,
                "achieved_gflops": flops / step / 1e9,
                "times": times[impl],
            }
        )
    speedup = rows[1]["s_per_step"] / rows[0]["s_per_step"]
    return rows, {"config": config, "batch": batch, "speedup": speedup, **check}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", help="a checkout of github.com/sapientinc/HRM (its root directory)")
    ap.add_argument("--config", choices=("small", "27m"), nargs="+", default=["small", "27m"])
    ap.add_argument(
        "--batch", type=int, nargs="+", default=None, help="batch per config (default 128 small, 32 27m)"
    )
    ap.add_argument("--rounds", type=int, default=5, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each worker")
    ap.add_argument(
        "--same-allocator",
        choices=("ours", "glibc"),
        default=None,
        help="both sides with this allocator setting: ours = both tuned as `hrm train` tunes it, glibc ="
        " neither (default: each as it ships, ours tuned and the reference with glibc's defaults)",
    )
    args = ap.parse_args()
    if args.rounds < 1 or args.warmup < 0:
        raise SystemExit("--rounds must be at least 1 and --warmup at least 0")
    root = reference_root(args.reference)
    if args.threads:
        torch.set_num_threads(args.threads)  # the workers set it themselves; this is for the record
    batches = batches_for(args.config, args.batch)
    if args.same_allocator:
        tune = dict.fromkeys(SIDES, args.same_allocator == "ours")
    else:
        tune = {"ours": True, "reference": False}

    rows, comparisons = [], []
    for config, batch in zip(args.config, batches):
        config_rows, comparison = compare(
            config, batch, args.rounds, args.warmup, args.dtype, root, tune, args.threads
        )
        rows += config_rows
        comparisons.append(comparison)
    columns = [
        "impl",
        "allocator",
        "config",
        "batch",
        "s_per_step",
        "examples_per_s",
        "tokens_per_s",
        "achieved_gflops",
    ]
    print(table(rows, columns))
    for c in comparisons:
        print(f"speedup {c['config']} b{c['batch']}: {c['speedup']:.3f}x (reference s/step / ours s/step)")
    extra = {
        "reference": str(root),
        "reference_commit": reference_commit(root),
        "stand_ins": {
            "flash_attn_func": "torch.nn.functional.scaled_dot_product_attention",
            "adam_atan2.AdamATan2": "hrm.optim.AdamAtan2",
        },
        "rounds": args.rounds,
        "warmup": args.warmup,
        "workers": "one spawned process per side and config, one computing at a time",
        "same_allocator": args.same_allocator,
        "comparisons": comparisons,
    }
    name = f"reference_compare-cpu-{args.dtype}"
    if args.same_allocator:
        name += f"-same-{args.same_allocator}"
    path = save(name, rows, extra)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
