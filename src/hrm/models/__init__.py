"""Models: HRM, TRM and the transformer baseline, each an `ACTModel` around its own inner segment.

    model = build_model("hrm", seq_len=81, vocab_size=11, puzzle_emb_ndim=512)
    head = ACTLossHead(model)                         # loss + metrics for training and evaluation

State-dict keys are the reference's (`inner.H_level.layers.0.self_attn.qkv_proj.weight`, ...), so the
published checkpoints load with `load_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import ValidationError

from hrm.errors import CheckpointError, ConfigError
from hrm.models.hrm import HRMConfig, HRMInner
from hrm.models.losses import IGNORE_LABEL_ID, ACTLossHead, ACTStep, act_metrics
from hrm.models.recursive import (
    FORWARD_DTYPES,
    HALT_MODES,
    ACTModel,
    Carry,
    ExplorationDraw,
    HaltMode,
    RecursiveConfig,
    RecursiveInner,
    StepHook,
    cpu_rows_per_slice,
)
from hrm.models.transformer import TransformerConfig, TransformerInner
from hrm.models.trm import TRMConfig, TRMInner


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_cls: type[RecursiveConfig]
    inner_cls: type[RecursiveInner]
    aliases: tuple[str, ...]


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "hrm",
            HRMConfig,
            HRMInner,
            (
                "HierarchicalReasoningModel_ACTV1",
                "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1",
                "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1",  # the TRM repository's copy
                "hrm_act_v1",
            ),
        ),
        ModelSpec(
            "trm",
            TRMConfig,
            TRMInner,
            (
                "TinyRecursiveReasoningModel_ACTV1",
                "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
                "trm_act_v1",
            ),
        ),
        ModelSpec(
            "transformer",
            TransformerConfig,
            TransformerInner,
            (
                "Model_ACTV2",
                "recursive_reasoning.transformers_baseline@Model_ACTV2",
                "transformers_baseline",
                "baseline",
                "direct",
            ),
        ),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The spec for a model name: ours (`hrm`, `trm`, `transformer`) or the reference's class name."""
    key = name.strip()
    for spec in MODELS.values():
        # A reference `module@Class` name must be one we know: the TRM repository's ablations reuse
        # the class name TinyRecursiveReasoningModel_ACTV1 in other modules (trm_singlez, trm_hier6).
        if key == spec.name or key in spec.aliases:
            return spec
    raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def make_config(
    name: str, config: Mapping[str, Any] | RecursiveConfig | None = None, **fields
) -> RecursiveConfig:
    """Validate architecture fields for model `name`; an unknown or ill-typed field is a ConfigError."""
    spec = model_spec(name)
    if isinstance(config, RecursiveConfig):
        values = config.model_dump()
    else:
        values = dict(config or {})
    values.update(fields)
    try:
        return spec.config_cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid {spec.name} config: {problems}") from None


def build_model(name: str, config: Mapping[str, Any] | RecursiveConfig | None = None, **fields) -> ACTModel:
    spec = model_spec(name)
    cfg = make_config(name, config, **fields)
    inner = spec.inner_cls(cfg)
    if isinstance(cfg, TRMConfig):
        return ACTModel(inner, q_target=not cfg.no_ACT_continue, halt_on_q_halt_only=cfg.no_ACT_continue)
    if isinstance(cfg, TransformerConfig):  # the reference trains no Q-continue target for it
        return ACTModel(inner, q_target=False, adaptive_training=cfg.act_enabled)
    return ACTModel(inner)


def model_name(model: ACTModel) -> str:
    for spec in MODELS.values():
        if isinstance(model.inner, spec.inner_cls):
            return spec.name
    raise TypeError(f"not a known model: {type(model.inner).__name__}")


WRAPPER_PREFIXES = ("_orig_mod.", "model.", "module.")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the prefixes that torch.compile (`_orig_mod.`), the loss head (`model.`) and DDP
    (`module.`) put in front of the model's own key names, in any nesting."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def weight_problems(model: ACTModel, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """How reference-named weights differ from `model`'s (missing, unexpected, wrongly shaped keys)."""
    state = strip_prefixes(state_dict)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(
            f"missing {len(missing)} key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    if unexpected:
        more = " ..." if len(unexpected) > 5 else ""
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:5])}{more}")
    if wrong_shape:
        more = " ..." if len(wrong_shape) > 3 else ""
        problems.append(f"shape mismatch (file vs model): {', '.join(wrong_shape[:3])}{more}")
    return problems


def check_weights(model: ACTModel, state_dict: Mapping[str, torch.Tensor], source: str = "weights") -> None:
    """CheckpointError when the weights do not fit `model` (nothing is loaded)."""
    problems = weight_problems(model, state_dict)
    if problems:
        raise CheckpointError(f"{source} do not fit the {model_name(model)} model: {'; '.join(problems)}")


def load_weights(model: ACTModel, state_dict: Mapping[str, torch.Tensor], source: str = "weights") -> None:
    """Load reference-named weights into `model`, with one clear message for any mismatch."""
    check_weights(model, state_dict, source)
    model.load_state_dict(strip_prefixes(state_dict), strict=True)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters (the sparse puzzle embedding is a buffer and not counted, as the reference)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "FORWARD_DTYPES",
    "HALT_MODES",
    "IGNORE_LABEL_ID",
    "MODELS",
    "ACTLossHead",
    "ACTModel",
    "ACTStep",
    "Carry",
    "ExplorationDraw",
    "HRMConfig",
    "HaltMode",
    "RecursiveConfig",
    "StepHook",
    "TRMConfig",
    "TransformerConfig",
    "act_metrics",
    "build_model",
    "check_weights",
    "count_parameters",
    "cpu_rows_per_slice",
    "load_weights",
    "make_config",
    "model_name",
    "model_spec",
    "strip_prefixes",
    "weight_problems",
]
