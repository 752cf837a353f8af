"""Evaluation as the papers measured it: every test example run through all ACT segments (or until
the Q head halts it, with adaptive halting), metrics summed per set and divided by the row count.

Metrics: `accuracy` (token), `exact_accuracy` (whole puzzle right), `q_halt_accuracy` (the halting
head's verdict agrees with correctness), `steps` (mean segments), and the losses. A task may score
the whole dataset beyond these (`Task.score_dataset`, ARC's voting and pass@k): `evaluate` then
collects its predictions from every process (`Predictions`), `score_predictions` scores them once.
Training and `hrm eval` share both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hrm import distributed
from hrm.fileio import NON_FINITE_WARNING, has_non_finite, json_safe, warn
from hrm.inference.runner import run_until_halted
from hrm.models import IGNORE_LABEL_ID, ACTLossHead, HaltMode, act_metrics

if TYPE_CHECKING:  # pragma: no cover
    from hrm.config import Targets
    from hrm.tasks import DatasetScore, Task


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, float]]
    # With collect=True, on the main process: per set, what a task's `score_dataset` reads of every
    # example of every process (padding removed), in dataset order (see `Predictions`). Empty on the
    # other processes.
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


class Predictions:
    """What `evaluate(collect=True)` keeps of each evaluated row: the fields a task's
    `score_dataset` reads (`puzzle_identifiers` int32, `inputs` and `preds` in the smallest integer
    type that holds the model's tokens, `q_halt_logits` float32), one chunk per batch, so that
    `gather` can put the rows of all processes back in dataset order."""

    FIELDS = ("puzzle_identifiers", "inputs", "preds", "q_halt_logits")

    def __init__(self, vocab_size: int):
        self.token_dtype = (
            np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.int32
        )
        self.chunks: dict[str, dict[str, list[np.ndarray]]] = {}

    def add(
        self, set_name: str, batch: dict[str, torch.Tensor], preds: torch.Tensor, q_halt: torch.Tensor
    ) -> None:
        """One batch's real rows (padding rows, with no input and no label, are dropped)."""
        keep = (batch["labels"] != IGNORE_LABEL_ID).any(-1) | (batch["inputs"] != 0).any(-1)
        store = self.chunks.setdefault(set_name, {name: [] for name in self.FIELDS})
        for name, tensor, dtype in (
            ("puzzle_identifiers", batch["puzzle_identifiers"], np.int32),
            ("inputs", batch["inputs"], self.token_dtype),
            ("preds", preds, self.token_dtype),
            ("q_halt_logits", q_halt, np.float32),
        ):
            store[name].append(tensor[keep].cpu().numpy().astype(dtype, copy=False))

    def gather(self, info: distributed.DistInfo) -> dict[str, dict[str, np.ndarray]]:
        """Every process's rows in dataset order on the main process (a collective; {} elsewhere)."""
        per_rank = distributed.gather_to_main(self.chunks, info)
        return {} if per_rank is None else in_dataset_order(per_rank)


def in_dataset_order(
    per_rank: list[dict[str, dict[str, list[np.ndarray]]]],
) -> dict[str, dict[str, np.ndarray]]:
    """Per set, the rows of `Predictions.chunks` of each rank (in rank order) as one array per field,
    in dataset order. In test mode `PuzzleDataset` gives rank r rows [r*L, (r+1)*L) of every global
    batch (L = global batch size / ranks), every rank the same number of batches: the order is batch
    by batch, and within a batch rank by rank. (The order matters: ARC's votes break ties by first
    appearance.)"""
    sets = list(dict.fromkeys(name for chunks in per_rank for name in chunks))
    out: dict[str, dict[str, np.ndarray]] = {}
    for set_name in sets:
        ranks = [chunks[set_name] for chunks in per_rank if set_name in chunks]
        fields = list(ranks[0])
        batches = max(len(r[fields[0]]) for r in ranks)
        out[set_name] = {
            name: np.concatenate([r[name][b] for b in range(batches) for r in ranks if b < len(r[name])])
            for name in fields
        }
    return out


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
    the last segment's, as the reference reports them). Sums are reduced over processes; with
    `collect`, the rows a task scores are gathered to the main process (`Predictions`). Every
    process must call it."""
    info = info or distributed.DistInfo()
    head.eval()
    device = info.device
    collected = Predictions(head.model.config.vocab_size) if collect else None
    sets = list(dataset.metadata.sets)
    keys = ("count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss")
    local = torch.zeros(len(sets), len(keys), dtype=torch.float64, device=device)
    for index, (set_name, batch, _global) in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        out = run_until_halted(head.model, batch, halt=halt)
        labels = head.scored_labels(batch["inputs"], batch["labels"], out.logits)
        with torch.no_grad():
            metrics = act_metrics(
                labels, out.preds, out.q_halt, out.steps, torch.ones_like(out.steps, dtype=torch.bool)
            )
            metrics["lm_loss"], metrics["q_halt_loss"] = head.losses(
                out.logits, labels, out.q_halt, out.preds
            )
        local[sets.index(set_name)] += torch.stack([metrics[k].to(torch.float64) for k in keys])
        if collected is not None:
            collected.add(set_name, batch, out.preds, out.q_halt)
    total = distributed.reduce_sum(local, info).cpu()
    sums: dict[str, dict[str, float]] = {}
    for row, set_name in enumerate(sets):
        values = dict(zip(keys, total[row].tolist()))
        count = values.pop("count")
        if count == 0:
            continue
        sums[set_name] = {k: v / count for k, v in values.items()}
        sums[set_name]["count"] = count
    predictions = collected.gather(info) if collected is not None else {}
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


def scoring_task(metadata: Any) -> Task | None:
    """The task whose own dataset score (`Task.score_dataset`) applies to a dataset of this metadata
    (its `seq_len` and `vocab_size`), or None when it has none."""
    from hrm.tasks import task_for_shape

    task = task_for_shape(metadata.seq_len, metadata.vocab_size)
    return task if task is not None and task.scores_datasets else None


def score_predictions(
    task: Task | None, result: EvalResult, data_dir: Path, info: distributed.DistInfo
) -> DatasetScore | None:
    """`task`'s score of `evaluate(collect=True)`'s gathered predictions, on the main process only
    (None elsewhere, and when the task has no score for this dataset)."""
    if task is None or not info.is_main:
        return None
    return task.score_dataset(result.predictions, Path(data_dir))


def evaluate_cli(
    model_path: str,
    data: str | None = None,
    halt: HaltMode = "max",
    batch_size: int = 256,
    max_batches: int | None = None,
    device: str = "auto",
    use_ema: bool = True,
    out: str | None = None,
    targets: Targets = "label",
) -> dict[str, Any]:
    """`hrm eval`: load, evaluate, print, and write metrics.json (+ ARC's submission.json). With
    `targets="closest_answer"` (puzzles with several right answers: mazes) a row is scored against the
    right answer closest to its prediction, so exact accuracy counts any right answer. Under
    `torchrun` every process evaluates its share of each batch, the metrics are summed and a task's
    dataset score is computed once, from every process's predictions; the main process prints and
    writes. Non-finite numbers (a broken model) are reported as null, with a warning on stderr."""
    check_eval_options(batch_size, max_batches, out)
    joined = torch.distributed.is_available() and torch.distributed.is_initialized()
    info = distributed.setup(device)
    finished = False
    try:
        metrics = _evaluate_cli(info, model_path, data, halt, batch_size, max_batches, use_ema, out, targets)
        finished = True
        return metrics
    finally:
        if not joined:  # leave a process group the caller set up to the caller
            distributed.teardown(info, finished)


def _evaluate_cli(
    info: distributed.DistInfo,
    model_path: str,
    data: str | None,
    halt: HaltMode,
    batch_size: int,
    max_batches: int | None,
    use_ema: bool,
    out: str | None,
    targets: Targets,
) -> dict[str, Any]:
    import time

    from hrm.checkpoint import load_model, run_data_path
    from hrm.data.dataset import PuzzleDataset
    from hrm.data.format import check_split
    from hrm.errors import ConfigError

    if batch_size < 1 or batch_size % info.world_size:
        raise ConfigError(
            f"--batch-size must be a positive multiple of the {info.world_size} processes, got {batch_size}"
            if info.enabled
            else f"--batch-size must be at least 1, got {batch_size}"
        )
    loaded = load_model(model_path, device=info.device, use_ema=use_ema, data_path=data)
    data = data or run_data_path(str(loaded.source))
    if data is None:
        raise ConfigError(f"{model_path}: no dataset known for it; pass --data DIR")
    if not (Path(data) / "test" / "dataset.json").exists():
        raise ConfigError(f"--data {data}: not a dataset directory with a test split (test/dataset.json)")
    model = loaded.model
    meta, _ = check_split(data, "test")  # the checks of `hrm data validate`, before any array is used
    if meta.seq_len != model.config.seq_len or meta.vocab_size > model.config.vocab_size:
        raise ConfigError(
            f"--data {data}: sequences of length {meta.seq_len} over {meta.vocab_size} tokens do not fit the "
            f"model (seq_len {model.config.seq_len}, vocab {model.config.vocab_size})"
        )
    from hrm.tasks import answer_labels_for

    answer_labels = answer_labels_for(
        targets, meta.seq_len, meta.vocab_size, f"--data {data}", "--targets closest_answer"
    )
    head = ACTLossHead(model, loaded.card.loss_type, answer_labels).to(info.device)
    dataset = PuzzleDataset(
        {
            "dataset_path": str(data),
            "global_batch_size": batch_size,
            "test_set_mode": True,
            "rank": info.rank,
            "num_replicas": info.world_size,
        },
        split="test",
    )
    task = scoring_task(meta)
    start = time.perf_counter()
    result = evaluate(head, dataset, info, max_batches=max_batches, collect=task is not None, halt=halt)
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {
        "model": str(loaded.source),
        "data": str(data),
        "halt": halt,
        "targets": targets,
        "seconds": round(seconds, 3),
        "metrics": result.metrics,
    }
    if not info.is_main:
        return report
    processes = f", {info.world_size} processes" if info.enabled else ""
    print(f"evaluated {loaded.source} on {data} ({halt} halting, {seconds:.1f} s{processes})")
    print(format_metrics(result.metrics))
    score = score_predictions(task, result, Path(data), info)
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
