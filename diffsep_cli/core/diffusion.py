"""DDPM schedules and respacing (tensors only).

A :class:`Schedule` holds, for each sampling step i (ascending), the original DDPM index
``timesteps[i]`` and every constant the ancestral step needs, recomputed for the chosen subset
of steps as in Nichol & Dhariwal (2021): beta_i = 1 - abar_i / abar_{i-1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import SPACINGS, DiffusionConfig, check_choice


@dataclass(frozen=True)
class Schedule:
    """Per-step constants, all float64 tensors of shape [S] except ``timesteps`` (long)."""

    timesteps: Tensor  # original step index t of sampling step i
    alphas_cumprod: Tensor  # abar_t
    alphas_cumprod_prev: Tensor  # abar of the previous sampling step (1 before the first)
    betas: Tensor  # 1 - abar_t / abar_prev
    posterior_std: Tensor  # sqrt(beta_t (1 - abar_prev) / (1 - abar_t)) ("fixed small")
    coef_x0: Tensor  # a_t: weight of x0_hat in the posterior mean
    coef_xt: Tensor  # b_t: weight of x_t in the posterior mean

    def __len__(self) -> int:
        return int(self.timesteps.numel())


def _from_alphas_cumprod(timesteps: Tensor, abar: Tensor) -> Schedule:
    prev = torch.cat([abar.new_ones(1), abar[:-1]])
    betas = 1 - abar / prev
    return Schedule(
        timesteps=timesteps,
        alphas_cumprod=abar,
        alphas_cumprod_prev=prev,
        betas=betas,
        posterior_std=(betas * (1 - prev) / (1 - abar)).sqrt(),
        coef_x0=betas * prev.sqrt() / (1 - abar),
        coef_xt=(1 - prev) * (1 - betas).sqrt() / (1 - abar),
    )


def ddpm_schedule(cfg: DiffusionConfig) -> Schedule:
    """The full schedule: linear betas from ``beta_start`` to ``beta_end`` over ``steps``."""
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.steps, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, dim=0)
    return _from_alphas_cumprod(torch.arange(cfg.steps), abar)


def respace(schedule: Schedule, steps: int, spacing: str = "linear") -> Schedule:
    """Keep ``steps`` of a full schedule's steps (always the last; the first too), spaced
    evenly in the step index t (``linear``: DDIM's and the paper's) or in the log-SNR
    lambda = log(alpha / sigma) (``snr``: denser at low noise, where the estimate changes
    fastest; the grid of DPM-Solver, Lu et al. 2022). Distinct steps are kept at any count."""
    total = len(schedule)
    if not 1 <= steps <= total:
        raise ValueError(f"steps must be in [1, {total}], got {steps}")
    check_choice("spacing", spacing, SPACINGS)
    if steps == total:
        return schedule
    if steps == 1:  # straight from the last to x0
        keep = torch.tensor([total - 1])
    elif spacing == "linear":
        keep = torch.linspace(0, total - 1, steps, dtype=torch.float64).round().long().unique()
    else:
        abar = schedule.alphas_cumprod
        lam = 0.5 * torch.log(abar / (1 - abar))  # falling with t
        grid = torch.linspace(float(lam[0]), float(lam[-1]), steps, dtype=torch.float64)
        nearest = (lam[None, :] - grid[:, None]).abs().argmin(dim=1).tolist()
        for j in range(1, steps):  # distinct and ascending, with room for the rest
            nearest[j] = min(max(nearest[j], nearest[j - 1] + 1), total - steps + j)
        keep = torch.tensor(nearest)
    return _from_alphas_cumprod(schedule.timesteps[keep], schedule.alphas_cumprod[keep])


def ddim_coefs(schedule: Schedule, eta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-step (c_x0, c_xt, std) of the DDIM update x' = c_x0 x0_hat + c_xt x_t + std z (Song
    et al. 2021, eq. 12, written in x0_hat): eta = 1 is the ancestral DDPM step (c = the
    posterior mean's coef_x0 / coef_xt, std = posterior_std), eta = 0 the deterministic ODE
    step (Euler in sigma = sqrt((1 - abar) / abar)). Each [S], float64."""
    abar, prev = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    std = eta * ((1 - prev) / (1 - abar) * (1 - abar / prev)).clamp_min(0).sqrt()
    c_xt = (1 - prev - std.square()).clamp_min(0).sqrt() / (1 - abar).sqrt()
    return prev.sqrt() - c_xt * abar.sqrt(), c_xt, std


def network_timestep(cfg: DiffusionConfig, t: Tensor) -> Tensor:
    """Original DDPM index t -> the network's timestep floor(t * scale / steps) (5t for T=200)."""
    return (t.double() * (cfg.timestep_scale / cfg.steps)).floor()


def q_sample(x0: Tensor, abar: Tensor | float, noise: Tensor) -> Tensor:
    """Diffuse x0 to noise level abar: sqrt(abar) x0 + sqrt(1 - abar) noise."""
    abar_t = torch.as_tensor(abar, dtype=x0.dtype, device=x0.device)
    return abar_t.sqrt() * x0 + (1 - abar_t).sqrt() * noise


def min_snr_weights(abar: Tensor, gamma: float) -> Tensor:
    """Per-timestep weights of the eps-MSE, min(SNR_t, gamma) / SNR_t (Hang et al. 2023,
    "Efficient Diffusion Training via Min-SNR Weighting"); all ones for gamma <= 0. [T] -> [T].

    Low-noise steps, whose eps-loss is large but matters little for what a source *is*, are
    down-weighted, so training spends its updates on the mid and high noise levels.
    """
    if gamma <= 0:
        return torch.ones_like(abar)
    snr = abar / (1 - abar)
    return snr.clamp(max=gamma) / snr
