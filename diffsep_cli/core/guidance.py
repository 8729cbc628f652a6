"""Reconstruction guidance: a wrapper that turns a joint K-source denoiser into a guided one.

The official solver moves each source's ancestral proposal x' by a step -d_i against the
gradient of the mixture loss J with respect to x_t. Since x' = a_t x0_hat + b_t x_t + noise,
the same move is made by returning x0_hat - d_i / a_t from the denoiser, so any ancestral
sampler separates unchanged (k-diffusion's ``make_cond_model_fn`` pattern).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import GuidanceConfig
from .diffusion import Schedule
from .sampling import Denoise


def _spec_mag(x: Tensor, cfg: GuidanceConfig) -> Tensor:
    """|STFT| with a periodic Hann window, centred with reflect padding. x: [B, L]."""
    mode = "reflect" if x.shape[-1] > cfg.stft_fft // 2 else "constant"
    window = torch.hann_window(cfg.stft_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(
        x, cfg.stft_fft, cfg.stft_hop, window=window, pad_mode=mode, return_complex=True
    )
    return spec.abs()


def guidance_loss(x0_hat: Tensor, mix: Tensor, cfg: GuidanceConfig) -> Tensor:
    """Per-mixture loss J (norms not squared). x0_hat: [B, K, L], mix: [B, L] -> [B].

    J = ||r|| + w_seg * sum_k ||r_k|| + w_stft * || |S(sum x0_hat)| - |S(mix)| ||_F
    with r = mix - sum x0_hat and r_k its ``segments`` contiguous chunks (torch.chunk sizes).
    """
    est = x0_hat.sum(dim=1)
    r = mix - est
    length = r.shape[-1]
    size = math.ceil(length / cfg.segments)
    chunks = F.pad(r, (0, (-length) % size)).unflatten(-1, (-1, size))
    seg = torch.linalg.vector_norm(chunks, dim=-1).sum(dim=-1)
    mag = torch.linalg.vector_norm(_spec_mag(est, cfg) - _spec_mag(mix, cfg), dim=(-2, -1))
    return torch.linalg.vector_norm(r, dim=-1) + cfg.segment_weight * seg + cfg.stft_weight * mag


def smooth_max(a: Tensor, b: float, k: float) -> Tensor:
    """(1/k) log(e^{k a} + e^{k b}), computed stably."""
    return torch.logaddexp(k * a, torch.full_like(a, k * b)) / k


def step_radius(schedule: Schedule, length: int, cfg: GuidanceConfig) -> Tensor:
    """L2 radius of the normalised step per sampling step [S] (hybrid: sqrt(L) h_t)."""
    sigma = cfg.ratio * schedule.posterior_std
    if cfg.solver == "hybrid":
        return math.sqrt(length) * smooth_max(sigma, cfg.floor, cfg.sharpness)
    if cfg.solver == "dsg":
        return math.sqrt(length) * sigma
    raise ValueError(f"solver {cfg.solver!r} has no radius")


def guidance_step(grad: Tensor, i: int, schedule: Schedule, cfg: GuidanceConfig) -> Tensor:
    """Displacement d subtracted from x_{t-1}. grad: [B, K, L] -> [B, K, L]."""
    if cfg.solver == "dps":
        return cfg.dps_scale * grad
    radius = float(step_radius(schedule, grad.shape[-1], cfg)[i])
    norm = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
    return radius * grad / (norm + 1e-8)


def reconstruction_guidance(
    denoise: Denoise,
    mix: Tensor,
    schedule: Schedule,
    cfg: GuidanceConfig,
    coef_x0: Tensor | None = None,
) -> Denoise:
    """Wrap a joint denoiser [B, K, L] -> [B, K, L] with mixture-reconstruction guidance.

    The gradient of J is taken through the denoiser (DPS, Chung et al. 2023); the step rule
    is ``cfg.solver``: hybrid (normalised, radius following the posterior std with a smooth
    floor), dsg (normalised, no floor; Yang et al. 2024) or dps (fixed scale). ``coef_x0``
    is the sampler's weight of x0_hat per step (default: the ancestral step's, ``coef_x0``).
    """
    coef = schedule.coef_x0 if coef_x0 is None else coef_x0

    def guided(x: Tensor, i: int) -> Tensor:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0_hat = denoise(x_in, i)
            (grad,) = torch.autograd.grad(guidance_loss(x0_hat, mix, cfg).sum(), x_in)
        step = guidance_step(grad, i, schedule, cfg)
        return x0_hat.detach() - step / float(coef[i])

    return guided
