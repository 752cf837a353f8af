"""Checkpoints: weights as safetensors with their config beside them, training state for resuming,
and `load_model` for anything a user may point at (a run, a checkpoint, a weights file, a packaged
model name, or a published reference checkpoint directory).

Layout of a run directory:
    RUN/config.yaml                   the resolved training config
    RUN/metrics.jsonl                 one JSON object per logged step / evaluation
    RUN/checkpoints/step_000100/      model.safetensors, model.json, [ema.safetensors],
                                      training_state.pt (+ rank<N>.pt per process)
    RUN/checkpoints/latest            name of the newest complete checkpoint
Each checkpoint is written to a temporary directory and renamed into place, so a crash never leaves
a half-written one; only the newest `keep` are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hrm.errors import CheckpointError
from hrm.models import ACTModel, build_model, load_weights
from hrm.models.losses import LossType, as_loss_type

WEIGHTS = "model.safetensors"
EMA_WEIGHTS = "ema.safetensors"
MODEL_CARD = "model.json"
TRAIN_STATE = "training_state.pt"
LATEST = "latest"

PACKAGED_DIR = Path(__file__).resolve().parent / "pretrained"


@dataclass
class ModelCard:
    """What is needed to rebuild a model: its name, architecture config and loss."""

    model: str
    config: dict[str, Any]
    loss_type: LossType = "stablemax_cross_entropy"
    extra: dict[str, Any] | None = None

    def to_json(self) -> str:
        data = {"model": self.model, "config": self.config, "loss_type": self.loss_type}
        if self.extra:
            data["extra"] = self.extra
        return json.dumps(data, indent=1)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(path.read_text())
            loss_type = as_loss_type(data.get("loss_type", "stablemax_cross_entropy"))
            return cls(data["model"], data["config"], loss_type, data.get("extra"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: not a valid model card ({exc})") from None


def _contiguous_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / WEIGHTS).exists()
    ]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    marker = root / LATEST
    if marker.exists():
        candidate = root / marker.read_text().strip()
        if (candidate / TRAIN_STATE).exists():
            return candidate
    complete = [p for p in checkpoint_dirs(run_dir) if (p / TRAIN_STATE).exists()]
    return complete[-1] if complete else None


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    card: ModelCard,
    train_state: dict[str, Any] | None,
    rank_states: list[dict[str, Any]] | None = None,
    ema_state: dict[str, torch.Tensor] | None = None,
    keep: int = 3,
) -> Path:
    """Write checkpoint `step` atomically (temp dir + rename) and prune all but the newest `keep`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous_state(model), str(tmp / WEIGHTS))
    if ema_state is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in ema_state.items()}, str(tmp / EMA_WEIGHTS))
    (tmp / MODEL_CARD).write_text(card.to_json())
    for rank, state in enumerate(rank_states or []):
        torch.save(state, tmp / f"rank{rank}.pt")
    if train_state is not None:
        torch.save(train_state, tmp / TRAIN_STATE)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(root / LATEST, final.name)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"{path}: cannot be read as a training state ({type(exc).__name__})") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a reference `.pt`/`step_N` file (never unpickling code)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    return state


def _reference_config(ckpt_dir: Path, weights: dict[str, torch.Tensor], data_path: str | None) -> ModelCard:
    """A ModelCard from a published reference run: its all_config.yaml, with the dataset-derived
    fields taken from the dataset metadata (or, failing that, from the weights' shapes)."""
    from hrm.models import strip_prefixes

    cfg_path = ckpt_dir / "all_config.yaml"
    try:
        cfg = yaml.safe_load(cfg_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointError(f"{cfg_path}: cannot read the reference config ({exc})") from None
    arch = dict(cfg.get("arch") or {})
    name = arch.pop("name", "HierarchicalReasoningModel_ACTV1")
    loss = arch.pop("loss", {}) or {}
    loss_type = loss.get("loss_type", "stablemax_cross_entropy") if isinstance(loss, dict) else str(loss)
    state = strip_prefixes(weights)
    if "inner.embed_tokens.embedding_weight" in state:
        arch.setdefault("vocab_size", int(state["inner.embed_tokens.embedding_weight"].shape[0]))
    if "inner.puzzle_emb.weights" in state:
        arch.setdefault("num_puzzle_identifiers", int(state["inner.puzzle_emb.weights"].shape[0]))
    data_path = data_path or cfg.get("data_path")
    if data_path and (Path(data_path) / "train" / "dataset.json").exists():
        meta = json.loads((Path(data_path) / "train" / "dataset.json").read_text())
        arch.setdefault("seq_len", int(meta["seq_len"]))
        arch.setdefault("num_puzzle_identifiers", int(meta["num_puzzle_identifiers"]))
    if "seq_len" not in arch:
        raise CheckpointError(f"{ckpt_dir}: the sequence length is unknown; pass the dataset with --data DIR")
    arch.setdefault("batch_size", int(cfg.get("global_batch_size", 1)))
    try:
        return ModelCard(str(name), arch, as_loss_type(loss_type))
    except ValueError as exc:
        raise CheckpointError(f"{ckpt_dir}/all_config.yaml: {exc}") from None


@dataclass
class LoadedModel:
    model: ACTModel
    card: ModelCard
    source: Path


def _reference_weights_file(path: Path) -> Path | None:
    steps = [
        p for p in path.iterdir() if p.is_file() and p.name.startswith("step_") and p.suffix in ("", ".pt")
    ]
    if not steps:
        return None
    return max(steps, key=lambda p: int("".join(c for c in p.stem.split("_")[1] if c.isdigit()) or 0))


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory resolves to its latest checkpoint; anything else stays as it is."""
    p = Path(path)
    if p.is_dir() and (p / "checkpoints").is_dir():
        latest = latest_checkpoint(p)
        if latest is None:
            raise CheckpointError(f"run {p} has no complete checkpoint yet")
        return latest
    return p


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    use_ema: bool = True,
    data_path: str | None = None,
    forward_dtype: str | None = None,
) -> LoadedModel:
    """Load a model from a run dir, a checkpoint dir, a `.safetensors` file with `model.json` beside
    it, a packaged model name (e.g. "sudoku-9x9"), or a reference checkpoint directory
    (`all_config.yaml` + `step_N`)."""
    text = str(path)
    p = Path(text)
    if not p.exists() and (PACKAGED_DIR / text).is_dir():
        p = PACKAGED_DIR / text
    elif not p.exists():
        known = sorted(d.name for d in PACKAGED_DIR.iterdir() if d.is_dir()) if PACKAGED_DIR.is_dir() else []
        hint = f" (packaged models: {', '.join(known)})" if known else ""
        raise CheckpointError(f"model {text!r} is neither a file, a directory nor a packaged model{hint}")
    p = resolve_checkpoint(p)
    if p.is_file():
        weights_file, card_file = p, p.parent / MODEL_CARD
        if not card_file.exists():
            raise CheckpointError(f"{p}: no {MODEL_CARD} beside it to say which model it is")
        card = ModelCard.read(card_file)
        weights = read_weights(weights_file)
    elif (p / MODEL_CARD).exists():
        card = ModelCard.read(p / MODEL_CARD)
        weights_file = p / EMA_WEIGHTS if use_ema and (p / EMA_WEIGHTS).exists() else p / WEIGHTS
        weights = read_weights(weights_file)
    elif (p / "all_config.yaml").exists():
        reference_file = _reference_weights_file(p)
        if reference_file is None:
            raise CheckpointError(f"{p}: reference checkpoint directory without a step_N weights file")
        weights_file = reference_file
        weights = read_weights(weights_file)
        card = _reference_config(p, weights, data_path)
    else:
        raise CheckpointError(f"{p}: not a checkpoint (no {MODEL_CARD} or all_config.yaml inside)")
    config = dict(card.config)
    if forward_dtype:
        config["forward_dtype"] = forward_dtype
    model = build_model(card.model, config)
    load_weights(model, weights, source=str(weights_file))
    model.to(device).eval()
    return LoadedModel(model=model, card=card, source=weights_file)


def export_model(
    source: str | Path, out_dir: str | Path, use_ema: bool = True, overwrite: bool = False
) -> Path:
    """Write a model as a self-contained directory (``model.safetensors`` + ``model.json``), the form of
    the packaged models: from a run (its latest checkpoint), a checkpoint dir or anything `load_model`
    reads. EMA weights are taken when present unless ``use_ema`` is false. Written to a temporary
    directory and renamed, so a failed export leaves nothing half-written."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out} already exists (pass --overwrite to replace it)")
    loaded = load_model(source, use_ema=use_ema)
    extra = dict(loaded.card.extra or {})
    extra["exported_from"] = f"{loaded.source.parent.name}/{loaded.source.name}"
    card = ModelCard(loaded.card.model, loaded.card.config, loaded.card.loss_type, extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous_state(loaded.model), str(tmp / WEIGHTS))
    (tmp / MODEL_CARD).write_text(card.to_json())
    for f in tmp.iterdir():
        f.chmod(0o644)  # readable by everyone, as files meant to be shared or packaged
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def run_data_path(model_path: str) -> str | None:
    """The data_path of the run a checkpoint belongs to, if it has one."""
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
