"""The network's tensor operations, channels-last ([..., C]): layer norm and adaLN, GEMM-shaped
linear layers, the SwiGLU gate, rotary embeddings and attention (shapes in each docstring)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-6


@functools.lru_cache(maxsize=64)
def unit_affine(dim: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Ones and zeros [dim] (built outside inference mode, usable in training alike)."""
    with torch.inference_mode(False):
        ones = torch.ones(dim, device=device, dtype=dtype)
        return ones, torch.zeros_like(ones)


def layer_norm(x: Tensor) -> Tensor:
    """Layer norm over the last (channel) axis, no affine (run with a unit affine: the CPU
    kernel's affine path is ~2x faster than its plain one)."""
    return F.layer_norm(x, x.shape[-1:], *unit_affine(x.shape[-1], x.device, x.dtype), _EPS)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: LN(x) * (1 + scale) + shift. x: [B, ..., C]; shift, scale broadcast to x with a
    batch of B or 1. One fused layer norm when the conditioning is shared by the batch (batch 1:
    every segment of a separation step has the same t and class)."""
    if shift.shape[0] == 1:
        dim = x.shape[-1]
        return F.layer_norm(x, (dim,), (1 + scale).reshape(dim), shift.reshape(dim), _EPS)
    return layer_norm(x) * (1 + scale) + shift


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """F.linear over the last axis of [..., C_in] as one 2-D GEMM (torch's N-D linear is slower
    on CPU: it adds the bias in a second pass)."""
    out = F.linear(x.reshape(-1, x.shape[-1]), weight, bias)
    return out.view(*x.shape[:-1], weight.shape[0])


def glu_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """GLU of a linear layer: (x W1 + b1) * SiLU(x W2 + b2), W1 and W2 the halves of ``weight``
    [2 C_out, C_in], computed as two GEMMs so both halves are contiguous."""
    half = weight.shape[0] // 2
    b1, b2 = (None, None) if bias is None else (bias[:half], bias[half:])
    a, b = linear(x, weight[:half], b1), linear(x, weight[half:], b2)
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return SwiGLU.apply(a, b)
    return a * F.silu(b)


class SwiGLU(torch.autograd.Function):
    """a * SiLU(b), a and b [..., C] -> [..., C], keeping only a and b for the backward
    (autograd's own keeps SiLU(b) too: a third tensor per gate; issue 17)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return a * F.silu(b)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor]:
        a, b = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * F.silu(b), torch.ops.aten.silu_backward(grad * a, b)


@functools.lru_cache(maxsize=64)
def rotations(length: int, dim: int, device: torch.device) -> Tensor:
    """e^(i pos freq) for RoPE: [L, D/2] complex64 (kept out of inference mode, so one table
    serves inference and training alike)."""
    with torch.inference_mode(False):
        freqs = 1.0 / 1e4 ** (torch.arange(0, dim, 2, device=device).float() / dim)
        angles = torch.outer(torch.arange(length, device=device).float(), freqs)
        return torch.polar(torch.ones_like(angles), angles)


def rope(x: Tensor) -> Tensor:
    """Rotary embedding on adjacent pairs of the last axis, positions along the one before.
    x: [..., L, D] (D even) -> same shape; one complex multiply (half precisions in fp32)."""
    length, dim = x.shape[-2], x.shape[-1]
    rot = rotations(length, dim, x.device)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    pairs = torch.view_as_complex(work.unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rot).flatten(-2).to(x.dtype)


def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``scaled_dot_product_attention`` of [N, H, L, D]. Under CPU bf16 autocast, when a
    backward will follow, it runs in fp32: the CPU's bf16 attention backward is ~4x slower
    than fp32's (measured at paper size), while its bf16 forward is faster."""
    backward = q.requires_grad or k.requires_grad or v.requires_grad
    if q.device.type != "cpu" or not torch.is_autocast_enabled("cpu") or not backward:
        return F.scaled_dot_product_attention(q, k, v)
    with torch.autocast("cpu", enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float())
