"""Training recipes: typed configuration, YAML loading and dotted `key=value` overrides.

A recipe is a YAML file (see configs/). Overrides use the reference's dotted form:
`hrm train configs/sudoku_hrm.yaml arch.L_cycles=8 lr=3e-4 global_batch_size=64`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hrm.errors import ConfigError
from hrm.limits import MAX_COUNT, MAX_MINUTES, MAX_RECIPE_BYTES, MAX_SEED, MAX_THREADS

if TYPE_CHECKING:  # pragma: no cover
    from hrm.models.losses import LossType

# What training and evaluation score a row against: the dataset's label, or the right answer the model
# finds most likely (`Task.closest_answer_labels`, for puzzles with several right answers).
Targets = Literal["label", "closest_answer"]
TARGETS: tuple[str, ...] = get_args(Targets)

# Architecture fields that come from the dataset, not the recipe.
DATA_FIELDS = ("batch_size", "seq_len", "vocab_size", "num_puzzle_identifiers")
NUMBER_TYPES: tuple[Any, ...] = (int, float, int | None, float | None)


class TrainConfig(BaseModel):
    """Everything a training run needs. Names follow the reference's `cfg_pretrain.yaml`."""

    # Every number has a range (checked at load, before anything is created); floats must be finite.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # Model: `name` (hrm | trm | transformer), `loss_type`, and the model's architecture fields.
    arch: dict[str, Any] = Field(default_factory=lambda: {"name": "hrm"})

    data_path: str
    eval_data_path: str | None = None  # defaults to data_path (its test split)

    global_batch_size: int = Field(768, ge=1, le=MAX_COUNT)
    epochs: int = Field(20000, ge=1, le=MAX_COUNT)
    # epochs between evaluations; None = only at the end
    eval_interval: int | None = Field(2000, ge=1, le=MAX_COUNT)
    # stop after this many steps (the schedule still spans them)
    max_steps: int | None = Field(None, ge=1, le=MAX_COUNT)
    # stop after this many minutes of this process's training (checked at each log interval); the
    # step it stops at evaluates and checkpoints as a last step does. The schedule still spans the
    # run's steps, so pair it with lr_min_ratio: 1 (a constant rate after warm-up) or a max_steps
    # the time reaches.
    max_minutes: float | None = Field(None, gt=0, le=MAX_MINUTES)
    # cap evaluation batches (quick checks on large test sets)
    eval_max_batches: int | None = Field(None, ge=1, le=MAX_COUNT)
    # At each evaluation, the task's own dataset score too (ARC: voting, pass@k), where it has one.
    eval_dataset_score: bool = True

    lr: float = Field(1e-4, ge=0)
    lr_min_ratio: float = Field(1.0, ge=0, le=1)
    lr_warmup_steps: int = Field(2000, ge=0, le=MAX_COUNT)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    puzzle_emb_lr: float = Field(1e-2, ge=0)
    puzzle_emb_weight_decay: float = Field(0.1, ge=0)

    # What a row learns and is scored against (`Targets`): with closest_answer (puzzles with several
    # right answers, such as mazes with two shortest paths) each segment learns the right answer its
    # own prediction is closest to, so no right answer is taught as wrong; evaluations score the same.
    targets: Targets = "label"

    ema: bool = False
    ema_rate: float = Field(0.999, ge=0, le=1)
    # Start from these weights instead of a random init (a run dir, checkpoint, exported model or
    # packaged model name; EMA weights when present). Optimiser state and schedule start afresh.
    init_from: str | None = None

    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    compile: Literal["auto", "true", "false"] | bool = "auto"
    threads: int | None = Field(None, ge=1, le=MAX_THREADS)  # CPU threads (torch.set_num_threads)
    data_workers: int | None = None  # background batch assembly: 0 or 1; default 1 on CUDA, else 0

    run_dir: str | None = None  # default runs/<recipe>-<time>
    # steps between checkpoints; None = at every evaluation
    checkpoint_interval: int | None = Field(None, ge=1, le=MAX_COUNT)
    keep_checkpoints: int = Field(3, ge=1, le=MAX_COUNT)
    log_interval: int = Field(10, ge=1, le=MAX_COUNT)
    tensorboard: bool = True
    wandb: bool = False
    project_name: str | None = None
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_bools(cls, data: Any) -> Any:
        """`true` is not a count or a rate: refuse booleans where a number is meant."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and field is not None and field.annotation in NUMBER_TYPES:
                    raise ValueError(f"{name} must be a number, got {str(value).lower()}")
        return data

    @field_validator("data_workers")
    @classmethod
    def _workers(cls, v: int | None) -> int | None:
        if v is not None and v not in (0, 1):
            raise ValueError("must be 0 or 1 (the sampler runs in at most one worker)")
        return v

    @field_validator("arch")
    @classmethod
    def _arch_has_name(cls, v: dict[str, Any]) -> dict[str, Any]:
        v = dict(v)
        # The reference nests the loss: arch.loss.loss_type.
        loss = v.pop("loss", None)
        if isinstance(loss, dict) and "loss_type" in loss:
            v.setdefault("loss_type", loss["loss_type"])
        v.setdefault("name", "hrm")
        v.setdefault("loss_type", "stablemax_cross_entropy")
        return v

    @property
    def model_name(self) -> str:
        return str(self.arch["name"])

    @property
    def loss_type(self) -> LossType:
        return cast("LossType", self.arch["loss_type"])  # checked when the config was loaded

    def arch_fields(self) -> dict[str, Any]:
        """Architecture fields for the model config (without name and loss)."""
        return {k: v for k, v in self.arch.items() if k not in ("name", "loss_type")}


def _format_validation(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc, TrainConfig.model_fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"unknown key {loc!r}{hint}")
        elif err["type"] == "missing":
            parts.append(f"missing key {loc!r}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {message}" if loc else message)
    return f"{source}: {'; '.join(parts)}"


def parse_value(text: str) -> Any:
    """A command-line value as YAML would read it: 3e-4 -> float, true -> bool, [1,2] -> list."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "3e-4" as a string; users mean a number.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides to a nested dict (a copy)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = parse_value(raw)
    return out


def check_arch_keys(cfg: TrainConfig, source: str) -> None:
    """Reject unknown architecture keys early, with a suggestion, before any data is loaded."""
    from hrm.models import model_spec

    spec = model_spec(cfg.model_name)
    known = set(spec.config_cls.model_fields) | {"name", "loss_type"}
    for key in cfg.arch:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean 'arch.{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown key 'arch.{key}' for model {spec.name}{hint}")
    from hrm.models.losses import as_loss_type

    try:
        as_loss_type(cfg.arch["loss_type"])
    except ValueError as exc:
        raise ConfigError(f"{source}: arch.{exc}") from None
    # The ranges of the architecture, before any data is read; the fields the dataset gives get the
    # smallest values here (the model is checked again with the real ones when it is built).
    from hrm.models import make_config

    placeholders = {"batch_size": 1, "seq_len": 1, "vocab_size": 1, "num_puzzle_identifiers": 1}
    try:
        make_config(cfg.model_name, {**placeholders, **cfg.arch_fields()})
    except ConfigError as exc:
        raise ConfigError(f"{source}: arch: {exc}") from None


RECIPES_DIR = Path(__file__).resolve().parent / "configs"


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def resolve_recipe(path: str | Path) -> Path:
    """A recipe file, or the name of one shipped with the package (`sudoku4_cpu`)."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = RECIPES_DIR / (p.name if p.suffix == ".yaml" else f"{p.name}.yaml")
    if p.parent == Path(".") and shipped.is_file():
        return shipped
    raise ConfigError(f"recipe {p} does not exist (shipped recipes: {', '.join(list_recipes())})")


def read_yaml(p: Path) -> Any:
    """A recipe's YAML; ConfigError naming the file when it is too large, not text or not YAML."""
    try:
        if p.stat().st_size > MAX_RECIPE_BYTES:
            raise ConfigError(f"{p}: larger than {MAX_RECIPE_BYTES >> 10} KiB; not a recipe")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text (UTF-8) file; a recipe is YAML") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{p}: not valid YAML ({first})") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply to be a recipe") from None


def load_config(
    path: str | Path | None, overrides: list[str] | None = None, base: dict | None = None
) -> TrainConfig:
    """Load a recipe (YAML) and apply overrides. Errors name the file and the offending key."""
    data: dict[str, Any] = dict(base or {})
    source = "config"
    if path is not None:
        p = resolve_recipe(path)
        source = str(p)
        loaded = read_yaml(p)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a recipe must be a mapping of keys to values")
        data.update(loaded)
    data = apply_overrides(data, overrides or [])
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None
    check_arch_keys(cfg, source)
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
