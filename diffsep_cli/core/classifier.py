"""A noise-conditional source classifier and the class guidance it gives a joint denoiser.

The priors tell their classes apart poorly where separation assigns the sources, at high noise
(issue 13: the oracle starts and ``prior_contrast.py``). A small discriminative model trained on
the same single-source folders, on the same noised crops, does better there; its gradient
log p(c_k | x_k, t) moves each source towards its prior's class (classifier guidance, Dhariwal
& Nichol 2021), as a wrapper of the joint denoiser beneath any solver.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ClassifierConfig
from .diffusion import Schedule, network_timestep
from .sampling import Denoise


def mel_filters(n_fft: int, mels: int, rate: int) -> Tensor:
    """Triangular mel filterbank (HTK mel scale, 0 Hz to Nyquist): [mels, n_fft // 2 + 1]."""
    mel = torch.linspace(0, 2595 * math.log10(1 + rate / 2 / 700), mels + 2, dtype=torch.float64)
    hz = 700 * (10 ** (mel / 2595) - 1)
    freqs = torch.linspace(0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rise, fall = (freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)
    return torch.minimum(rise, fall).clamp_min(0).float()


class SourceClassifier(nn.Module):
    """log-mel of x_t -> 3x3 conv stages (GroupNorm, FiLM by the timestep, SiLU, 2x2 max pool
    between stages) -> mean over frequency -> mean and max over time -> class logits."""

    mel: Tensor  # [mels, n_fft // 2 + 1]
    window: Tensor  # [n_fft]

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("mel", mel_filters(c.n_fft, c.mels, c.sample_rate), persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.t_embed = nn.Sequential(nn.Linear(64, c.emb), nn.SiLU(), nn.Linear(c.emb, c.emb))
        pairs = zip((1, *c.channels[:-1]), c.channels, strict=True)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in pairs)
        self.norms = nn.ModuleList(nn.GroupNorm(min(8, w), w) for w in c.channels)
        self.films = nn.ModuleList(nn.Linear(c.emb, 2 * w) for w in c.channels)
        self.head = nn.Linear(2 * c.channels[-1], len(c.labels))

    def forward(self, x: Tensor, t: Tensor | int) -> Tensor:
        """x: [B, L] waveforms at DDPM step(s) t (an int or [B]) -> logits [B, C]."""
        c = self.config
        power = torch.stft(x.float(), c.n_fft, c.hop, window=self.window, return_complex=True)
        h = torch.log(self.mel @ power.abs().square() + 1e-6)[:, None]  # [B, 1, mels, T]
        h = h - h.mean(dim=(2, 3), keepdim=True)
        steps = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        tau = network_timestep(c.diffusion, steps).float()
        freqs = torch.exp(-math.log(1e4) * torch.arange(32, device=x.device) / 32)
        angles = tau[:, None] * freqs
        emb = self.t_embed(torch.cat([angles.cos(), angles.sin()], dim=-1))
        stages = zip(self.convs, self.norms, self.films, strict=True)
        for i, (conv, norm, film) in enumerate(stages):
            scale, shift = film(emb)[:, :, None, None].chunk(2, dim=1)
            h = F.silu(norm(conv(h)) * (1 + scale) + shift)
            if i < len(self.convs) - 1:
                h = F.max_pool2d(h, 2, ceil_mode=True)
        h = h.mean(dim=2)  # [B, C, T']
        return self.head(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1))


Classify = Callable[[Tensor, int], Tensor]  # (x_t [N, L], DDPM step t) -> logits [N, C]


def class_guidance(
    denoise: Denoise,
    classifier: Classify,
    classes: Sequence[int | None],
    schedule: Schedule,
    weight: float,
    min_step: int = 0,
) -> Denoise:
    """Wrap a joint denoiser [B, K, L] with class guidance: x0_hat_k + w (1 - abar_t) /
    sqrt(abar_t) grad_x log p(c_k | x_k, t) for each source k with a class c_k (None: left
    alone), i.e. the noise estimate moved by -w sqrt(1 - abar_t) times the classifier's score,
    at the DDPM steps t >= ``min_step`` (where the sources are assigned; below it, none).
    Forward-only in the priors: the gradient is the classifier's alone."""
    keep = [k for k, c in enumerate(classes) if c is not None]
    target = torch.tensor([classes[k] for k in keep])

    def guided(x: Tensor, i: int) -> Tensor:
        x0_hat = denoise(x, i)
        t, abar = int(schedule.timesteps[i]), float(schedule.alphas_cumprod[i])
        if weight == 0 or not keep or t < min_step:
            return x0_hat
        with torch.inference_mode(False), torch.enable_grad():
            xs = x[:, keep].detach().clone().requires_grad_(True)  # [B, K', L]
            logits = classifier(xs.flatten(0, 1), t).unflatten(0, xs.shape[:2])
            logp = logits.log_softmax(dim=-1)
            own = logp.gather(-1, target.to(x.device).expand(xs.shape[:2])[..., None])
            (grad,) = torch.autograd.grad(own.sum(), xs)
        out = x0_hat.clone()
        out[:, keep] += weight * (1 - abar) / math.sqrt(abar) * grad.to(out.dtype)
        return out

    return guided
