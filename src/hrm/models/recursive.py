"""What HRM, TRM and the transformer baseline share: the configuration, the input embedding, the
output and Q heads, the recurrent state (carry), and the ACT wrapper that runs deep supervision.

A model here is `ACTModel(inner)`: `inner` computes one *segment* (subclasses define the reasoning
inside it); `ACTModel` decides which rows restart, counts segments and decides halting.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from hrm.limits import MAX_COUNT, MAX_CYCLES, MAX_LAYERS, MAX_MODEL_BYTES, MAX_SEGMENTS, MAX_SEQ_LEN, gib
from hrm.models.layers import (
    Block,
    CastedEmbedding,
    CastedLinear,
    ReasoningModule,
    RotaryEmbedding,
    SparsePuzzleEmbedding,
    swiglu_width,
    trunc_normal_,
)

Batch = dict[str, torch.Tensor]

# A trace hook sees every inner update: hook(kind, index, z_H, z_L) with kind "L" or "H".
StepHook = Callable[[str, int, torch.Tensor, torch.Tensor], None]
# The exploration draws of one training call, fn(rows) -> (uniform [rows], min_steps [rows]).
ExplorationDraw = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
# How an evaluation-mode call decides halting: "max" runs every segment (the reference), "adaptive"
# lets the Q head stop a row early. Training always uses the training rule (Q head + exploration).
HaltMode = Literal["adaptive", "max"]
HALT_MODES: tuple[HaltMode, ...] = ("adaptive", "max")

# The dtypes a model computes in (`forward_dtype`; the weights stay float32).
ForwardDtype = Literal["float32", "bfloat16", "float16"]
FORWARD_DTYPES: tuple[str, ...] = get_args(ForwardDtype)


class RecursiveConfig(BaseModel):
    """Architecture fields, named as the reference names them so its configs load unchanged."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    # Whether H_cycles and L_cycles shape the computation (not for the transformer baseline).
    cycles_used: ClassVar[bool] = True

    batch_size: int = 768
    seq_len: int
    vocab_size: int
    puzzle_emb_ndim: int = 0
    num_puzzle_identifiers: int = 1

    H_cycles: int = 2
    L_cycles: int = 2
    H_layers: int = 4
    L_layers: int = 4

    hidden_size: int = 512
    expansion: float = 4.0
    num_heads: int = 8
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    forward_dtype: ForwardDtype = "bfloat16"

    # Ours, not the reference's: back-propagate through every cycle instead of the one-step gradient.
    # Only for measuring what the one-step gradient saves; the published recipes never set it.
    full_backprop: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_bools(cls, data: Any) -> Any:
        """`true` is not a count: refuse booleans where a number is meant."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and field is not None and field.annotation in (int, float):
                    raise ValueError(f"{name} must be a number, got {value}")
        return data

    @model_validator(mode="after")
    def _check(self) -> RecursiveConfig:
        """Every field in its range and the model within `hrm.limits`, before anything is built."""
        ranges: dict[str, tuple[int, int]] = {
            "batch_size": (1, MAX_COUNT),
            "seq_len": (1, MAX_SEQ_LEN),
            "vocab_size": (1, MAX_COUNT),
            "puzzle_emb_ndim": (0, MAX_COUNT),
            "num_puzzle_identifiers": (1, MAX_COUNT),
            "H_cycles": (1, MAX_CYCLES),
            "L_cycles": (1, MAX_CYCLES),
            "H_layers": (1, MAX_LAYERS),
            "L_layers": (1, MAX_LAYERS),
            "hidden_size": (1, MAX_COUNT),
            "num_heads": (1, MAX_COUNT),
            "halt_max_steps": (1, MAX_SEGMENTS),
            **self._extra_ranges(),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high}, got {value}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.pos_encodings == "rope" and (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"rope needs an even head size, but hidden_size {self.hidden_size} / num_heads "
                f"{self.num_heads} is {self.hidden_size // self.num_heads}"
            )
        if not 0.0 <= self.halt_exploration_prob <= 1.0:
            raise ValueError(f"halt_exploration_prob must be in [0, 1], got {self.halt_exploration_prob}")
        for name in ("expansion", "rms_norm_eps", "rope_theta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.expansion * self.hidden_size > MAX_COUNT:
            raise ValueError(f"expansion {self.expansion} is too large for hidden_size {self.hidden_size}")
        if swiglu_width(self.hidden_size, self.expansion) < 1:
            raise ValueError(
                f"expansion {self.expansion} leaves no MLP units for hidden_size {self.hidden_size}"
            )
        if self.total_len > MAX_SEQ_LEN:
            raise ValueError(
                f"seq_len {self.seq_len} plus {self.puzzle_positions} puzzle-embedding positions is more "
                f"than {MAX_SEQ_LEN}"
            )
        size = self.weight_bytes()
        if size > MAX_MODEL_BYTES:
            raise ValueError(
                f"the model would need {gib(size)} for its weights, more than the "
                f"{gib(MAX_MODEL_BYTES)} allowed (hidden_size {self.hidden_size}, "
                f"vocab_size {self.vocab_size}, {self.block_count()} blocks)"
            )
        return self

    def _extra_ranges(self) -> dict[str, tuple[int, int]]:
        """Ranges of a subclass's own integer fields."""
        return {}

    def block_count(self) -> int:
        """Transformer blocks the model holds (HRM: the H and the L module's)."""
        return self.H_layers + self.L_layers

    def seq_mlp(self) -> bool:
        """Whether the blocks mix positions with an MLP instead of attention (TRM's mlp_t)."""
        return False

    def weight_bytes(self) -> int:
        """Bytes of the model's weights and buffers (all float32), computed from the config alone."""
        d = self.hidden_size
        width = swiglu_width(d, self.expansion)
        total = self.total_len
        count = 2 * self.vocab_size * d + 2 * d + 2 + 2 * d  # embeddings, lm_head, q_head, H/L init
        if self.pos_encodings == "rope":
            count += 2 * total * (d // self.num_heads)
        elif self.pos_encodings == "learned":
            count += total * d
        count += self.num_puzzle_identifiers * self.puzzle_emb_ndim
        mixer = 3 * total * swiglu_width(total, self.expansion) if self.seq_mlp() else 4 * d * d
        count += self.block_count() * (mixer + 3 * d * width)
        return 4 * count

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.forward_dtype)

    @property
    def puzzle_positions(self) -> int:
        """P: the number of positions the puzzle embedding occupies in front of the sequence."""
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def total_len(self) -> int:
        return self.seq_len + self.puzzle_positions


@dataclass
class Carry:
    """The state carried between ACT calls: the reasoning state and which puzzle each row works on."""

    z_H: torch.Tensor
    z_L: torch.Tensor
    steps: torch.Tensor  # [B] int32, segments run on the current puzzle
    halted: torch.Tensor  # [B] bool; a halted row takes a new puzzle on the next call
    current_data: Batch = field(default_factory=dict)


def cpu_rows_per_slice(
    config: RecursiveConfig, rows: int, device: torch.device, budget_bytes: int | None = None
) -> int | None:
    """Rows per slice of a batch of `rows` for `RecursiveInner.forward` on a CPU (None elsewhere, or
    when one slice would hold the whole batch). Rows never interact inside a segment, so reasoning over
    slices gives the same numbers while each slice's activations stay in the CPU's cache.

    By default a slice's widest activation (the SwiGLU gate/up output) is 4 MB, or four times the
    largest weight matrix when that is bigger, so that each weight read is shared by enough rows;
    `budget_bytes` sets it (0: no slicing). Measured with benchmarks/batch_slices.py on a 2-core VM with
    32 MB of L3 (docs/BENCHMARKS.md): the small config's training step is about 7-10% faster, the 27M
    config's unchanged."""
    if device.type != "cpu" or budget_bytes == 0:
        return None
    width = swiglu_width(config.hidden_size, config.expansion)
    element = torch.empty((), dtype=config.dtype).element_size()
    if budget_bytes is None:
        budget_bytes = max(4 << 20, 4 * config.hidden_size * 2 * width * element)
    per_row = config.total_len * max(config.hidden_size, 2 * width) * element
    per_slice = max(1, budget_bytes // per_row)
    return None if per_slice >= rows else per_slice


class RecursiveInner(nn.Module, abc.ABC):
    """Embeddings, heads and initial states; subclasses define `_build` and `reason`. A model without
    an L state (`has_L_state` false: the transformer baseline) has no L_init, and its carried z_L is
    z_H itself."""

    H_init: torch.Tensor
    L_init: torch.Tensor
    has_L_state: ClassVar[bool] = True

    def __init__(self, config: RecursiveConfig):
        super().__init__()
        self.config = config
        dtype = config.dtype
        d = config.hidden_size
        self.embed_scale = math.sqrt(d)
        self.puzzle_emb_len = config.puzzle_positions

        self.embed_tokens = CastedEmbedding(
            config.vocab_size, d, init_std=1.0 / self.embed_scale, cast_to=dtype
        )
        self.lm_head = CastedLinear(d, config.vocab_size)
        self.q_head = CastedLinear(d, 2, bias=True)
        if config.puzzle_emb_ndim > 0:
            self.puzzle_emb = SparsePuzzleEmbedding(
                config.num_puzzle_identifiers, config.puzzle_emb_ndim, dtype
            )
        if config.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(d // config.num_heads, config.total_len, config.rope_theta)
        elif config.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(
                config.total_len, d, init_std=1.0 / self.embed_scale, cast_to=dtype
            )
        self._build()
        self.register_buffer("H_init", trunc_normal_(torch.empty(d), std=1.0))
        if self.has_L_state:
            self.register_buffer("L_init", trunc_normal_(torch.empty(d), std=1.0))
        with torch.no_grad():
            # Q head starts by saying "continue" firmly: both logits -5.
            self.q_head.weight.zero_()
            assert self.q_head.bias is not None
            self.q_head.bias.fill_(-5.0)

    # -- to be defined by each model -------------------------------------------------------------
    @abc.abstractmethod
    def _build(self) -> None:
        """Create the model's reasoning modules (called by ``__init__`` before the shared parts)."""

    @abc.abstractmethod
    def reason(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, hook: StepHook | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One segment: the updates of z_H and z_L given the input embedding x."""

    # -- shared ----------------------------------------------------------------------------------
    def make_blocks(self, count: int, seq_mlp: bool = False) -> ReasoningModule:
        c = self.config
        width = c.total_len if seq_mlp else None
        return ReasoningModule(
            [Block(c.hidden_size, c.num_heads, c.expansion, c.rms_norm_eps, width) for _ in range(count)]
        )

    @property
    def cos_sin(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.rotary_emb() if hasattr(self, "rotary_emb") else None

    def embed(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        c = self.config
        e = self.embed_tokens(inputs)
        if c.puzzle_emb_ndim > 0:
            puzzle = self.puzzle_emb(puzzle_identifiers)
            pad = self.puzzle_emb_len * c.hidden_size - puzzle.shape[-1]
            if pad > 0:
                puzzle = torch.nn.functional.pad(puzzle, (0, pad))
            e = torch.cat((puzzle.view(-1, self.puzzle_emb_len, c.hidden_size), e), dim=-2)
        if c.pos_encodings == "learned":
            e = 0.707106781 * (e + self.embed_pos.embedding_weight.to(c.dtype))
        return self.embed_scale * e

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
        shape = (batch_size, self.config.total_len, self.config.hidden_size)
        device = device or self.H_init.device
        z_H = self.H_init.to(self.config.dtype).expand(shape).to(device).clone()
        if not self.has_L_state:
            return z_H, z_H
        return z_H, self.L_init.to(self.config.dtype).expand(shape).to(device).clone()

    def reset(self, reset: torch.Tensor, z_H: torch.Tensor, z_L: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flag = reset.view(-1, 1, 1)
        dtype = self.config.dtype
        z_H = torch.where(flag, self.H_init.to(dtype), z_H)
        if not self.has_L_state:
            return z_H, z_H
        return z_H, torch.where(flag, self.L_init.to(dtype), z_L)

    def heads(self, z_H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.lm_head(z_H)[:, self.puzzle_emb_len :]
        q = self.q_head(z_H[:, 0]).to(torch.float32)
        return logits, q[..., 0], q[..., 1]

    def forward(
        self,
        z_H: torch.Tensor,
        z_L: torch.Tensor,
        batch: Batch,
        hook: StepHook | None = None,
        rows_per_slice: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One segment. Returns the detached new state, logits [B, S, V], q_halt, q_continue.
        `rows_per_slice` reasons over slices of that many rows (see `cpu_rows_per_slice`)."""
        x = self.embed(batch["inputs"], batch["puzzle_identifiers"])
        rows = x.shape[0] if rows_per_slice is None else max(1, rows_per_slice)
        if hook is not None or rows >= x.shape[0]:
            z_H, z_L = self.reason(z_H, z_L, x, hook)
        else:
            # Rows never interact inside a segment, so reasoning over slices of the batch gives the
            # same numbers while each slice's activations stay in the CPU's cache across the cycles.
            parts = [self.reason(*s) for s in zip(z_H.split(rows), z_L.split(rows), x.split(rows))]
            z_H = torch.cat([h for h, _ in parts])
            z_L = torch.cat([low for _, low in parts])
        logits, q_halt, q_continue = self.heads(z_H)
        return z_H.detach(), z_L.detach(), logits, q_halt, q_continue


class ACTModel(nn.Module):
    """Adaptive computation time over segments (deep supervision), shared by every model.

    `q_target` says whether training computes the bootstrapped target for Q-continue (one extra
    no-gradient segment); `halt_on_q_halt_only` makes the halting rule `q_halt > 0` (TRM's
    no_ACT_continue) instead of `q_halt > q_continue`; `adaptive_training` false makes training run
    every row for all segments, without the Q head or exploration (the baseline's act_enabled=false).

    How a call runs is given by its arguments, never set on the model: `halt` (evaluation mode only),
    `max_segments` (None: the config's `halt_max_steps`), `exploration` (training mode: the draws of
    the exploration rule, so that any number of processes agree; None draws locally),
    `rows_per_slice` (see `cpu_rows_per_slice`) and `halt_margin` (evaluation mode only: adaptive
    halting needs `q_halt > margin`, or `q_halt > q_continue + margin`; 0 is the reference rule).
    """

    def __init__(
        self,
        inner: RecursiveInner,
        q_target: bool = True,
        halt_on_q_halt_only: bool = False,
        adaptive_training: bool = True,
    ):
        super().__init__()
        self.inner = inner
        self.q_target = q_target
        self.halt_on_q_halt_only = halt_on_q_halt_only
        self.adaptive_training = adaptive_training

    @property
    def config(self) -> RecursiveConfig:
        return self.inner.config

    def initial_carry(self, batch: Batch) -> Carry:
        size = batch["inputs"].shape[0]
        device = batch["inputs"].device
        z_H, z_L = self.inner.initial_state(size, device)
        return Carry(
            z_H=z_H,
            z_L=z_L,
            steps=torch.zeros(size, dtype=torch.int32, device=device),
            halted=torch.ones(size, dtype=torch.bool, device=device),
            current_data={k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def forward(
        self,
        carry: Carry,
        batch: Batch,
        hook: StepHook | None = None,
        *,
        halt: HaltMode = "max",
        max_segments: int | None = None,
        exploration: ExplorationDraw | None = None,
        rows_per_slice: int | None = None,
        halt_margin: float = 0.0,
    ) -> tuple[Carry, Batch]:
        c = self.config
        limit = c.halt_max_steps if max_segments is None else max_segments
        z_H, z_L = self.inner.reset(carry.halted, carry.z_H, carry.z_L)
        steps = torch.where(carry.halted, 0, carry.steps)
        data = {
            k: torch.where(carry.halted.view((-1,) + (1,) * (batch[k].ndim - 1)), batch[k], v)
            for k, v in carry.current_data.items()
        }
        z_H, z_L, logits, q_halt, q_continue = self.inner(z_H, z_L, data, hook, rows_per_slice)
        outputs: Batch = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}

        with torch.no_grad():
            steps = steps + 1
            last = steps >= limit
            halted = last
            adaptive = self.adaptive_training if self.training else halt == "adaptive"
            if adaptive and limit > 1:
                margin = 0.0 if self.training else halt_margin  # training halts as the reference does
                halted = halted | (
                    (q_halt > margin) if self.halt_on_q_halt_only else (q_halt > q_continue + margin)
                )
            if self.training and self.adaptive_training and limit > 1:
                if exploration is not None:
                    uniform, draw = exploration(steps.shape[0])
                    uniform, draw = uniform.to(q_halt.device), draw.to(steps.device, steps.dtype)
                else:
                    uniform = torch.rand_like(q_halt)
                    draw = torch.randint_like(steps, low=2, high=limit + 1)
                min_steps = (uniform < c.halt_exploration_prob) * draw
                halted = halted & (steps >= min_steps)
                if self.q_target:
                    _, _, _, next_halt, next_continue = self.inner(z_H, z_L, data, None, rows_per_slice)
                    outputs["target_q_continue"] = torch.sigmoid(
                        torch.where(last, next_halt, torch.maximum(next_halt, next_continue))
                    )
        return Carry(z_H=z_H, z_L=z_L, steps=steps, halted=halted, current_data=data), outputs
