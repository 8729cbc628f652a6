"""Samplers as small pure functions of a denoiser ``denoise(x, i) -> x0_hat``.

``i`` indexes the (possibly respaced) :class:`~diffsep_cli.diffusion.Schedule`; randomness is
injected as ``randn_like`` so that per-item generators make batched runs equal unbatched ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .diffusion import Schedule, ddim_coefs

Denoise = Callable[[Tensor, int], Tensor]
RandnLike = Callable[[Tensor], Tensor]
Callback = Callable[[int, Tensor, Tensor], None]


def sample_ddpm(
    denoise: Denoise,
    x: Tensor,
    schedule: Schedule,
    *,
    randn_like: RandnLike = torch.randn_like,
    callback: Callback | None = None,
) -> Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, Alg. 2) with the posterior mean computed from
    x0_hat and the "fixed small" variance; no noise is added at the last step. x: [B, ...]."""
    for i in reversed(range(len(schedule))):
        x0_hat = denoise(x, i)
        a, b = float(schedule.coef_x0[i]), float(schedule.coef_xt[i])
        x_next = a * x0_hat + b * x
        if i > 0:
            x_next = x_next + float(schedule.posterior_std[i]) * randn_like(x)
        if callback is not None:
            callback(i, x_next, x0_hat)
        x = x_next
    return x


def sample_ddim(
    denoise: Denoise,
    x: Tensor,
    schedule: Schedule,
    *,
    eta: float = 1.0,
    randn_like: RandnLike = torch.randn_like,
    callback: Callback | None = None,
) -> Tensor:
    """DDIM sampling (Song et al. 2021, eq. 12) from x0_hat: eta = 1 is ancestral DDPM (same
    step as :func:`sample_ddpm`), eta = 0 the probability-flow ODE, between them less churn.
    x: [B, ...]."""
    c_x0, c_xt, std = ddim_coefs(schedule, eta)
    for i in reversed(range(len(schedule))):
        x0_hat = denoise(x, i)
        x_next = float(c_x0[i]) * x0_hat + float(c_xt[i]) * x
        if i > 0 and eta > 0:
            x_next = x_next + float(std[i]) * randn_like(x)
        if callback is not None:
            callback(i, x_next, x0_hat)
        x = x_next
    return x


def zero_sum(randn_like: RandnLike) -> RandnLike:
    """Noise [B, K, ...] projected onto sum_k = 0 and rescaled to unit variance per source, so
    that a state whose sources sum to the (scaled) mixture keeps doing so (K = 1: zeros)."""

    def draw(x: Tensor) -> Tensor:
        k = x.shape[1]
        z = randn_like(x)
        return (z - z.mean(dim=1, keepdim=True)) * (k / (k - 1)) ** 0.5 if k > 1 else 0 * z

    return draw


def stacked_randn_like(generators: Sequence[torch.Generator]) -> RandnLike:
    """``randn_like`` drawing item b of the batch from ``generators[b]`` (EDM's
    StackedRandomGenerator), so a sample does not depend on what else is in the batch."""

    def randn_like(x: Tensor) -> Tensor:
        if len(generators) != x.shape[0]:
            raise ValueError(f"{len(generators)} generators for a batch of {x.shape[0]}")
        draws = [
            torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device)
            for g in generators
        ]
        return torch.stack(draws).to(x.device)

    return randn_like
