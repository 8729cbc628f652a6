"""A diffusion source prior: the waveform eps-network plus its DDPM constants.

``Prior`` is the one denoiser contract of diffsep: ``eps(x, t, label)`` predicts the noise of a
waveform at DDPM step ``t`` and ``denoise(x, t, label)`` turns it into the clamped Tweedie
estimate x0_hat. Samplers and guidance only ever see ``denoise``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import PriorConfig
from .diffusion import ddpm_schedule, network_timestep
from .nets import TFUNet
from .spec import from_channels, istft, pad_to_frames, stft, to_channels

LabelLike = Tensor | int | None


def _single(value: Tensor | int | None) -> bool:
    """One value for the whole batch (None, an int or a 0-d tensor)."""
    return not isinstance(value, Tensor) or value.ndim == 0


class Prior(nn.Module):
    """Waveform denoiser of one source class; ``net`` holds the (official) parameters."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.net = TFUNet(config.net)
        self.schedule = ddpm_schedule(config.diffusion)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    def _labels(self, label: LabelLike, batch: int, device: torch.device) -> Tensor:
        if label is None:
            label = self.config.default_label
        label = torch.as_tensor(label, dtype=torch.long, device=device).expand(batch)
        if label.min() < 0 or label.max() > self.config.net.num_classes:
            raise ValueError(f"class index out of range [0, {self.config.net.num_classes}]")
        return label

    def _steps(self, t: Tensor | int, batch: int, device: torch.device) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.long).expand(batch)
        if t.min() < 0 or t.max() >= self.config.diffusion.steps:
            raise ValueError(f"DDPM step out of range [0, {self.config.diffusion.steps})")
        return t.to(device)

    def eps(self, x: Tensor, t: Tensor | int, label: LabelLike = None) -> Tensor:
        """Predicted noise. x: [B, L] waveforms; t: DDPM step(s) in [0, T); -> [B, L], fp32
        also under autocast.
        One t and one class for the whole batch (ints or 0-d tensors, as in every separation
        step) go to the network at batch 1: its modulations are then shared (fused)."""
        n_fft, hop = self.config.net.n_fft, self.config.net.hop
        batch, length = x.shape
        cond = 1 if _single(t) and _single(label) else batch
        tau = network_timestep(self.config.diffusion, self._steps(t, cond, x.device)).float()
        padded = pad_to_frames(x.float(), hop, multiple=4)
        spec = to_channels(stft(padded, n_fft, hop))
        out = self.net(spec, tau, self._labels(label, cond, x.device))
        return istft(from_channels(out), n_fft, hop, padded.shape[-1])[:, :length]

    def denoise(self, x: Tensor, t: Tensor | int, label: LabelLike = None) -> Tensor:
        """Tweedie estimate clamp((x - sqrt(1-abar) eps) / sqrt(abar), -1, 1). x: [B, L]."""
        steps = self._steps(t, x.shape[0], torch.device("cpu"))
        abar = self.schedule.alphas_cumprod[steps].to(x.device, x.dtype)[:, None]
        x0 = (x - (1 - abar).sqrt() * self.eps(x, t, label)) / abar.sqrt()
        return x0.clamp(-1, 1)

    def forward(self, x0: Tensor, t: Tensor, noise: Tensor, label: LabelLike = None) -> Tensor:
        """Training loss: per-item MSE of the predicted noise of x_t = q(x0, t, noise) -> [B]."""
        abar = self.schedule.alphas_cumprod[t.cpu()].to(x0.device, x0.dtype)[:, None]
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        return (self.eps(x_t, t, label) - noise).square().mean(dim=-1)
