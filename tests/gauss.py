"""Closed-form Gaussian sources: exact denoisers, so separation can be checked against Wiener."""

from __future__ import annotations

import torch

from diffsep_cli.config import PriorConfig
from diffsep_cli.core.prior import Prior

from .conftest import TINY_NET

L = 16000


class GaussPrior(Prior):
    """Stationary Gaussian source with power spectrum ``power``: its denoiser is exact,
    x0_hat = F^-1[ sqrt(abar) P / (abar P + 1 - abar) F x_t ]."""

    def __init__(self, power: torch.Tensor) -> None:
        super().__init__(PriorConfig(net=TINY_NET))
        self.power = power

    def eps(self, x, t, label=None):  # type: ignore[no-untyped-def]
        t = self._steps(t, x.shape[0], x.device)
        ab = self.schedule.alphas_cumprod[t].to(x.dtype)[:, None]
        gain = ab.sqrt() * self.power / (ab * self.power + 1 - ab)
        x0 = torch.fft.irfft(gain * torch.fft.rfft(x, norm="ortho"), n=x.shape[-1], norm="ortho")
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()


def sdr(est: torch.Tensor, ref: torch.Tensor) -> float:
    """Plain SDR in dB."""
    return (10 * torch.log10(ref.square().sum() / (est - ref).square().sum())).item()


def filter_power(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x filtered by the real frequency response ``p`` (orthonormal rFFT bins)."""
    return torch.fft.irfft(p * torch.fft.rfft(x, norm="ortho"), n=x.shape[-1], norm="ortho")


def gauss_case(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(power 1, power 2, source 1, source 2): a low-pass and a high-pass source, -24 dBFS."""
    f = torch.arange(L // 2 + 1) / (L // 2)
    p1 = 1 / (1 + (f / 0.05) ** 2)  # low-pass source
    p2 = (f / 0.3) ** 2 / (1 + (f / 0.3) ** 2)  # high-pass source
    p1, p2 = p1 * 0.06**2 / p1.mean(), p2 * 0.06**2 / p2.mean()  # about -24 dBFS each
    g = torch.Generator().manual_seed(seed)
    s1 = filter_power(p1.sqrt(), torch.randn(L, generator=g))
    s2 = filter_power(p2.sqrt(), torch.randn(L, generator=g))
    return p1, p2, s1, s2
