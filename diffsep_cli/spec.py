"""STFT and inverse with a root-Hann window, on any leading dimensions (tensors only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sqrt_hann(n_fft: int, device: torch.device | None = None) -> Tensor:
    """√(periodic Hann) window: with hop = n_fft/2 (approx.) it is its own synthesis window."""
    return torch.hann_window(n_fft, device=device).pow(0.5)


def stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """[..., L] real -> [..., n_fft//2+1, L//hop+1] complex (centred, zero-padded ends)."""
    lead = x.shape[:-1]
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]),
        n_fft=n_fft,
        hop_length=hop,
        window=sqrt_hann(n_fft, x.device),
        center=True,
        return_complex=True,
    )
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: Tensor, n_fft: int, hop: int, length: int) -> Tensor:
    """[..., F, T] complex -> [..., length] real, the inverse of :func:`stft`."""
    lead = spec.shape[:-2]
    x = torch.istft(
        spec.reshape(-1, *spec.shape[-2:]).to(torch.complex64),
        n_fft=n_fft,
        hop_length=hop,
        window=sqrt_hann(n_fft, spec.device),
        center=True,
        length=length,
    )
    return x.reshape(*lead, length)


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
