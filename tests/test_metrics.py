"""Metrics against hand-computed cases: SI-SDR(i), BSS-Eval SDR, permutation search, statistics."""

from __future__ import annotations

import importlib.machinery
import math
import sys
import types

import fast_bss_eval
import numpy as np
import pytest
import torch

from diffsep_cli.bench.quality import available_quality, quality_scores
from diffsep_cli.core.metrics import (
    best_permutation,
    bss_sdr,
    distinctness,
    pairwise_si_sdr,
    score_sources,
    si_sdr,
    summarize,
    t975,
)
from diffsep_cli.errors import DiffsepError

L = 16000


def tone(freq: float, n: int = L, rate: int = 16000) -> torch.Tensor:
    """A sine with an integer number of periods: zero mean, orthogonal to other such tones."""
    t = torch.arange(n, dtype=torch.float64) / rate
    return torch.sin(2 * math.pi * freq * t)


def test_si_sdr_of_a_scaled_noisy_estimate() -> None:
    ref, noise = tone(100), tone(300)  # orthogonal, equal energy
    # est = 2 ref + 0.2 noise: target 2 ref, residual 0.2 noise -> 10 log10(4 / 0.04) = 20 dB
    assert float(si_sdr(2 * ref + 0.2 * noise, ref)) == pytest.approx(20.0, abs=1e-6)
    # energy ratio 1/9 -> 10 log10(1 / 9) dB; any gain and a DC offset change nothing
    est = ref + 3 * noise
    expected = 10 * math.log10(1 / 9)
    assert float(si_sdr(est, ref)) == pytest.approx(expected, abs=1e-6)
    assert float(si_sdr(-5 * est + 0.3, ref)) == pytest.approx(expected, abs=1e-6)
    # batched: [..., L] -> [...]
    batch = si_sdr(torch.stack([2 * ref + 0.2 * noise, est]), torch.stack([ref, ref]))
    assert batch.shape == (2,)
    assert batch.tolist() == pytest.approx([20.0, expected], abs=1e-6)


def test_si_sdr_improvement_over_the_mixture() -> None:
    ref, other = tone(100), tone(250)
    mix = ref + other  # equal energies: SI-SDR(mix, ref) = 0 dB
    est = torch.stack([ref + 0.1 * other, other + 0.01 * ref])
    s = score_sources(est, torch.stack([ref, other]), mix, [[0], [1]], sdr=False)
    assert s.si_sdr.tolist() == pytest.approx([20.0, 40.0], abs=1e-6)
    assert s.si_sdri.tolist() == pytest.approx([20.0, 40.0], abs=1e-6)
    assert s.sdr is None and s.quality == {}


def test_bss_sdr_tolerates_filtering_unlike_si_sdr() -> None:
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, L, generator=g, dtype=torch.float64)
    # a short echo is inside the 512-tap distortion filter: SDR stays high, SI-SDR does not
    echo = ref + 0.8 * torch.roll(ref, 5, dims=-1)
    assert bss_sdr(echo, ref).min() > 30  # not infinite: torch.roll wraps 5 samples around
    assert si_sdr(echo, ref).max() < 5
    # white noise at 10 dB SNR: the filter absorbs about 512/L of it, so SDR ~ 10.1 dB
    noisy = ref + math.sqrt(0.1) * torch.randn(2, L, generator=g, dtype=torch.float64)
    assert bss_sdr(noisy, ref).tolist() == pytest.approx([10.14, 10.14], abs=0.25)
    # the same value as the library's full bss_eval_sources (SDR of each pair)
    full = fast_bss_eval.bss_eval_sources(ref.numpy(), noisy.numpy())[0]
    assert bss_sdr(noisy, ref).numpy() == pytest.approx(full, abs=1e-6)


def test_permutation_search_stays_within_groups() -> None:
    # scores[est, ref]: the global best would pair est 2 with ref 0, across groups
    scores = torch.tensor([[1.0, 5.0, 0.0], [4.0, 1.0, 0.0], [50.0, 0.0, 2.0]])
    assert best_permutation(scores, [[0, 1], [2]]) == [1, 0, 2]
    assert best_permutation(scores, [[0], [1], [2]]) == [0, 1, 2]
    assert best_permutation(scores, [[0, 1, 2]]) == [2, 0, 1]  # 50 + 5 + 0 beats the others
    with pytest.raises(ValueError, match="partition"):
        best_permutation(scores, [[0, 1]])
    with pytest.raises(DiffsepError, match="at most"):
        best_permutation(torch.zeros(9, 9), [list(range(9))])


def test_score_sources_applies_one_permutation_to_every_metric() -> None:
    refs = torch.stack([tone(100), tone(200), tone(400)])
    mix = refs.sum(0)
    est = refs[[1, 0, 2]] + 0.01 * tone(700)  # the two first sources swapped
    same = score_sources(est, refs, mix, [[0, 1], [2]])
    assert same.perm == [1, 0, 2]
    assert same.si_sdr.min() > 30 and same.sdr is not None and same.sdr.min() > 30
    assert same.sdri is not None
    assert same.sdri.tolist() == pytest.approx(
        (same.sdr - bss_sdr(mix.expand(3, -1), refs)).tolist()
    )
    apart = score_sources(est, refs, mix, [[0], [1], [2]])  # different priors: no swap allowed
    assert apart.perm == [0, 1, 2]
    assert apart.si_sdr[:2].max() < -30 and apart.si_sdr[2] > 30
    pair = pairwise_si_sdr(est, refs)
    assert pair.shape == (3, 3) and float(pair[0, 1]) == pytest.approx(float(same.si_sdr[1]))


def test_student_t_quantiles_and_summary() -> None:
    assert t975(1) == 12.706 and t975(5) == 2.571 and t975(30) == 2.042
    assert t975(40) == pytest.approx(2.0211, abs=2e-4)
    assert t975(100) == pytest.approx(1.9840, abs=2e-4)
    assert t975(10_000) == pytest.approx(1.9602, abs=2e-4)
    s = summarize([1.0, 2.0, 3.0, 4.0, float("nan")])  # NaN scores are left out
    half = 3.182 * math.sqrt(5 / 3) / 2  # t(0.975, 3) * sd / sqrt(n)
    assert (s.n, s.mean, s.median) == (4, 2.5, 2.5)
    assert (s.lo, s.hi) == pytest.approx((2.5 - half, 2.5 + half))
    one = summarize([7.0])
    assert (one.n, one.mean) == (1, 7.0) and math.isnan(one.lo)
    assert summarize([]).n == 0


def _fake_module(name: str, **attrs: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


def test_optional_pesq_and_estoi_are_used_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def pesq(fs: int, ref: np.ndarray, deg: np.ndarray, mode: str) -> float:
        calls.append((fs, mode, len(ref)))
        return 3.0 + float(np.dot(ref, deg) > 0)

    def stoi(ref: np.ndarray, deg: np.ndarray, fs: int, extended: bool) -> float:
        calls.append((fs, extended))
        return 0.5

    monkeypatch.setitem(sys.modules, "pesq", _fake_module("pesq", pesq=pesq))
    monkeypatch.setitem(sys.modules, "pystoi", _fake_module("pystoi", stoi=stoi))
    assert available_quality() == ["pesq_wb", "estoi"]
    refs = torch.stack([tone(100, 8000, 8000), tone(200, 8000, 8000)])
    q = quality_scores(torch.stack([refs[0], -refs[1]]), refs, 8000, ["pesq_wb", "estoi"])
    assert q["pesq_wb"].tolist() == [4.0, 3.0] and q["estoi"].tolist() == [0.5, 0.5]
    # PESQ-WB runs at 16 kHz (resampled), ESTOI at the input rate with extended=True
    assert calls[0] == (16000, "wb", 16000) and calls[2] == (8000, True)


def test_distinctness_of_interchangeable_estimates() -> None:
    """||x_i - x_j|| / ||x_i + x_j||, the smallest within a group: 0 for a collapse to one
    signal, 1 for orthogonal sources of equal level; only pairs of one group count."""
    a, b, c = tone(440), tone(660), tone(880)
    y = a + b
    assert distinctness(torch.stack([y / 2, y / 2]), [[0, 1]]) == pytest.approx(0.0)
    assert distinctness(torch.stack([a, b]), [[0, 1]]) == pytest.approx(1.0)
    assert distinctness(torch.stack([a, b]), [[0], [1]]) is None  # different priors
    # three sources of one prior, two of them nearly equal: the closest pair decides
    near = distinctness(torch.stack([a, b, a + 0.1 * c]), [[0, 1, 2]])
    assert near == pytest.approx(
        float(torch.linalg.vector_norm(0.1 * c)) / float(torch.linalg.vector_norm(2 * a + 0.1 * c))
    )
    assert distinctness(torch.stack([a, b, a + 0.1 * c]), [[0, 1], [2]]) == pytest.approx(1.0)
