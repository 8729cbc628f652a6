"""Separation metrics on tensors: SI-SDR(i), BSS-Eval SDR(i) (fast_bss_eval), permutation search
within groups of interchangeable sources, and summary statistics (perceptual scores: bench).

Conventions: ``est`` and ``ref`` are [K, L] (one row per source), ``mix`` is [L]; metric values
are in dB (PESQ in MOS, ESTOI in [0, 1]).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import DiffsepError

EPS = 1e-8  # method.md §4: SI-SNR with eps 1e-8
MAX_GROUP = 8  # exhaustive search over at most 8! permutations per group
BSS_FILTER = 512  # BSS-Eval v3 distortion filter length (taps)
SDR_CLAMP = 100.0  # dB; a perfect estimate would otherwise be inf (and break fast_bss_eval)


def si_sdr(est: Tensor, ref: Tensor, eps: float = EPS) -> Tensor:
    """Scale-invariant SDR in dB with the mean removed (= SI-SNR). est, ref: [..., L] -> [...].

    SI-SDR = 10 log10(|a ref|² / |est - a ref|²) with a = <est, ref> / |ref|².
    """
    est = (est - est.mean(dim=-1, keepdim=True)).double()
    ref = (ref - ref.mean(dim=-1, keepdim=True)).double()
    scale = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))


def pairwise_si_sdr(est: Tensor, ref: Tensor) -> Tensor:
    """SI-SDR of every estimate against every reference: [K, L], [K, L] -> [K_est, K_ref]."""
    return si_sdr(est[:, None, :], ref[None, :, :])


def bss_sdr(est: Tensor, ref: Tensor, filter_length: int = BSS_FILTER) -> Tensor:
    """BSS-Eval v3 SDR (fast_bss_eval) of each aligned pair est[k] vs ref[k]: [K, L] -> [K].

    The SDR of a pair only depends on that estimate and reference (the distortion filter
    projects onto the target's delayed copies), so each pair is one single-channel problem.
    Values are clamped to +-100 dB. Computed with fast_bss_eval's numpy backend: its torch
    backend's ``torch.linalg.solve`` failed intermittently ("Pivots given to lu_solve") after
    other work had changed torch's thread settings in the same process.
    """
    import fast_bss_eval

    pairs_ref = ref.detach().cpu().double().numpy()[:, None, :]
    pairs_est = est.detach().cpu().double().numpy()[:, None, :]
    sdr = fast_bss_eval.sdr(pairs_ref, pairs_est, filter_length=filter_length, clamp_db=SDR_CLAMP)
    return torch.from_numpy(sdr[:, 0]).to(est.device)


def best_permutation(scores: Tensor, groups: Sequence[Sequence[int]]) -> list[int]:
    """perm[j] = estimate assigned to reference j, maximising the summed score while only
    exchanging sources within a group. scores: [K_est, K_ref]; groups partition range(K)."""
    k = scores.shape[1]
    if sorted(i for g in groups for i in g) != list(range(k)):
        raise ValueError(f"groups {groups} do not partition {k} sources")
    perm = list(range(k))
    for group in groups:
        if len(group) > MAX_GROUP:
            raise DiffsepError(f"{len(group)} interchangeable sources: at most {MAX_GROUP}")
        best = max(
            itertools.permutations(group),
            key=lambda p: float(sum(scores[e, r] for e, r in zip(p, group, strict=True))),
        )
        for e, r in zip(best, group, strict=True):
            perm[r] = e
    return perm


@dataclass
class Scores:
    """Per-reference metrics after the permutation search (each tensor [K], in dB)."""

    perm: list[int]
    si_sdr: Tensor
    si_sdri: Tensor
    sdr: Tensor | None = None
    sdri: Tensor | None = None
    quality: dict[str, Tensor] = field(default_factory=dict)  # pesq_wb, estoi


def score_sources(
    est: Tensor,
    ref: Tensor,
    mix: Tensor,
    groups: Sequence[Sequence[int]],
    *,
    sdr: bool = True,
    quality: Callable[[Tensor, Tensor], dict[str, Tensor]] | None = None,
) -> Scores:
    """Score estimates [K, L] against references [K, L] of mixture [L]. The permutation is the
    one maximising the mean SI-SDR within groups; SDR and ``quality(est, ref)`` (perceptual
    scores, per reference) use the same assignment."""
    if est.shape != ref.shape or mix.shape[-1] != ref.shape[-1]:
        raise ValueError(f"shapes differ: est {tuple(est.shape)}, ref {tuple(ref.shape)}")
    perm = best_permutation(pairwise_si_sdr(est, ref), groups)
    est = est[perm]
    mixes = mix.expand_as(ref)
    value = si_sdr(est, ref)
    out = Scores(perm, value, value - si_sdr(mixes, ref))
    if sdr:
        out.sdr = bss_sdr(est, ref)
        out.sdri = out.sdr - bss_sdr(mixes, ref)
    if quality is not None:
        out.quality = quality(est, ref)
    return out


def distinctness(est: Tensor, groups: Sequence[Sequence[int]]) -> float | None:
    """How far apart interchangeable estimates [K, L] are: the smallest ||x_i - x_j|| /
    ||x_i + x_j|| over pairs i, j of one group. 0 when they collapsed to one signal (two
    sources of one prior returning y / 2 each: an SI-SDRi of 0 that separates nothing), about 1
    for uncorrelated sources of equal level; None where no group has two sources."""
    ratios = [
        float(torch.linalg.vector_norm(est[i] - est[j]))
        / max(float(torch.linalg.vector_norm(est[i] + est[j])), EPS)
        for g in groups
        for i, j in itertools.combinations(g, 2)
    ]
    return min(ratios) if ratios else None


# two-sided 95 % Student t quantiles t(0.975, df) for df = 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t975(df: int) -> float:
    """t(0.975, df): exact table to df 30, then the Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959963985
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


@dataclass(frozen=True)
class Summary:
    """n, mean, median and the 95 % t-interval of the mean (lo/hi are NaN for n < 2)."""

    n: int
    mean: float
    median: float
    lo: float
    hi: float


def summarize(values: Sequence[float]) -> Summary:
    """Statistics of the finite values (NaN scores, e.g. PESQ on silence, are left out)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean, median = statistics.fmean(vals), statistics.median(vals)
    if len(vals) < 2:
        return Summary(1, mean, median, math.nan, math.nan)
    half = t975(len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))
    return Summary(len(vals), mean, median, mean - half, mean + half)
