"""Evaluation as the papers measured it: every test example run through all ACT segments (or until
the Q head halts it, with adaptive halting), metrics summed per set and divided by the row count.

Metrics: `accuracy` (token), `exact_accuracy` (whole puzzle right), `q_halt_accuracy` (the halting
head's verdict agrees with correctness), `steps` (mean segments), and the losses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm import distributed
from hrm.fileio import NON_FINITE_WARNING, has_non_finite, json_safe, warn
from hrm.inference.runner import run_until_halted
from hrm.models import IGNORE_LABEL_ID, ACTLossHead, HaltMode, act_metrics


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, float]]
    # With collect=True, per example (rank-local rows, padding removed): set name, puzzle id, inputs,
    # predictions, labels and the halting logit, in dataset order.
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def evaluate(
    head: ACTLossHead,
    dataset: Any,
    info: distributed.DistInfo | None = None,
    max_batches: int | None = None,
    collect: bool = False,
    halt: HaltMode = "max",
) -> EvalResult:
    """Run every test batch through `run_until_halted`; each row counts once, with the answer of the
    segment where it halted (see `act_metrics`), and the losses of those answers (with `halt="max"`
    the last segment's, as the reference reports them). Sums are reduced over processes."""
    info = info or distributed.DistInfo()
    head.eval()
    device = info.device
    collected: dict[str, dict[str, list[np.ndarray]]] = {}
    sets = list(dataset.metadata.sets)
    keys = ("count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss")
    local = torch.zeros(len(sets), len(keys), dtype=torch.float64, device=device)
    for index, (set_name, batch, _global) in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        out = run_until_halted(head.model, batch, halt=halt)
        labels = batch["labels"]
        with torch.no_grad():
            metrics = act_metrics(
                labels, out.preds, out.q_halt, out.steps, torch.ones_like(out.steps, dtype=torch.bool)
            )
            metrics["lm_loss"], metrics["q_halt_loss"] = head.losses(
                out.logits, labels, out.q_halt, out.preds
            )
        local[sets.index(set_name)] += torch.stack([metrics[k].to(torch.float64) for k in keys])
        if collect:
            keep = (labels != IGNORE_LABEL_ID).any(-1) | (batch["inputs"] != 0).any(-1)
            store = collected.setdefault(set_name, {})
            for name, tensor in (
                ("puzzle_identifiers", batch["puzzle_identifiers"]),
                ("inputs", batch["inputs"]),
                ("labels", labels),
                ("preds", out.preds),
                ("q_halt_logits", out.q_halt),
                ("steps", out.steps),
            ):
                store.setdefault(name, []).append(tensor[keep].cpu().numpy())
    total = distributed.reduce_sum(local, info).cpu()
    sums: dict[str, dict[str, float]] = {}
    for row, set_name in enumerate(sets):
        values = dict(zip(keys, total[row].tolist()))
        count = values.pop("count")
        if count == 0:
            continue
        sums[set_name] = {k: v / count for k, v in values.items()}
        sums[set_name]["count"] = count
    predictions = {s: {k: np.concatenate(v) for k, v in d.items()} for s, d in collected.items()}
    return EvalResult(metrics=sums, predictions=predictions)


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
    halt: HaltMode = "max",
    batch_size: int = 256,
    max_batches: int | None = None,
    device: str = "auto",
    use_ema: bool = True,
    out: str | None = None,
) -> dict[str, Any]:
    """`hrm eval`: load, evaluate, print, and write metrics.json (+ ARC's submission.json). Non-finite
    numbers (a broken model) are reported as null, with a warning on stderr."""
    import time

    from hrm.checkpoint import load_model, run_data_path
    from hrm.data.dataset import PuzzleDataset
    from hrm.data.format import load_metadata
    from hrm.errors import ConfigError
    from hrm.tasks import task_for_shape

    check_eval_options(batch_size, max_batches, out)
    info = distributed.DistInfo(device=distributed.pick_device(device))
    loaded = load_model(model_path, device=info.device, use_ema=use_ema, data_path=data)
    data = data or run_data_path(str(loaded.source))
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
    head = ACTLossHead(model, loaded.card.loss_type).to(info.device)
    dataset = PuzzleDataset(
        {"dataset_path": str(data), "global_batch_size": batch_size, "test_set_mode": True}, split="test"
    )
    task = task_for_shape(meta.seq_len, meta.vocab_size)
    collect = task is not None and task.scores_datasets
    start = time.perf_counter()
    result = evaluate(head, dataset, info, max_batches=max_batches, collect=collect, halt=halt)
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
    score = task.score_dataset(result.predictions, Path(data)) if task is not None and collect else None
    files: dict[str, Any] = {}
    if score is not None:
        assert task is not None
        report[task.name] = score.summary
        print(score.text)
        files.update(score.files)
    if has_non_finite(report):
        warn(NON_FINITE_WARNING)
        report = json_safe(report)
    if out:
        files["metrics.json"] = report
        write_eval_files(Path(out), files)
    return report


def check_eval_options(batch_size: int, max_batches: int | None, out: str | None) -> None:
    """ConfigError for options `hrm eval` cannot honour, before anything is loaded."""
    from hrm.errors import ConfigError
    from hrm.limits import MAX_BATCH_ROWS

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if batch_size > MAX_BATCH_ROWS:
        raise ConfigError(f"--batch-size must be at most {MAX_BATCH_ROWS}, got {batch_size}")
    if max_batches is not None and max_batches < 1:
        raise ConfigError(f"--max-batches must be at least 1, got {max_batches}")
    if out:
        target = Path(out)
        if target.exists() and not target.is_dir():
            raise ConfigError(f"--out {out} is a file; --out names a directory for metrics.json")
        for name in ("metrics.json",):
            _check_replaceable(target / name)


def _check_replaceable(path: Path) -> None:
    """StorageError unless `path` is absent or a JSON file an earlier `hrm eval --out` wrote."""
    from hrm.errors import StorageError

    if not path.exists() and not path.is_symlink():
        return
    try:
        ok = path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 30
        content = json.loads(path.read_text(encoding="utf-8")) if ok else None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        content = None
    if not isinstance(content, dict | list) or (
        path.name == "metrics.json" and not (isinstance(content, dict) and "metrics" in content)
    ):
        raise StorageError(f"refusing to replace {path}: it is not a file an earlier hrm eval wrote")


def write_eval_files(out: Path, files: dict[str, Any]) -> None:
    """metrics.json (and a task's files) into `out`, each atomically; an existing file is replaced only
    when an earlier `hrm eval` wrote it."""
    from hrm.errors import StorageError
    from hrm.fileio import atomic_write_text, describe_os_error

    for name in files:
        _check_replaceable(out / name)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            text = json.dumps(
                json_safe(content), indent=1 if name == "metrics.json" else None, allow_nan=False
            )
            atomic_write_text(out / name, text)
            print(f"wrote {out / name}")
    except (OSError, MemoryError) as exc:
        raise StorageError(describe_os_error(exc, f"write the evaluation to {out}")) from None
