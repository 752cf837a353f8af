"""Evaluation as the papers measured it: every test example run through all ACT segments (or until
the Q head halts it, with adaptive halting), metrics summed per set and divided by the row count.

Metrics: `accuracy` (token), `exact_accuracy` (whole puzzle right), `q_halt_accuracy` (the halting
head's verdict agrees with correctness), `steps` (mean segments), and the losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm import distributed
from hrm.models import IGNORE_LABEL_ID, ACTLossHead


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, float]]
    # With collect=True, per example (rank-local rows, padding removed): set name, puzzle id, inputs,
    # predictions, labels and the halting logit, in dataset order.
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


@torch.no_grad()
def evaluate(
    head: ACTLossHead,
    dataset: Any,
    info: distributed.DistInfo | None = None,
    max_batches: int | None = None,
    collect: bool = False,
) -> EvalResult:
    info = info or distributed.DistInfo()
    head.eval()
    device = info.device
    sums: dict[str, dict[str, float]] = {}
    collected: dict[str, dict[str, list[np.ndarray]]] = {}
    sets = list(dataset.metadata.sets)
    keys = ("count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss")
    local = torch.zeros(len(sets), len(keys), dtype=torch.float64, device=device)
    for index, (set_name, batch, _global) in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        metrics, out = _eval_batch(head, batch)
        row = sets.index(set_name)
        local[row] += torch.tensor(
            [float(metrics.get(k, 0.0)) for k in keys], dtype=torch.float64, device=device
        )
        if collect:
            keep = (batch["labels"] != IGNORE_LABEL_ID).any(-1) | (batch["inputs"] != 0).any(-1)
            store = collected.setdefault(set_name, {})
            for name, tensor in (
                ("puzzle_identifiers", batch["puzzle_identifiers"]),
                ("inputs", batch["inputs"]),
                ("labels", batch["labels"]),
                ("preds", out["preds"]),
                ("q_halt_logits", out["q_halt_logits"]),
                ("steps", out["steps"]),
            ):
                store.setdefault(name, []).append(tensor[keep].cpu().numpy())
    total = distributed.reduce_sum(local, info).cpu()
    for row, set_name in enumerate(sets):
        values = dict(zip(keys, total[row].tolist()))
        count = values.pop("count")
        if count == 0:
            continue
        sums[set_name] = {k: v / count for k, v in values.items()}
        sums[set_name]["count"] = count
    predictions = {s: {k: np.concatenate(v) for k, v in d.items()} for s, d in collected.items()}
    return EvalResult(metrics=sums, predictions=predictions)


def _eval_batch(head: ACTLossHead, batch: dict[str, torch.Tensor]):
    """All segments for one batch. Each row counts once, with the answer of the segment where it
    halted; the losses are those of the last call, as the reference reports them."""
    carry = head.initial_carry(batch)
    done = torch.zeros_like(carry.halted)
    preds = q_halt = steps = None
    totals: dict[str, torch.Tensor] = {}
    metrics: dict[str, torch.Tensor] = {}
    for _ in range(head.model.config.halt_max_steps):
        carry, _, metrics, outputs, _ = head(carry, batch)
        newly = carry.halted & ~done
        if preds is None:
            preds = outputs["preds"].clone()
            q_halt = outputs["q_halt_logits"].clone()
            steps = carry.steps.clone()
        else:
            preds[newly] = outputs["preds"][newly]
            q_halt[newly] = outputs["q_halt_logits"][newly]
            steps[newly] = carry.steps[newly]
        for k, v in _row_metrics(carry, outputs, newly).items():
            totals[k] = totals.get(k, 0) + v
        done |= carry.halted
        if bool(done.all()):
            break
        # Rows that halted early (adaptive halting) must not restart on the next call.
        carry.halted = torch.zeros_like(carry.halted)
    totals["lm_loss"] = metrics["lm_loss"]
    totals["q_halt_loss"] = metrics["q_halt_loss"]
    return totals, {"preds": preds, "q_halt_logits": q_halt, "steps": steps}


def _row_metrics(carry, outputs, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss head's metrics, counted over `rows` only."""
    labels = carry.current_data["labels"]
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    correct = mask & (outputs["preds"] == labels)
    seq_correct = correct.sum(-1) == counts
    valid = rows & (counts > 0)
    divisor = counts.clamp_min(1)
    return {
        "count": valid.sum(),
        "accuracy": torch.where(valid, correct.sum(-1) / divisor, 0).sum(),
        "exact_accuracy": (valid & seq_correct).sum(),
        "q_halt_accuracy": (valid & ((outputs["q_halt_logits"] >= 0) == seq_correct)).sum(),
        "steps": torch.where(valid, carry.steps, 0).sum(),
    }


def _run_data_path(model_path: str) -> str | None:
    """The data_path of the run a checkpoint belongs to, if it has one."""
    import yaml

    p = Path(model_path)
    for candidate in (p, *list(p.parents)[:4]):
        cfg = candidate / "config.yaml"
        if cfg.is_file():
            try:
                data = yaml.safe_load(cfg.read_text()) or {}
            except yaml.YAMLError:
                return None
            return data.get("eval_data_path") or data.get("data_path")
    return None


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    lines = []
    for set_name, m in metrics.items():
        lines.append(
            f"{set_name}: exact {m.get('exact_accuracy', 0):.4f}  token {m.get('accuracy', 0):.4f}  "
            f"segments {m.get('steps', 0):.2f}  q_halt_acc {m.get('q_halt_accuracy', 0):.4f}  "
            f"n={int(m.get('count', 0))}"
        )
    return "\n".join(lines)


def evaluate_cli(
    model_path: str,
    data: str | None = None,
    halt: str = "max",
    batch_size: int = 256,
    max_batches: int | None = None,
    device: str = "auto",
    use_ema: bool = True,
    out: str | None = None,
) -> dict[str, Any]:
    """`hrm eval`: load, evaluate, print, and write metrics.json (+ ARC's submission.json)."""
    import json
    import time

    from hrm.checkpoint import load_model
    from hrm.data.dataset import PuzzleDataset
    from hrm.data.format import load_metadata
    from hrm.errors import ConfigError

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    info = distributed.DistInfo(device=distributed.pick_device(device))
    loaded = load_model(model_path, device=info.device, use_ema=use_ema, data_path=data)
    data = data or _run_data_path(str(loaded.source))
    if data is None:
        raise ConfigError(f"{model_path}: no dataset known for it; pass --data DIR")
    if not (Path(data) / "test" / "dataset.json").exists():
        raise ConfigError(f"--data {data}: not a dataset directory with a test split (test/dataset.json)")
    model = loaded.model
    meta = load_metadata(data, "test")
    if meta.seq_len != model.config.seq_len or meta.vocab_size > model.config.vocab_size:
        raise ConfigError(
            f"--data {data}: sequences of length {meta.seq_len} over {meta.vocab_size} tokens do not fit the "
            f"model (seq_len {model.config.seq_len}, vocab {model.config.vocab_size})"
        )
    model.adaptive_halting = halt == "adaptive"
    head = ACTLossHead(model, loaded.card.loss_type).to(info.device)
    dataset = PuzzleDataset(
        {"dataset_path": str(data), "global_batch_size": batch_size, "test_set_mode": True}, split="test"
    )
    is_arc = (Path(data) / "test_puzzles.json").exists()
    start = time.perf_counter()
    result = evaluate(head, dataset, info, max_batches=max_batches, collect=is_arc)
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {
        "model": str(loaded.source),
        "data": str(data),
        "halt": halt,
        "seconds": round(seconds, 3),
        "metrics": result.metrics,
    }
    print(f"evaluated {loaded.source} on {data} ({halt} halting, {seconds:.1f} s)")
    print(format_metrics(result.metrics))
    if is_arc:
        from hrm.data.arc_eval import score_arc

        arc = score_arc(result.predictions, Path(data))
        report["arc"] = arc.summary
        print(arc.format())
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            arc.write_submission(Path(out) / "submission.json")
            print(f"wrote {Path(out) / 'submission.json'}")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        tmp = Path(out) / ".metrics.json.tmp"
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(Path(out) / "metrics.json")
        print(f"wrote {Path(out) / 'metrics.json'}")
    return report
