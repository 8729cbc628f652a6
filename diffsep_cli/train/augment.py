"""Augmentation of training crops that multiplies voices, microphones and rooms (numpy, on the
fly): speed / pitch (resampling, as Kaldi's speed perturbation), other voices (formants and
pitch moved apart with Praat's PSOLA "Change gender", the information perturbation of NANSY,
Choi et al. 2021), a random EQ of a few bands with a spectral tilt, band limits, mild synthetic
reverberation. Levels are set afterwards."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import soxr

from ..config import AugmentConfig
from ..errors import DiffsepError


def _gain_curve(freqs: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Linear magnitude response over ``freqs`` (Hz): peaking bands, a tilt, band limits."""
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    db = rng.uniform(-cfg.tilt_db, cfg.tilt_db) * octaves / 4  # +-tilt_db over 4 octaves
    for _ in range(int(rng.integers(0, cfg.eq_bands + 1))):
        centre = rng.uniform(np.log2(100 / 1000), np.log2(6000 / 1000))
        width = rng.uniform(0.3, 1.5)  # octaves
        db += rng.uniform(-cfg.eq_db, cfg.eq_db) * np.exp(-0.5 * ((octaves - centre) / width) ** 2)
    gain = 10 ** (db / 20)
    if rng.random() < cfg.band_prob:  # a smaller microphone or a telephone-ish channel
        low, high = rng.uniform(50, 300), rng.uniform(3500, 7500)
        gain /= np.sqrt(1 + (low / np.maximum(freqs, 1.0)) ** 4) * np.sqrt(1 + (freqs / high) ** 8)
    return gain


def _room(rate: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A synthetic impulse response: the direct path plus exponentially decaying noise."""
    rt60 = rng.uniform(*cfg.rt60)
    n = int(rt60 * rate)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / max(n, 1))
    tail[: int(0.002 * rate)] = 0  # the first reflections arrive after a couple of ms
    wet = 10 ** (rng.uniform(*cfg.wet_db) / 20)
    ir = wet * tail / (np.linalg.norm(tail) + 1e-12)
    ir[0] += 1.0
    return ir


def _ratio(spread: float, rng: np.random.Generator) -> float:
    """Log-uniform in [1/(1+spread), 1+spread]."""
    return float(np.exp(rng.uniform(-np.log1p(spread), np.log1p(spread))))


def praat() -> ModuleType:
    """praat-parselmouth, an extra of the ``train`` install; a one-line error without it."""
    try:
        import parselmouth
    except ImportError as err:
        raise DiffsepError(
            'voice augmentation needs praat-parselmouth: pip install -e ".[train]"'
        ) from err
    return parselmouth


def voice(x: np.ndarray, rate: int, formant: float, pitch: float, pitch_range: float) -> np.ndarray:
    """Another speaker saying the same [N] -> [N]: formants scaled by ``formant``, the median
    f0 by ``pitch`` and its excursions by ``pitch_range``, timing kept (Praat's "Change gender",
    75-600 Hz). Crops Praat cannot analyse (no voiced frame, too short) come back unchanged."""
    parselmouth = praat()
    sound = parselmouth.Sound(x.astype(np.float64), sampling_frequency=rate)
    try:
        with warnings.catch_warnings():  # "no voiced segments": only the formants move
            warnings.simplefilter("ignore", parselmouth.PraatWarning)
            f0 = sound.to_pitch(pitch_floor=75.0, pitch_ceiling=600.0).selected_array["frequency"]
            voiced, median = f0[f0 > 0], 0.0
            if len(voiced):
                old, low = float(np.median(voiced)), float(voiced.min())
                median = old * pitch
                # Praat stretches f0 - median linearly: a wider range drives the lowest f0 to 0
                # or below, and Change gender never returns. Keep it above half the median.
                pitch_range = min(pitch_range, 0.5 * old / max(old - low, 1e-3))
            out = parselmouth.praat.call(
                sound, "Change gender", 75.0, 600.0, formant, median, pitch_range, 1.0
            ).values[0]
    except parselmouth.PraatError:
        return x
    return np.pad(out, (0, max(0, len(x) - len(out))))[: len(x)].astype(x.dtype)


def speed_factor(cfg: AugmentConfig, rng: np.random.Generator) -> float:
    """How much faster (> 1) or slower a crop plays: log-uniform in [1/(1+s), 1+s], or 1."""
    if not cfg.speed or rng.random() >= cfg.speed_prob:
        return 1.0
    return _ratio(cfg.speed, rng)


def augment(
    x: np.ndarray,
    length: int,
    rate: int,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    factor: float = 1.0,
) -> np.ndarray:
    """A crop of about ``length * factor`` samples [N] -> ``length`` samples played ``factor``
    times faster (pitch and formants move with it), given another voice, EQ'd and reverberated
    at random. The level is set by the caller."""
    if factor != 1.0:
        x = soxr.resample(x.astype(np.float64), rate * factor, rate, quality="HQ")
    x = np.pad(x, (0, max(0, length - len(x))))[:length]
    if cfg.voice_prob and rng.random() < cfg.voice_prob:
        shifts = (_ratio(cfg.formant, rng), _ratio(cfg.pitch, rng), _ratio(cfg.pitch_range, rng))
        x = voice(x, rate, *shifts)
    n_fft = 1 << int(np.ceil(np.log2(2 * length)))
    spec = np.fft.rfft(x, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    if rng.random() < cfg.eq_prob:
        spec = spec * _gain_curve(freqs, cfg, rng)
    if rng.random() < cfg.reverb_prob:
        spec = spec * np.fft.rfft(_room(rate, cfg, rng), n_fft)
    return np.fft.irfft(spec, n_fft)[:length].astype(np.float32)
