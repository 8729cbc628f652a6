"""Forward-only solvers of y = sum_k x_k: wrappers that make a joint denoiser's estimates sum to
the mixture without a gradient through the networks, and the switch to a guided tail.

Both wrappers return x0_tilde [B, K, L] with sum_k x0_tilde_k = y, so any DDIM / DDPM sampler
separates unchanged (the pattern of :mod:`.guidance`):

- ``projection`` (DiffPIR, Zhu et al. 2023; DDNM, Wang et al. 2023): the closed-form data step
  for the sum operator, x0_tilde_k = x0_hat_k + r / (K + rho_t), r = y - sum_j x0_hat_j, with
  rho_t = rho / sigma_t^2 (rho = lambda sigma_n^2 of DiffPIR; 0: the exact projection).
- ``dirac`` (Mariani et al. 2024, "Multi-Source Diffusion Models", Dirac-likelihood ISDM):
  source p is pinned to y - sum of the others; every free source k moves along the difference
  of its own noise estimate and the pinned source's, i.e. x0_tilde_k = x0_hat_k + (X_p -
  x0_hat_p) with X = x_t / sqrt(abar_t) the VE-scaled state, and x0_tilde_p closes the sum.
  The pinned source rotates with the step unless ``pinned`` names one.
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from ..config import FORWARD_ONLY, GuidanceConfig
from .diffusion import Schedule, ddim_coefs
from .guidance import reconstruction_guidance
from .sampling import Denoise


def projection(denoise: Denoise, mix: Tensor, schedule: Schedule, rho: float = 0.0) -> Denoise:
    """Wrap a joint denoiser [B, K, L] so its estimates are projected onto sum = ``mix`` [B, L]."""
    sigma2 = (1 - schedule.alphas_cumprod) / schedule.alphas_cumprod

    def projected(x: Tensor, i: int) -> Tensor:
        x0_hat = denoise(x, i)
        r = mix - x0_hat.sum(dim=1)
        return x0_hat + (r / (x0_hat.shape[1] + rho / float(sigma2[i])))[:, None]

    return projected


def dirac(denoise: Denoise, mix: Tensor, schedule: Schedule, pinned: int | None = None) -> Denoise:
    """Wrap a joint denoiser [B, K, L] with the Dirac likelihood y = sum_k x_k (one source
    pinned: ``pinned``, or source i mod K at sampling step i)."""
    root_abar = schedule.alphas_cumprod.sqrt()

    def pinned_denoise(x: Tensor, i: int) -> Tensor:
        x0_hat = denoise(x, i)
        k = x0_hat.shape[1]
        p = (i % k if pinned is None else pinned) % k
        noise_p = x[:, p] / float(root_abar[i]) - x0_hat[:, p]  # sigma_t * eps_hat of source p
        out = x0_hat + noise_p[:, None]
        out[:, p] = 0
        out[:, p] = mix - out.sum(dim=1)
        return out

    return pinned_denoise


def solver_denoiser(
    denoise: Denoise, mix: Tensor, schedule: Schedule, cfg: GuidanceConfig
) -> Denoise:
    """The denoiser of ``cfg.solver``: guided (hybrid, dsg, dps: gradient through the
    networks) or forward-only (dirac, projection) with the last ``guided_steps`` hybrid."""
    c_x0 = ddim_coefs(schedule, 1.0 if cfg.eta is None else cfg.eta)[0]
    if cfg.solver not in FORWARD_ONLY:
        return reconstruction_guidance(denoise, mix, schedule, cfg, c_x0)
    if cfg.solver == "dirac":
        free = dirac(denoise, mix, schedule, cfg.pinned)
    else:
        free = projection(denoise, mix, schedule, cfg.rho)
    if cfg.guided_steps <= 0:
        return free
    guided = reconstruction_guidance(denoise, mix, schedule, replace(cfg, solver="hybrid"), c_x0)

    def tail(x: Tensor, i: int) -> Tensor:
        return guided(x, i) if i < cfg.guided_steps else free(x, i)

    return tail
