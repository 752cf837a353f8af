"""Reasoning traces: every segment and every inner L/H update of a puzzle, as JSON.

`TraceRecorder` watches a run of `run_until_halted` (it is a `SegmentObserver`) for some rows of the
batch; `build_trace` turns one row's record into the documented JSON layout (`trace_schema.json`
beside the package, described in docs/TRACE_SCHEMA.md), decoding answers through the puzzle's task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hrm.errors import HRMError
from hrm.fileio import json_safe
from hrm.models import ACTModel, Carry, model_name
from hrm.tasks import Puzzle, task_named

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "trace_schema.json"


class TraceRecorder:
    """Collects, for some rows of a batch, every segment and inner update (see docs/TRACE_SCHEMA.md).

    Residuals and PCA means are over the puzzle cells only: the puzzle-embedding positions in front
    of the sequence are excluded, so traces of models with and without a puzzle embedding compare."""

    def __init__(self, model: ACTModel, rows: Sequence[int]):
        self.live: list[int] = []
        self.sel = torch.zeros(0, dtype=torch.long)
        self.steps: dict[int, list[dict[str, Any]]] = {}
        self.model = model
        self.rows = list(rows)
        self.skip = model.inner.puzzle_emb_len
        self.segment = 0
        self.records: dict[int, dict[str, Any]] = {
            r: {"segments": [], "mean_H": [], "mean_L": [], "where": []} for r in self.rows
        }

    def begin(self, carry: Carry, active: torch.Tensor) -> None:
        position = {int(a): i for i, a in enumerate(active.tolist())}
        self.live = [r for r in self.rows if r in position]
        self.sel = torch.tensor([position[r] for r in self.live], dtype=torch.long, device=carry.z_H.device)
        self.segment += 1
        self.steps = {r: [] for r in self.live}
        if self.live:
            self.prev_H = carry.z_H[self.sel, self.skip :].float()
            self.prev_L = carry.z_L[self.sel, self.skip :].float()

    def hook(self, kind: str, index: int, z_H: torch.Tensor, z_L: torch.Tensor) -> None:
        if not self.live:
            return
        h = z_H[self.sel]
        cells_H = h[:, self.skip :].float()
        cells_L = z_L[self.sel, self.skip :].float()
        if kind == "L":
            residual = (cells_L - self.prev_L).flatten(1).norm(dim=1)
        else:
            residual = (cells_H - self.prev_H).flatten(1).norm(dim=1)
        self.prev_H, self.prev_L = cells_H, cells_L
        logits, _, _ = self.model.inner.heads(h)
        answers = logits.argmax(-1).cpu().numpy()
        residual = residual.cpu().tolist()
        mean_H, mean_L = cells_H.mean(1).cpu(), cells_L.mean(1).cpu()
        for i, r in enumerate(self.live):
            self.steps[r].append(
                {"kind": kind, "index": int(index), "tokens": answers[i], "residual": residual[i]}
            )
            rec = self.records[r]
            rec["mean_H"].append(mean_H[i])
            rec["mean_L"].append(mean_L[i])
            rec["where"].append([self.segment, int(index)])

    def end(self, outputs: dict[str, torch.Tensor], halted: torch.Tensor) -> None:
        if not self.live:
            return
        logits = outputs["logits"][self.sel].float()
        confidence = torch.softmax(logits, -1).amax(-1).cpu().numpy()
        tokens = logits.argmax(-1).cpu().numpy()
        q_halt = outputs["q_halt_logits"][self.sel].float()
        q_continue = outputs["q_continue_logits"][self.sel].float()
        signal = (q_halt > 0) if self.model.halt_on_q_halt_only else (q_halt > q_continue)
        flags = halted[self.sel].cpu().tolist()
        for i, r in enumerate(self.live):
            self.records[r]["segments"].append(
                {
                    "index": self.segment,
                    "tokens": tokens[i],
                    "q_halt": float(q_halt[i]),
                    "q_continue": float(q_continue[i]),
                    "halted": bool(flags[i]),
                    "halt_signal": bool(signal[i]),
                    "confidence": confidence[i],
                    "steps": self.steps[r],
                }
            )


def pca(record: dict[str, Any]) -> dict[str, Any] | None:
    """Joint 2-D PCA of the per-step means of z_H and z_L (one set of axes for both)."""
    if not record["mean_H"]:
        return None
    mean_H = torch.stack(record["mean_H"]).double()
    mean_L = torch.stack(record["mean_L"]).double()
    x = torch.cat([mean_H, mean_L])
    if not bool(torch.isfinite(x).all()):
        return None  # a model producing NaN or infinity has no trajectory to project
    x = x - x.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    k = min(2, vh.shape[0])
    axes = torch.zeros(2, x.shape[1], dtype=x.dtype)
    axes[:k] = vh[:k]
    total = float((s**2).sum())
    ratios = [float(s[i] ** 2) / total if total > 0 and i < k else 0.0 for i in range(2)]
    t = mean_H.shape[0]
    proj = x @ axes.T

    def pts(m: torch.Tensor) -> list[list[float]]:
        return [[round(float(a), 6), round(float(b), 6)] for a, b in m.tolist()]

    return {
        "method": "pca",
        "space": "mean over puzzle cells",
        "explained_variance": [round(r, 6) for r in ratios],
        "steps": record["where"],
        "z_H": pts(proj[:t]),
        "z_L": pts(proj[t:]),
    }


def build_trace(
    puzzle: Puzzle,
    model: ACTModel,
    source: str | None,
    record: dict[str, Any],
    halt: str,
    final: dict[str, Any],
    view: str | None,
    with_pca: bool,
    max_segments: int,
) -> dict[str, Any]:
    """The trace of one puzzle from its recorded row (`view`: the frame that row is in)."""
    task = task_named(puzzle.kind)
    c = model.config
    segments = []
    for seg in record["segments"]:
        answer = task.decode(puzzle, seg["tokens"], view)
        segments.append(
            {
                "index": seg["index"],
                "answer": answer,
                "q_halt": round(seg["q_halt"], 6),
                "q_continue": round(seg["q_continue"], 6),
                "halted": seg["halted"],
                "halt_signal": seg["halt_signal"],
                "confidence": task.decode_confidence(puzzle, seg["confidence"], answer, view),
                "steps": [
                    {
                        "kind": step["kind"],
                        "index": step["index"],
                        "answer": task.decode(puzzle, step["tokens"], view),
                        "residual": round(float(step["residual"]), 6),
                    }
                    for step in seg["steps"]
                ],
            }
        )
    puzzle_info: dict[str, Any] = {"name": puzzle.name, "grid": puzzle.grid}
    if view is None:
        puzzle_info["text"] = puzzle.text
    else:
        puzzle_info["task_id"] = puzzle.text
        puzzle_info["view"] = view
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {
            "name": model_name(model),
            "source": source,
            "seq_len": c.seq_len,
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "H_cycles": c.H_cycles,
            "L_cycles": c.L_cycles,
            "halt_max_steps": max_segments,
            "puzzle_positions": model.inner.puzzle_emb_len,
            "halt_on_q_halt_only": bool(model.halt_on_q_halt_only),
        },
        "kind": puzzle.kind,
        "halt": halt,
        "residual_positions": "puzzle",
        "puzzle": puzzle_info,
        "segments": segments,
        "final": final,
        "pca": pca(record) if with_pca else None,
    }


def trace_schema() -> dict[str, Any]:
    """The JSON Schema of a trace (`trace_schema.json`)."""
    return json.loads(SCHEMA_PATH.read_text())


def validate_trace(trace: dict[str, Any]) -> None:
    """Raise HRMError when `trace` does not follow the schema (needs the `jsonschema` package)."""
    try:
        import jsonschema
    except ImportError:
        raise HRMError("validating a trace needs the jsonschema package (pip install jsonschema)") from None
    try:
        jsonschema.validate(trace, trace_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise HRMError(f"trace does not follow schema {SCHEMA_VERSION} at {where}: {exc.message}") from None


def write_trace(trace: dict[str, Any] | None, path: str | os.PathLike[str]) -> Path:
    """Write a trace as JSON, atomically (a temporary file renamed into place); non-finite numbers (a
    broken model) as null."""
    if trace is None:
        raise HRMError("this solution has no trace; solve with trace=True")
    path = Path(path)
    if path.is_dir():
        raise HRMError(f"cannot write the trace to {path}: it is a directory")
    if path.parent and not path.parent.is_dir():
        raise HRMError(f"cannot write the trace to {path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(json_safe(trace), separators=(",", ":"), allow_nan=False))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
