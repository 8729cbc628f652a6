"""Baselines of ``diffsep bench`` on tensors: the oracle ideal ratio mask (an upper reference for
masking) and supervised NMF with one dictionary per source class (the classic unsupervised rival
of diffusion priors: it also learns from single-source recordings only).

Shapes: mixtures [L], references and estimates [K, L], magnitude spectrograms [F, T].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import DiffsepError
from .spec import FLOOR, MASK_FFT, MASK_HOP, soft_masks, stft

N_FFT, HOP = MASK_FFT, MASK_HOP  # the STFT of the solver's soft-mask consistency


def oracle_irm(mix: Tensor, refs: Tensor) -> Tensor:
    """Oracle ideal ratio mask |S_k|² / Σ_j |S_j|² (the Wiener "IRM2" of SiSEC) from the true
    references. mix: [L]; refs: [K, L] -> estimates [K, L]."""
    return soft_masks(mix, stft(refs.float(), N_FFT, HOP, root=False).abs().square(), N_FFT, HOP)


def magnitude(x: Tensor) -> Tensor:
    """Magnitude spectrogram of [L] audio -> [F, T] (the NMF representation)."""
    return stft(x.float(), N_FFT, HOP, root=False).abs()


@dataclass(frozen=True)
class NMFConfig:
    """Supervised NMF recipe: KL divergence, multiplicative updates, rank per source class."""

    rank: int = 32
    iters: int = 200  # multiplicative-update iterations (training and separation)
    sample_rate: int = 16000
    seconds: float = 60.0  # training audio per class (cap)
    file_seconds: float = 4.0  # at most this much from each training file
    exponent: float = 1.0  # mask P_k^e / Σ P_j^e on the NMF magnitude estimates
    seed: int = 0


def _sklearn_nmf() -> tuple[object, object]:
    try:
        from sklearn.decomposition import NMF, non_negative_factorization
    except ImportError:
        raise DiffsepError(
            "the nmf baseline needs scikit-learn: pip install 'diffsep[bench]'"
        ) from None
    return NMF, non_negative_factorization


def learn_dictionary(mag: Tensor, cfg: NMFConfig) -> Tensor:
    """Dictionary of one class from single-source magnitudes [F, T] -> [F, rank] (KL-NMF,
    columns normalised to unit sum). Frames without energy are dropped."""
    nmf_cls, _ = _sklearn_nmf()
    frames = mag.T.float().numpy()  # [T, F] float32 (half the time of float64)
    frames = frames[frames.sum(1) > 1e-6]
    if len(frames) < cfg.rank:
        raise DiffsepError(f"nmf: {len(frames)} active frames, fewer than rank {cfg.rank}")
    model = nmf_cls(  # type: ignore[operator]
        n_components=cfg.rank,
        beta_loss="kullback-leibler",
        solver="mu",
        init="nndsvda",
        max_iter=cfg.iters,
        tol=0.0,
        random_state=cfg.seed,
    )
    model.fit(frames)
    atoms = torch.from_numpy(np.asarray(model.components_, dtype=np.float32)).T  # [F, rank]
    return atoms / atoms.sum(0, keepdim=True).clamp_min(FLOOR)


def nmf_activations(mag: Tensor, atoms: Tensor, iters: int) -> Tensor:
    """Activations [R, T] of magnitudes [F, T] on fixed atoms [F, R] (KL multiplicative
    updates via sklearn ``non_negative_factorization`` with the dictionary held constant)."""
    _, factorize = _sklearn_nmf()
    acts, _, _ = factorize(  # type: ignore[operator]
        mag.T.float().numpy() + FLOOR,
        H=atoms.T.float().numpy(),
        n_components=atoms.shape[1],
        update_H=False,
        beta_loss="kullback-leibler",
        solver="mu",
        max_iter=iters,
        tol=0.0,
    )
    return torch.from_numpy(np.asarray(acts, dtype=np.float32)).T


def nmf_separate(mix: Tensor, dictionaries: Sequence[Tensor], cfg: NMFConfig) -> Tensor:
    """Separate mixture [L] with one fixed dictionary [F, R_k] per source -> [K, L]: fit the
    activations of the stacked dictionaries, then mask with each source's part W_k H_k."""
    atoms = torch.cat(list(dictionaries), dim=1)
    acts = nmf_activations(magnitude(mix), atoms, cfg.iters)
    parts, start = [], 0
    for d in dictionaries:
        parts.append(d @ acts[start : start + d.shape[1]])
        start += d.shape[1]
    return soft_masks(mix, torch.stack(parts), N_FFT, HOP, cfg.exponent)
