"""The building blocks HRM, TRM and the transformer baseline share.

Weights are stored in float32 and cast to the activation dtype at use, as the reference does, so a
bfloat16 forward keeps float32 master weights for the optimiser.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def trunc_normal_(
    tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0
) -> torch.Tensor:
    """Truncated normal whose *actual* standard deviation is `std` (the JAX/Flax definition).

    torch.nn.init.trunc_normal_ truncates a normal of std `std`, which leaves a smaller std; here the
    underlying normal is widened so that after truncation at +-2 sigma the std is what was asked.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        sqrt2 = math.sqrt(2.0)
        cdf_lo, cdf_hi = math.erf(lower / sqrt2), math.erf(upper / sqrt2)
        mass = (cdf_hi - cdf_lo) / 2
        norm = (2 * math.pi) ** -0.5
        pdf_lo, pdf_hi = norm * math.exp(-0.5 * lower**2), norm * math.exp(-0.5 * upper**2)
        variance = 1 - (upper * pdf_hi - lower * pdf_lo) / mass - ((pdf_lo - pdf_hi) / mass) ** 2
        corrected = std / math.sqrt(variance)
        tensor.uniform_(cdf_lo, cdf_hi).erfinv_().mul_(sqrt2 * corrected)
        return tensor.clamp_(lower * corrected, upper * corrected)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMS normalisation without a learned scale, computed in float32."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


class CastedLinear(nn.Module):
    """Linear layer with float32 weights cast to the input's dtype; LeCun truncated-normal init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(
            trunc_normal_(torch.empty(out_features, in_features), std=in_features**-0.5)
        )
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    """Embedding table in float32, returned in `cast_to`. Key name `embedding_weight` as the reference."""

    def __init__(self, num_embeddings: int, dim: int, init_std: float, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num_embeddings, dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids.to(torch.int32), self.embedding_weight.to(self.cast_to))


class SparsePuzzleEmbedding(nn.Module):
    """Per-puzzle embedding table trained by sign-SGD on the rows a batch touched.

    The table `weights` is a buffer (not a parameter: a dense optimiser would touch every row). In
    training, the looked-up rows are copied into a fresh leaf tensor `local_weights` that collects the
    gradient, and `local_ids` remembers which rows they were; `hrm.optim.SparseEmbeddingSignSGD`
    applies the update. Lookups with gradients disabled (the Q-target pass, evaluation) leave both alone.
    """

    weights: torch.Tensor

    def __init__(self, num_embeddings: int, dim: int, cast_to: torch.dtype, init_std: float = 0.0):
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", trunc_normal_(torch.empty(num_embeddings, dim), std=init_std))
        self.local_weights: torch.Tensor | None = None
        self.local_ids: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(torch.long)
        rows = self.weights[ids]
        if self.training and torch.is_grad_enabled():
            self.local_weights = rows.detach().requires_grad_(True)
            self.local_ids = ids.detach()
            rows = self.local_weights
        return rows.to(self.cast_to)


class RotaryEmbedding(nn.Module):
    """RoPE tables for positions 0..max_positions-1 ("rotate half" convention)."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_positions: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos, self.sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x` of layout [B, S, H, d] by the tables `cos`, `sin` of shape [S, d] (float32)."""
    dtype = x.dtype
    x = x.to(cos.dtype)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    return (x * cos + _rotate_half(x) * sin).to(dtype)


CosSin = tuple[torch.Tensor, torch.Tensor] | None


class Attention(nn.Module):
    """Non-causal multi-head attention through scaled_dot_product_attention (flash kernels on GPU)."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = CastedLinear(hidden_size, 3 * num_heads * self.head_dim)
        self.o_proj = CastedLinear(num_heads * self.head_dim, hidden_size)

    def project(self, x: torch.Tensor, cos_sin: CosSin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (rotated), keys (rotated) and values of `x`, each [B, S, heads, head_dim]."""
        batch, seq, _ = x.shape
        q, k, v = self.qkv_proj(x).view(batch, seq, 3, self.num_heads, self.head_dim).unbind(2)
        if cos_sin is not None:
            cos, sin = cos_sin
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def forward(self, x: torch.Tensor, cos_sin: CosSin) -> torch.Tensor:
        batch, seq, _ = x.shape
        q, k, v = self.project(x, cos_sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, -1))


def swiglu_width(hidden_size: int, expansion: float) -> int:
    """round(expansion * hidden * 2/3), rounded up to a multiple of 256, as the reference."""
    width = round(expansion * hidden_size * 2 / 3)
    return -(width // -256) * 256


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, expansion: float):
        super().__init__()
        width = swiglu_width(hidden_size, expansion)
        self.gate_up_proj = CastedLinear(hidden_size, 2 * width)
        self.down_proj = CastedLinear(width, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    """Post-norm transformer block. With `seq_mlp_width`, TRM's `mlp_t`: an MLP across positions
    replaces attention."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        expansion: float,
        eps: float,
        seq_mlp_width: int | None = None,
    ):
        super().__init__()
        self.eps = eps
        if seq_mlp_width is None:
            self.self_attn = Attention(hidden_size, num_heads)
        else:
            self.mlp_t = SwiGLU(seq_mlp_width, expansion)
        self.mlp = SwiGLU(hidden_size, expansion)

    def forward(self, h: torch.Tensor, cos_sin: CosSin) -> torch.Tensor:
        if hasattr(self, "mlp_t"):
            t = h.transpose(1, 2)
            h = rms_norm(t + self.mlp_t(t), self.eps).transpose(1, 2)
        else:
            h = rms_norm(h + self.self_attn(h, cos_sin), self.eps)
        return rms_norm(h + self.mlp(h), self.eps)


class ReasoningModule(nn.Module):
    """A stack of blocks that takes the state plus an injected signal: blocks(h + injection)."""

    def __init__(self, blocks: list[Block]):
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, h: torch.Tensor, injection: torch.Tensor, cos_sin: CosSin) -> torch.Tensor:
        h = h + injection
        for layer in self.layers:
            h = layer(h, cos_sin)
        return h
