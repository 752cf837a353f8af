"""What the reliability and fuzz tests share: a tiny dataset and recipe, the `hrm` command run in
this process with its output captured, and a snapshot of a directory tree to prove nothing changed."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file

from tiny_models import TINY_ARCH

# 12 steps, a checkpoint every 3 (the newest 2 kept), EMA on: what the resume tests interrupt.
RECIPE: dict[str, Any] = {
    "arch": TINY_ARCH,
    "global_batch_size": 16,
    "epochs": 100,
    "eval_interval": None,
    "max_steps": 12,
    "lr": 1e-3,
    "lr_warmup_steps": 3,
    "lr_min_ratio": 0.1,
    "log_interval": 1,
    "checkpoint_interval": 3,
    "keep_checkpoints": 2,
    "ema": True,
    "progress": False,
    "tensorboard": False,
    "threads": 1,
    "eval_max_batches": 1,
}


def build_sudoku4(out: Path) -> Path:
    from hrm.data.sudoku import build_sudoku_dataset

    build_sudoku_dataset(out, count=60, size=4, difficulty="easy", test_count=16, num_aug=3, seed=0)
    return out


def write_recipe(path: Path, data: Path, **extra: Any) -> Path:
    path.write_text(yaml.safe_dump({**RECIPE, "data_path": str(data), **extra}))
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def one_line_error(self) -> str:
        """The single error line, after checking that the command failed with exactly one line."""
        assert self.code != 0, (self.code, self.out, self.err)
        assert len(self.err_lines) == 1, self.err
        assert "Traceback" not in self.err and self.err.startswith("hrm: error: "), self.err
        return self.err_lines[0]


def hrm(*args: str) -> Result:
    """`hrm ARGS` in this process, its stdout and stderr captured."""
    from hrm.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time (directories: 0, 0)."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = (0, 0)
        for name in filenames:
            st = os.stat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return found


def final_state(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The weights and EMA of a run's newest checkpoint."""
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    state = {"weights": load_file(str(latest / "model.safetensors"))}
    if (latest / "ema.safetensors").exists():
        state["ema"] = load_file(str(latest / "ema.safetensors"))
    return state


def records(run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without the wall-clock fields."""
    drop = {"time", "steps_per_s", "examples_per_s"}
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def assert_same_run(a: Path, b: Path) -> None:
    """Two runs ended bit-identical: weights, EMA and every logged record."""
    sa, sb = final_state(a), final_state(b)
    assert sa.keys() == sb.keys()
    for part in sa:
        assert sa[part].keys() == sb[part].keys()
        for k in sa[part]:
            assert torch.equal(sa[part][k], sb[part][k]), (part, k)
    assert records(a) == records(b)
