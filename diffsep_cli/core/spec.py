"""STFT and inverse (root-Hann or Hann window) on any leading dimensions, and soft masking of
a mixture (tensors only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sqrt_hann(n_fft: int, device: torch.device | None = None) -> Tensor:
    """√(periodic Hann) window: with hop = n_fft/2 (approx.) it is its own synthesis window."""
    return torch.hann_window(n_fft, device=device).pow(0.5)


FLOOR = 1e-10  # added to mask weights: silent bins are shared equally
MASK_FFT, MASK_HOP = 1024, 256  # masking STFT: 64 ms Hann window, 16 ms hop at 16 kHz


def _window(n_fft: int, root: bool, device: torch.device) -> Tensor:
    return sqrt_hann(n_fft, device) if root else torch.hann_window(n_fft, device=device)


def stft(x: Tensor, n_fft: int, hop: int, *, root: bool = True) -> Tensor:
    """[..., L] real -> [..., n_fft//2+1, L//hop+1] complex (centred, zero-padded ends);
    √Hann window (the network's), or Hann with ``root=False``."""
    lead = x.shape[:-1]
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]),
        n_fft=n_fft,
        hop_length=hop,
        window=_window(n_fft, root, x.device),
        center=True,
        return_complex=True,
    )
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: Tensor, n_fft: int, hop: int, length: int, *, root: bool = True) -> Tensor:
    """[..., F, T] complex -> [..., length] real, the inverse of :func:`stft`."""
    lead = spec.shape[:-2]
    x = torch.istft(
        spec.reshape(-1, *spec.shape[-2:]).to(torch.complex64),
        n_fft=n_fft,
        hop_length=hop,
        window=_window(n_fft, root, spec.device),
        center=True,
        length=length,
    )
    return x.reshape(*lead, length)


def soft_masks(mix: Tensor, weights: Tensor, n_fft: int, hop: int, exponent: float = 1.0) -> Tensor:
    """Split a mixture with the soft masks W_k^e / Σ_j W_j^e of its (Hann) STFT.

    mix: [..., L]; weights: [..., K, F, T] non-negative, one per source -> [..., K, L]. The
    outputs sum to the mixture (up to the STFT round trip).
    """
    w = weights.clamp_min(0).double() ** exponent + FLOOR
    masks = (w / w.sum(-3, keepdim=True)).to(torch.float32)
    spec = stft(mix.float(), n_fft, hop, root=False).unsqueeze(-3)
    return istft(masks * spec, n_fft, hop, mix.shape[-1], root=False)


def to_channels(spec: Tensor) -> Tensor:
    """[B, F, T] complex -> [B, 2, F, T] real/imag channels."""
    return torch.view_as_real(spec).permute(0, 3, 1, 2)


def from_channels(x: Tensor) -> Tensor:
    """[B, 2, F, T] real/imag channels -> [B, F, T] complex64."""
    return torch.complex(x[:, 0].float(), x[:, 1].float())


def pad_to_frames(x: Tensor, hop: int, multiple: int) -> Tensor:
    """Right-pad [..., L] with zeros so the frame count L//hop+1 is a multiple of ``multiple``."""
    frames = x.shape[-1] // hop + 1
    extra = (-frames) % multiple
    return F.pad(x, (0, extra * hop)) if extra else x
