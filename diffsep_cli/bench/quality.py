"""Perceptual scores of ``diffsep bench`` where their packages are installed: PESQ-WB, ESTOI."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..io.audio import resample

QUALITY_RATE = 16000  # PESQ-WB needs 16 kHz


def available_quality() -> list[str]:
    """Optional perceptual metrics whose packages are installed: pesq_wb (pesq), estoi."""
    found = importlib.util.find_spec
    return [name for name, mod in (("pesq_wb", "pesq"), ("estoi", "pystoi")) if found(mod)]


def _pesq_wb(est: np.ndarray, ref: np.ndarray) -> float:
    from pesq import pesq

    try:
        return float(pesq(QUALITY_RATE, ref, est, "wb"))
    except Exception:  # NoUtterancesError and friends (silent references): no score
        return math.nan


def quality_scores(
    est: Tensor, ref: Tensor, sample_rate: int, names: Sequence[str]
) -> dict[str, Tensor]:
    """PESQ-WB (P.862.2, at 16 kHz) and ESTOI of aligned pairs: [K, L] -> {name: [K]}."""
    out: dict[str, Tensor] = {}
    e, r = est.double().numpy(), ref.double().numpy()
    for name in names:
        if name == "pesq_wb":
            e16, r16 = (resample(x.T, sample_rate, QUALITY_RATE).T for x in (e, r))
            vals = [_pesq_wb(a, b) for a, b in zip(e16, r16, strict=True)]
        elif name == "estoi":
            from pystoi import stoi

            vals = [
                float(stoi(b, a, sample_rate, extended=True)) for a, b in zip(e, r, strict=True)
            ]
        else:
            raise ValueError(f"unknown quality metric {name!r}")
        out[name] = torch.tensor(vals, dtype=torch.float64)
    return out
