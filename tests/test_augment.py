"""Training-data augmentation and group-balanced sampling."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep_cli.config import AUGMENTS, CROP_STYLES, PEAK_LIMIT, AugmentConfig, TrainConfig
from diffsep_cli.io.audio import rms_db
from diffsep_cli.train.augment import augment, speed_factor, voice
from diffsep_cli.train.data import Clips, CropSampler, clip_weights, load_clips

RATE = 16000


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spec)])


def test_speed_moves_pitch_and_keeps_the_length() -> None:
    rng = np.random.default_rng(0)
    x = _tone(1000.0, 1.2)
    y = augment(x, RATE, RATE, AugmentConfig(), rng, factor=1.2)  # 1.2 s played in 1 s
    assert y.shape == (RATE,) and abs(_peak_hz(y) - 1200.0) < 5
    slow = augment(x[: int(0.9 * RATE)], RATE, RATE, AugmentConfig(), rng, factor=0.9)
    assert abs(_peak_hz(slow[: int(0.8 * RATE)]) - 900.0) < 5
    cfg = AugmentConfig(speed=0.15, speed_prob=1.0)
    factors = [speed_factor(cfg, rng) for _ in range(500)]
    assert 1 / 1.15 - 1e-9 <= min(factors) < 0.9 and 1.1 < max(factors) <= 1.15 + 1e-9
    assert speed_factor(AugmentConfig(), rng) == 1.0


def test_eq_and_rooms_change_the_spectrum_not_the_timing() -> None:
    rng = np.random.default_rng(1)
    x = np.zeros(RATE, np.float32)
    x[100] = 1.0  # an impulse shows the filter, and where it starts
    eq = augment(x, RATE, RATE, AugmentConfig(eq_prob=1.0, band_prob=1.0), rng)
    room = augment(x, RATE, RATE, AugmentConfig(reverb_prob=1.0, rt60=(0.3, 0.3)), rng)
    assert np.isfinite(eq).all() and np.isfinite(room).all()
    assert abs(int(np.argmax(np.abs(room))) - 100) <= 1  # the direct path stays first
    tail = np.square(room[100 + int(0.05 * RATE) :]).sum()
    assert tail > 1e-4 * np.square(room).sum()  # a reverberant tail
    plain = augment(x, RATE, RATE, AugmentConfig(), rng)
    np.testing.assert_allclose(plain, x, atol=1e-6)  # all off: unchanged


def _vowel(f0: float | np.ndarray, seconds: float = 1.0) -> np.ndarray:
    """Glottal pulses at ``f0`` (Hz, or per sample) through two formant resonators (700, 1200
    Hz)."""
    n = int(seconds * RATE)
    phase = np.cumsum(np.broadcast_to(np.asarray(f0, float), (n,)) / RATE)
    x = np.zeros(n)
    x[1:][np.diff(np.floor(phase)) > 0] = 1.0
    for freq, bw in ((700.0, 80.0), (1200.0, 90.0)):
        r, theta = np.exp(-np.pi * bw / RATE), 2 * np.pi * freq / RATE
        y = np.zeros(n)
        for i in range(n):  # a two-pole resonator
            y[i] = x[i] + 2 * r * np.cos(theta) * y[i - 1] - r * r * y[i - 2] if i > 1 else x[i]
        x = y
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def _f0(x: np.ndarray, q: float = 50.0) -> float:
    """The ``q``-th percentile of the voiced frames' f0 (NaN without any)."""
    import parselmouth

    sound = parselmouth.Sound(x.astype(np.float64), RATE)
    hz = sound.to_pitch(pitch_floor=60.0, pitch_ceiling=800.0).selected_array["frequency"]
    return float(np.percentile(hz[hz > 0], q)) if np.any(hz > 0) else float("nan")


def _centroid(x: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((power * np.fft.rfftfreq(len(x), 1 / RATE)).sum() / power.sum())


def test_voice_moves_pitch_and_formants_apart() -> None:
    x = _vowel(150.0)
    assert abs(_f0(x) - 150.0) < 3
    higher = voice(x, RATE, 1.0, 1.5, 1.0)  # pitch up, formants kept
    assert higher.shape == x.shape and higher.dtype == np.float32
    assert abs(_f0(higher) - 225.0) < 5
    assert abs(_centroid(higher) / _centroid(x) - 1) < 0.1
    bigger = voice(x, RATE, 0.8, 1.0, 1.0)  # a longer vocal tract, pitch kept
    assert abs(_f0(bigger) - 150.0) < 5 and _centroid(bigger) < 0.9 * _centroid(x)
    silence = np.zeros(RATE, np.float32)  # nothing to analyse: unchanged
    np.testing.assert_array_equal(voice(silence, RATE, 1.2, 1.5, 1.5), silence)
    cfg = AugmentConfig(voice_prob=1.0, formant=0.0, pitch=0.0, pitch_range=0.0)
    same = augment(x, RATE, RATE, cfg, np.random.default_rng(0))  # every ratio 1
    assert abs(_f0(same) - 150.0) < 3 and abs(_centroid(same) / _centroid(x) - 1) < 0.05


def test_voice_keeps_a_wide_pitch_range_positive() -> None:
    """Praat stretches f0 - median linearly: at 1.44x the excursion of a voice that dips from
    300 to 80 Hz, Change gender returns no voice (on some real crops it never returned)."""
    x = _vowel(np.where(np.arange(2 * RATE) < 0.3 * RATE, 80.0, 300.0), 2.0)
    y = voice(x, RATE, 1.0, 1.34, 1.44)
    assert abs(_f0(y) / (1.34 * 300.0) - 1) < 0.05  # the new median
    assert _f0(y, 5) >= 0.45 * 1.34 * 300.0  # the lowest pitch kept above half of it


@pytest.fixture
def groups(tmp_path: Path) -> Path:
    """A big group (10 clips) and a small one (1 clip) of distinct tones."""
    for i in range(10):
        (tmp_path / "big").mkdir(exist_ok=True)
        sf.write(tmp_path / "big" / f"b{i}.wav", _tone(300.0 + 10 * i), RATE)
    (tmp_path / "small").mkdir()
    sf.write(tmp_path / "small" / "s.wav", _tone(3000.0), RATE)
    return tmp_path


def test_balance_shares_draws_between_group_folders(groups: Path) -> None:
    clips = load_clips([groups], RATE)
    assert sorted(set(clips.groups)) == ["big", "small"]
    small = [g == "small" for g in clips.groups]
    share = {b: float(clip_weights(clips, RATE, b)[small].sum()) for b in (0.0, 0.5, 1.0)}
    assert share[0.0] == pytest.approx(1 / 11)
    assert share[0.5] == pytest.approx(1 / (1 + np.sqrt(10)))
    assert share[1.0] == pytest.approx(0.5)


def test_class_balance_shares_draws_between_classes(tmp_path: Path) -> None:
    """Class a: 3 groups (6, 1, 1 clips); class b: 1 group of 2 clips. Groups balance inside
    a class; classes then by their length totals ** (1 - class_balance)."""
    for cls, group, n in (("a", "g1", 6), ("a", "g2", 1), ("a", "g3", 1), ("b", "g4", 2)):
        (tmp_path / cls / group).mkdir(parents=True)
        for i in range(n):
            sf.write(tmp_path / cls / group / f"{i}.wav", _tone(300.0 + 10 * i), RATE)
    clips = load_clips([tmp_path], RATE, labels_from_folders=True)
    labels, groups = np.array(clips.labels), np.array(clips.groups)
    for b, c, share_b in ((0.0, 0.0, 0.2), (1.0, 0.0, 0.25), (1.0, 1.0, 0.5), (0.0, 0.5, 1 / 3)):
        w = clip_weights(clips, RATE, b, c)
        assert w.sum() == pytest.approx(1.0)
        assert w[labels == 1].sum() == pytest.approx(share_b)
        in_a = w[labels == 0].sum()
        # inside class a the groups keep the shares the group balance gave them
        g2 = w[groups == "a/g2"].sum() / in_a
        assert g2 == pytest.approx(1 / 8 if b == 0 else 1 / 3)


def test_augmented_crops_are_level_calibrated_and_deterministic(groups: Path) -> None:
    clips = load_clips([groups], RATE)

    def draw(seed: int) -> torch.Tensor:
        sampler = CropSampler(
            clips,
            8000,
            (-25.0, -20.0),
            seed=seed,
            balance=1.0,
            augment=AUGMENTS["speech"],
            rate=RATE,
        )
        return sampler.batch(12)[0]

    x = draw(3)
    assert torch.equal(x, draw(3)) and not torch.equal(x, draw(4))
    assert all(rms_db(c.numpy()) <= -19.99 for c in x)
    assert float(x.abs().max()) <= PEAK_LIMIT + 1e-6


@pytest.mark.parametrize("aug", [None, AUGMENTS["speech"], AUGMENTS["voices"]])
def test_clip_crops_levels_a_short_event_as_the_mixtures_do(aug: AugmentConfig) -> None:
    """A 0.1 s event in a 1 s crop: "crop" sets the crop's level (the event 10 dB louder),
    "clip" the event's own (the crop 10 dB quieter, as in io.mixtures); long clips alike."""
    event = np.random.default_rng(0).standard_normal(1600).astype(np.float32)
    short = Clips(audio=[event], labels=[0], names=())
    long = Clips(audio=[np.tile(event, 20)], labels=[0], names=())

    def crop_and_event_db(clips: Clips, span: str) -> tuple[float, float]:
        sampler = CropSampler(clips, RATE, (-30.0, -30.0), 0, 0.0, augment=aug, style=span)
        x = sampler.crop()[0]
        loud = np.convolve(x**2, np.ones(320) / 320, mode="same") > 1e-7  # the event's span
        return rms_db(x), rms_db(x[loud])

    assert crop_and_event_db(short, "crop")[0] == pytest.approx(-30.0, abs=0.01)
    crop_db, event_db = crop_and_event_db(short, "clip")
    assert event_db == pytest.approx(-30.0, abs=1.0) and crop_db < -38.0
    for span in CROP_STYLES:
        assert crop_and_event_db(long, span)[0] == pytest.approx(-30.0, abs=0.01)


def test_event_crops_hold_one_non_silent_span_levelled_on_it() -> None:
    """A clip of a 0.2 s and a 0.6 s burst 1 s apart: each "event" crop holds one of them
    (the longer drawn ~3x as often) at the level range, the rest of the crop silent."""
    noise = np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.1
    clip = np.concatenate([noise[:3200], np.zeros(RATE, np.float32), noise[:9600]])
    sampler = CropSampler(Clips([clip], [0], ()), 2 * RATE, (-30.0, -30.0), 0, style="event")
    widths = []
    for _ in range(60):
        x = sampler.crop()[0]
        on = np.flatnonzero(np.abs(x) > 0)
        widths.append((on[-1] - on[0] + 1) / RATE)
        assert -30.01 < rms_db(x[on[0] : on[-1] + 1]) < -28.0  # the span: the burst + <= 50 ms
    assert set(np.round(widths, 1)) == {0.2, 0.6}
    assert 0.6 < np.mean(np.round(widths, 1) == 0.6) < 0.9


def test_train_config_checks_augment_and_balance() -> None:
    bads = [dict(augment="chorus"), dict(balance=1.5), dict(class_balance=-0.1)]
    bads += [dict(crops="peak"), dict(level_low=-10.0, level_high=-20.0)]
    for bad in bads:
        with pytest.raises(ValueError):
            TrainConfig(**bad)  # type: ignore[arg-type]


def test_voices_without_praat_fail_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffsep_cli.config import PRESETS
    from diffsep_cli.errors import DiffsepError
    from diffsep_cli.train.trainer import train

    monkeypatch.setitem(sys.modules, "parselmouth", None)  # as if not installed
    with pytest.raises(DiffsepError, match=re.escape('pip install -e ".[train]"')):
        train(PRESETS["tiny"], TrainConfig(steps=1, augment="voices"), [tmp_path], tmp_path / "run")
    assert not (tmp_path / "run").exists()
