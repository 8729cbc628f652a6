"""Property tests of the streaming file path: any length, rate, channel count, block size and
segment / overlap give the exact length and rate, sources that sum to the input, and no sample
dropped or doubled at block or segment edges."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from diffsep_cli.config import SeparateConfig
from diffsep_cli.core.sources import ResolvedSources
from diffsep_cli.io import pipeline

from .conftest import tiny_prior

WEIGHTS = torch.tensor([0.25, 0.75])  # the stand-in separator's exact split
PRIORS = [tiny_prior(0), tiny_prior(1)]  # 16 kHz; only their rate and level are used


def split(priors, mix, **_):  # type: ignore[no-untyped-def]
    """A separator whose answer is known: source k = w_k * mixture. [B, L] -> [B, K, L]."""
    return mix[:, None] * WEIGHTS[None, :, None].to(mix)


def tones(frames: int, rate: int, channels: int, seed: int) -> np.ndarray:
    """Band-limited test audio (partials below 0.3 x the lowest rate's Nyquist): [L, C]."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / rate
    freqs = rng.uniform(50, 0.3 * min(rate, 16000) / 2, size=(6, channels))
    phases = rng.uniform(0, 2 * np.pi, size=(6, channels))
    x = sum(0.05 * np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases, strict=True))
    return np.asarray(x, dtype=np.float32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames_ms=st.integers(1, 2500),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    channels=st.integers(1, 3),
    per_channel=st.booleans(),
    block_s=st.floats(0.01, 1.0),
    segment_s=st.floats(0.05, 0.6),
    overlap=st.floats(0.0, 0.5),
    batch=st.integers(1, 5),
    consistency=st.sampled_from(["equal", "mask", "none"]),
    seed=st.integers(0, 10**6),
)
# half of an odd segment (7635 samples) rounds up past segment // 2: found by CI, kept
@example(1, 8000, 1, False, 1.0, 0.47717277669190317, 0.5, 1, "equal", 0)
def test_streaming_keeps_every_sample(
    frames_ms: int,
    rate: int,
    channels: int,
    per_channel: bool,
    block_s: float,
    segment_s: float,
    overlap: float,
    batch: int,
    consistency: str,
    seed: int,
) -> None:
    frames = max(1, frames_ms * rate // 1000)
    x = tones(frames, rate, channels, seed)
    cfg = SeparateConfig(
        steps=1,
        segment=segment_s,
        overlap=overlap,
        batch_size=batch,
        consistency=consistency,
        per_channel=per_channel,
    )
    src = ResolvedSources(PRIORS, [None, None], ["a", "b"], [[0], [1]])
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(pipeline, "separate_tensor", split),
        mock.patch.object(pipeline, "BLOCK_SECONDS", block_s),
    ):
        path = Path(tmp) / "in.wav"
        sf.write(path, x, rate, subtype="FLOAT")
        outs = {"a": Path(tmp) / "a.wav", "b": Path(tmp) / "b.wav"}
        pipeline.separate_file(path, outs, src, cfg)
        got = [sf.read(outs[n], dtype="float64", always_2d=True) for n in ("a", "b")]
    ref = x.astype(np.float64) if per_channel else x.mean(axis=1, keepdims=True, dtype=np.float64)
    for y, out_rate in got:
        assert out_rate == rate and y.shape == ref.shape
    total = got[0][0] + got[1][0]
    if consistency != "none":  # written sources sum to the input at its own rate
        assert np.allclose(total, ref, atol=1e-5)
    if rate == 16000:  # no resampling: every sample in place, exactly
        for (y, _), w in zip(got, WEIGHTS.tolist(), strict=True):
            assert np.allclose(y, w * ref, atol=1e-5)
    elif frames > rate // 10:  # resampled twice: a dropped or doubled sample would show
        for (y, _), w in zip(got, WEIGHTS.tolist(), strict=True):
            err = np.sum((y - w * ref) ** 2) / max(np.sum((w * ref) ** 2), 1e-12)
            assert err < 1e-2, err
