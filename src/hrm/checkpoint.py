"""Checkpoints: weights as safetensors with their config beside them, training state for resuming,
and `load_model` for anything a user may point at (a run, a checkpoint, a weights file, a packaged
model name, or a published reference checkpoint directory).

Layout of a run directory:
    RUN/config.yaml                   the resolved training config
    RUN/metrics.jsonl                 one JSON object per logged step / evaluation
    RUN/checkpoints/step_000100/      model.safetensors, model.json, [ema.safetensors],
                                      training_state.pt (+ rank<N>.pt per process)
    RUN/checkpoints/latest            name of the newest complete checkpoint
Each checkpoint is written to a temporary directory (`checkpoints/.tmp_step_*`), every file fsynced,
and renamed into place, so a crash, a full disk or a read-only file system never leaves a half-written
one; a failed write removes its temporary directory, and leftovers of a killed process are removed by
the next save or resume. Only the newest `keep` are kept. Directories in checkpoints/ that are not
`step_<digits>` are ignored.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hrm.errors import CheckpointError, ConfigError, StorageError
from hrm.fileio import (
    atomic_write_text,
    describe_os_error,
    fsync_dir,
    fsync_file,
    remove_quietly,
    write_file,
)
from hrm.limits import MAX_CARD_BYTES, MAX_CYCLES
from hrm.models import FORWARD_DTYPES, ACTModel, RecursiveConfig, build_model, load_weights
from hrm.models.losses import LossType, as_loss_type

WEIGHTS = "model.safetensors"
EMA_WEIGHTS = "ema.safetensors"
MODEL_CARD = "model.json"
TRAIN_STATE = "training_state.pt"
LATEST = "latest"
STEP_DIR = re.compile(r"step_(\d+)")
TEMP_PREFIX = ".tmp"  # checkpoints/.tmp_step_<N>: a checkpoint being written
# What an export directory holds; `hrm export --overwrite` replaces nothing else.
EXPORT_FILES = frozenset({WEIGHTS, EMA_WEIGHTS, MODEL_CARD})

PACKAGED_DIR = Path(__file__).resolve().parent / "pretrained"


def named_path(source: str | Path) -> Path:
    """`source` as a path, or the packaged model of that name when no such path exists."""
    p = Path(source)
    if not p.exists() and (PACKAGED_DIR / str(source)).is_dir():
        return PACKAGED_DIR / str(source)
    return p


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
        """The card in `path`; CheckpointError naming the file and what is wrong with it."""
        try:
            if path.stat().st_size > MAX_CARD_BYTES:
                raise ValueError(f"larger than {MAX_CARD_BYTES >> 10} KiB")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            model, config, extra = data.get("model"), data.get("config"), data.get("extra")
            if not isinstance(model, str):
                raise ValueError("'model' is not a model name")
            if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
                raise ValueError("'config' is not an object of architecture fields")
            if extra is not None and not isinstance(extra, dict):
                raise ValueError("'extra' is not an object")
            loss_type = as_loss_type(data.get("loss_type", "stablemax_cross_entropy"))
            return cls(model, config, loss_type, extra)
        except (OSError, ValueError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CheckpointError(f"{path}: not a valid model card ({reason})") from None


class CardFields(BaseModel):
    """The reader's card of a shipped model (`hrm export --card FILE.yaml` stores it in model.json
    as extra.card, with the parameter count added): what it is, what it learnt from, how to train it
    again, what that cost, what it scores with the command that measured it, where it is weak."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=2000)
    architecture: str = Field(min_length=1, max_length=2000)
    data: str = Field(min_length=1, max_length=2000)
    recipe: list[str] = Field(min_length=1, max_length=50)  # the commands, in order
    cpu_time: str = Field(min_length=1, max_length=500)
    results: list[dict[str, str | int | float | None]] = Field(min_length=1, max_length=200)  # table rows
    measured_with: str = Field(min_length=1, max_length=1000)  # the command that printed `results`
    weaknesses: list[str] = Field(min_length=1, max_length=50)
    # The generator level its puzzles came from ("hard" for `hrm data maze --hard`): the viewer
    # generates that level by default. Checked on export against the levels the model's kind offers.
    difficulty: str | None = Field(default=None, min_length=1, max_length=32)


def read_card_fields(path: str | Path) -> dict[str, Any]:
    """A card YAML file, checked; ConfigError naming the file and the first problem."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CARD_BYTES:
            raise ConfigError(f"{p}: larger than {MAX_CARD_BYTES >> 10} KiB")
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"--card {p}: cannot read it ({reason})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--card {p}: a card is a mapping of {', '.join(CardFields.model_fields)}")
    try:
        return CardFields(**data).model_dump(exclude_none=True)  # a card without a difficulty stores none
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"--card {p}: {where}: {err['msg']}") from None


def check_card_difficulty(config: dict[str, Any], difficulty: str, card_file: object) -> None:
    """ConfigError unless the puzzle kind of a model with this config generates ``difficulty``."""
    # Imported only when a card names a difficulty: the tasks pull in the data code.
    from hrm.tasks import task_for_shape

    seq_len, vocab_size = int(config.get("seq_len", 0)), int(config.get("vocab_size", 0))
    task = task_for_shape(seq_len, vocab_size)
    if task is None:
        raise ConfigError(f"--card {card_file}: difficulty: the model's puzzle kind is not known")
    try:
        task.check_generate(math.isqrt(seq_len), difficulty)
    except ValueError as exc:
        raise ConfigError(f"--card {card_file}: difficulty: {exc}") from None


def _contiguous_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def checkpoint_step(path: Path) -> int | None:
    """The step of a checkpoint directory name (`step_0000100` -> 100); None for any other name."""
    match = STEP_DIR.fullmatch(path.name)
    return int(match.group(1)) if match else None


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """A run's checkpoint directories that hold weights, oldest first (stray names ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        step = checkpoint_step(p)
        if step is not None and p.is_dir() and (p / WEIGHTS).is_file():
            found.append((step, p.name, p))
    return [p for _, _, p in sorted(found)]


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints a run can resume from (weights and training state written), newest first."""
    return [p for p in reversed(checkpoint_dirs(run_dir)) if (p / TRAIN_STATE).is_file()]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint `checkpoints/latest` names, when it is complete; else the newest complete one."""
    root = Path(run_dir) / "checkpoints"
    try:
        name = (root / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    candidate = root / name
    if STEP_DIR.fullmatch(name) and (candidate / TRAIN_STATE).is_file() and (candidate / WEIGHTS).is_file():
        return candidate
    complete = complete_checkpoints(run_dir)
    return complete[0] if complete else None


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Remove what an interrupted save left in `run_dir/checkpoints` (`.tmp*` entries); returns them."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    leftovers = [p for p in root.iterdir() if p.name.startswith(TEMP_PREFIX) or p.name.endswith(".tmp")]
    for p in leftovers:
        remove_quietly(p)
    return leftovers


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, str(path))
    fsync_file(path)


def _save_object(obj: Any, path: Path) -> None:
    torch.save(obj, path)
    fsync_file(path)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished directory `tmp` to `final`; an existing `final` (the same step saved again
    after a resume) is moved aside first and removed once the new one is in place."""
    aside = final.with_name(f"{TEMP_PREFIX}_old_{final.name}")
    if final.exists():
        remove_quietly(aside)
        os.replace(final, aside)
    try:
        os.replace(tmp, final)
    except BaseException:
        if aside.exists() and not final.exists():
            os.replace(aside, final)
        raise
    remove_quietly(aside)


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
    """Write checkpoint `step` atomically (temp dir, fsync, rename) and prune all but the newest `keep`.
    A failure to write (a full disk, a read-only file system, no memory) removes the temporary
    directory and raises StorageError; the checkpoints written before are left as they were."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:07d}"
    tmp = root / f"{TEMP_PREFIX}_step_{step:07d}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_temporaries(run_dir)
        tmp.mkdir()
        _save_tensors(_contiguous_state(model), tmp / WEIGHTS)
        if ema_state is not None:
            ema = {k: v.detach().contiguous().cpu() for k, v in ema_state.items()}
            _save_tensors(ema, tmp / EMA_WEIGHTS)
        write_file(tmp / MODEL_CARD, card.to_json())
        for rank, state in enumerate(rank_states or []):
            _save_object(state, tmp / f"rank{rank}.pt")
        if train_state is not None:
            _save_object(train_state, tmp / TRAIN_STATE)
        fsync_dir(tmp)
        _move_into_place(tmp, final)
        fsync_dir(root)
        atomic_write_text(root / LATEST, final.name)
    except (OSError, MemoryError) as exc:
        remove_quietly(tmp)
        raise StorageError(
            describe_os_error(exc, f"write checkpoint {final}")
            + f"; the checkpoints written before are kept (resume with: hrm train --resume {run_dir})"
        ) from None
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


def weights_in(checkpoint: Path, use_ema: bool = True) -> Path:
    """The weights file a checkpoint directory is loaded from: its EMA weights when asked for and
    present, else its plain weights."""
    ema = checkpoint / EMA_WEIGHTS
    return ema if use_ema and ema.exists() else checkpoint / WEIGHTS


def _reference_config(ckpt_dir: Path, weights: dict[str, torch.Tensor], data_path: str | None) -> ModelCard:
    """A ModelCard from a published reference run: its all_config.yaml, with the dataset-derived
    fields taken from the dataset metadata (or, failing that, from the weights' shapes)."""
    from hrm.models import strip_prefixes

    cfg_path = ckpt_dir / "all_config.yaml"
    try:
        if cfg_path.stat().st_size > MAX_CARD_BYTES:
            raise ValueError(f"larger than {MAX_CARD_BYTES >> 10} KiB")
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict) or not isinstance(cfg.get("arch") or {}, dict):
            raise ValueError("not a mapping with an 'arch' mapping")
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"{cfg_path}: cannot read the reference config ({reason})") from None
    arch = dict(cfg.get("arch") or {})
    name = arch.pop("name", "HierarchicalReasoningModel_ACTV1")
    loss = arch.pop("loss", {}) or {}
    loss_type = loss.get("loss_type", "stablemax_cross_entropy") if isinstance(loss, dict) else str(loss)
    state = strip_prefixes(weights)
    if "inner.embed_tokens.embedding_weight" in state:
        arch.setdefault("vocab_size", int(state["inner.embed_tokens.embedding_weight"].shape[0]))
    if "inner.puzzle_emb.weights" in state:
        arch.setdefault("num_puzzle_identifiers", int(state["inner.puzzle_emb.weights"].shape[0]))
    found = data_path or cfg.get("data_path")
    data_path = found if isinstance(found, str) else None
    if data_path and (Path(data_path) / "train" / "dataset.json").exists():
        from hrm.data.format import load_metadata

        meta = load_metadata(data_path, "train")
        arch.setdefault("seq_len", meta.seq_len)
        arch.setdefault("num_puzzle_identifiers", meta.num_puzzle_identifiers)
    if "seq_len" not in arch:
        raise CheckpointError(f"{ckpt_dir}: the sequence length is unknown; pass the dataset with --data DIR")
    batch = cfg.get("global_batch_size", 1)
    arch.setdefault("batch_size", batch if isinstance(batch, int) else 1)
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
    p = named_path(text)
    if not p.exists():
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
        weights_file = weights_in(p, use_ema)
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
    try:
        model = build_model(card.model, config)
    except ConfigError as exc:
        where = weights_file.parent / MODEL_CARD if (weights_file.parent / MODEL_CARD).exists() else p
        raise CheckpointError(f"{where}: {exc}") from None
    load_weights(model, weights, source=str(weights_file))
    model.to(device).eval()
    return LoadedModel(model=model, card=card, source=weights_file)


def check_export_target(out: Path, source: str | Path) -> None:
    """StorageError unless `out` may be written by `hrm export --overwrite`: it does not exist, or it is
    an earlier export (a directory holding nothing but model.safetensors, model.json and
    ema.safetensors), or an empty directory. Never the current directory or one above it, a directory
    holding the model exported, a training run, or anything else."""
    if not out.exists() and not out.is_symlink():
        return
    refuse = f"refusing to replace {out}"
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if out.name in ("", ".", "..") or resolved == cwd or resolved in cwd.parents:
        raise StorageError(f"{refuse}: it is the current directory or one above it; give a new directory")
    src = named_path(source).resolve()
    if resolved in (src, PACKAGED_DIR) or resolved in src.parents or PACKAGED_DIR in resolved.parents:
        raise StorageError(f"{refuse}: it holds the model being exported ({source}); give a new directory")
    if out.is_symlink() or not out.is_dir():
        raise StorageError(f"{refuse}: it is a file, not an earlier export; give a new directory")
    if (out / "checkpoints").exists() or (out / "config.yaml").exists():
        raise StorageError(f"{refuse}: it is a training run; give a new directory")
    names = {p.name for p in out.iterdir()}
    others = sorted(names - EXPORT_FILES)
    if others or (names and MODEL_CARD not in names):
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        what = f"it holds {shown}" if others else f"it has no {MODEL_CARD}"
        raise StorageError(f"{refuse}: {what}, so it is not an earlier export; give a new directory")


def _card_at(source: str | Path) -> ModelCard | None:
    """The model card of what `source` names (a packaged model, run, checkpoint or weights file), or
    None where there is none to read (a reference checkpoint, a missing path: `load_model` says why)."""
    p = named_path(source)
    if not p.exists():
        return None
    p = resolve_checkpoint(p)
    card_file = p.parent / MODEL_CARD if p.is_file() else p / MODEL_CARD
    return ModelCard.read(card_file) if card_file.is_file() else None


def load_exportable(source: str | Path, use_ema: bool = True) -> tuple[ModelCard, torch.nn.Module, Path]:
    """The card, the loaded model and the weights file it came from, for a puzzle model or an agent
    policy (whose card names the agent's model)."""
    from hrm.agent.policy import MODEL_NAME as AGENT_MODEL
    from hrm.agent.policy import card_for, load_policy

    card = _card_at(source)
    if card is not None and card.model == AGENT_MODEL:
        agent = load_policy(source, use_ema=use_ema)
        return card_for(agent.policy, agent.extra), agent.policy, agent.source
    loaded = load_model(source, use_ema=use_ema)
    return loaded.card, loaded.model, loaded.source


def export_model(
    source: str | Path,
    out_dir: str | Path,
    use_ema: bool = True,
    overwrite: bool = False,
    card_file: str | Path | None = None,
    halt_margin: float | None = None,
    forward_dtype: str | None = None,
    segments: int | None = None,
    h_cycles: int | None = None,
) -> Path:
    """Write a model as a self-contained directory (``model.safetensors`` + ``model.json``), the form of
    the packaged models: from a run (its latest checkpoint), a checkpoint dir or anything `load_model`
    reads. EMA weights are taken when present unless ``use_ema`` is false. Written to a temporary
    directory (files and directories fsynced) and renamed, so a failed export leaves nothing
    half-written. With ``overwrite`` an existing `out_dir` is replaced only when it is an earlier
    export (see `check_export_target`). ``card_file``: a YAML model card (`CardFields`) to include;
    ``halt_margin``: the default margin of adaptive halting when solving with it (`hrm.solve`);
    ``forward_dtype``: the dtype the exported model computes in (a run trained in bfloat16 on a GPU
    exported as float32 for CPUs), checked as the model's config checks it; ``segments``: the most
    segments solving runs with it (its ``halt_max_steps``; the weights do not depend on it)."""
    out = Path(out_dir)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise StorageError(f"{out} already exists (pass --overwrite to replace an earlier export)")
    check_export_target(out, source)
    fields = read_card_fields(card_file) if card_file is not None else None
    if halt_margin is not None:
        from hrm.inference.runner import check_halt_margin

        check_halt_margin(halt_margin)
    if segments is not None:
        from hrm.inference.runner import check_run_options

        check_run_options("max", segments)
    if h_cycles is not None and (
        not isinstance(h_cycles, int) or isinstance(h_cycles, bool) or not 1 <= h_cycles <= MAX_CYCLES
    ):
        raise ConfigError(f"H cycles must be a whole number in 1..{MAX_CYCLES}, got {h_cycles!r}")
    if forward_dtype is not None and forward_dtype not in FORWARD_DTYPES:
        raise ConfigError(f"forward_dtype must be one of {', '.join(FORWARD_DTYPES)}, got {forward_dtype!r}")
    loaded_card, module, source_file = load_exportable(source, use_ema)
    if fields is not None and "difficulty" in fields:
        check_card_difficulty(loaded_card.config, fields["difficulty"], card_file)
    extra = dict(loaded_card.extra or {})
    # An export of an export keeps where the weights first came from.
    extra.setdefault("exported_from", f"{source_file.parent.name}/{source_file.name}")
    if fields is not None:
        extra["card"] = {**fields, "parameters": sum(p.numel() for p in module.parameters())}
    if halt_margin is not None:
        extra["halt_margin"] = float(halt_margin)
    config = dict(loaded_card.config)
    if forward_dtype is not None:
        if "forward_dtype" not in config:
            raise ConfigError(f"{source}: a {loaded_card.model} model has no forward_dtype to set")
        config["forward_dtype"] = forward_dtype
    if segments is not None:
        if "halt_max_steps" not in config:
            raise ConfigError(f"{source}: a {loaded_card.model} model has no halt_max_steps to set")
        config["halt_max_steps"] = segments
    if h_cycles is not None:
        arch = module.inner.config if isinstance(module, ACTModel) else None
        if not isinstance(arch, RecursiveConfig) or not arch.cycles_used or "H_cycles" not in config:
            raise ConfigError(
                f"{source}: H cycles can be set for an HRM or TRM puzzle model, "
                f"not a {loaded_card.model} model"
            )
        config["H_cycles"] = h_cycles
    card = ModelCard(loaded_card.model, config, loaded_card.loss_type, extra)
    tmp = out.with_name(f"{TEMP_PREFIX}.{out.name}.export")
    created: list[Path] = [d for d in (out.parent, *out.parent.parents) if not d.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_quietly(tmp)
        tmp.mkdir()
        _save_tensors(_contiguous_state(module), tmp / WEIGHTS)
        write_file(tmp / MODEL_CARD, card.to_json())
        for f in tmp.iterdir():
            f.chmod(0o644)  # readable by everyone, as files meant to be shared or packaged
        fsync_dir(tmp)
        _move_into_place(tmp, out)
        fsync_dir(out.parent)
    except (OSError, MemoryError) as exc:
        remove_quietly(tmp)
        for d in created:  # directories made for the export, innermost first
            try:
                d.rmdir()
            except OSError:
                break
        raise StorageError(describe_os_error(exc, f"export to {out}")) from None
    return out


def run_data_path(model_path: str) -> str | None:
    """The data_path of the run a checkpoint belongs to, if it has one."""
    p = Path(model_path)
    for candidate in (p, *list(p.parents)[:4]):
        cfg = candidate / "config.yaml"
        if cfg.is_file():
            try:
                data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                return None
            if not isinstance(data, dict):
                return None
            found = data.get("eval_data_path") or data.get("data_path")
            return found if isinstance(found, str) else None
    return None
