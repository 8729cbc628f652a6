"""Joint K-source denoising and guided separation of mixtures (tensors only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import CONSISTENCY, FORWARD_ONLY, INITS, GuidanceConfig, check_choice
from .classifier import SourceClassifier, class_guidance
from .devices import autocast
from .diffusion import Schedule, q_sample, respace
from .metrics import best_permutation
from .parallel import side_by_side
from .prior import Prior
from .sampling import Callback, Denoise, RandnLike, sample_ddim, stacked_randn_like, zero_sum
from .solvers import solver_denoiser
from .spec import MASK_FFT, MASK_HOP, soft_masks, stft

GeneratorArg = torch.Generator | Sequence[torch.Generator] | None


@contextmanager
def _recomputing(priors: Sequence[Prior], on: bool) -> Iterator[None]:
    """The priors' networks with ``grad_checkpointing`` set to ``on``, restored afterwards."""
    before = [p.net.grad_checkpointing for p in priors]
    try:
        for p in priors:
            p.net.grad_checkpointing = on
        yield
    finally:
        for p, was in zip(priors, before, strict=True):
            p.net.grad_checkpointing = was


def joint_denoiser(
    priors: Sequence[Prior], labels: Sequence[int | None], schedule: Schedule
) -> Denoise:
    """Denoise K sources at once: [B, K, L] -> [B, K, L].

    One network call per distinct prior per step (all items and all sources of that prior
    batched together); but on a CPU with several threads, when no graph is recorded (forward-
    only steps), one call per source, the calls side by side on the cores
    (:func:`.parallel.side_by_side`): small networks use cores better that way.
    """
    groups: dict[int, tuple[Prior, list[int]]] = {}
    for k, prior in enumerate(priors):
        groups.setdefault(id(prior), (prior, []))[1].append(k)
    pairs = zip(priors, labels, strict=True)
    labs = [p.config.default_label if lab is None else lab for p, lab in pairs]
    # a prior's sources share one class (an int: the network's shared-conditioning path) or not
    plan = [
        (
            prior,
            ks,
            labs[ks[0]] if len({labs[k] for k in ks}) == 1 else torch.tensor([labs[k] for k in ks]),
        )
        for prior, ks in groups.values()
    ]
    order = [k for _, ks, _ in plan for k in ks]
    inverse = torch.argsort(torch.tensor(order))
    weights = [w for prior, _, _ in plan for w in prior.parameters()]

    def denoise(x: Tensor, i: int) -> Tensor:
        batch, k, length = x.shape
        t = int(schedule.timesteps[i])
        graph = torch.is_grad_enabled() and (
            x.requires_grad or any(w.requires_grad for w in weights)
        )
        if x.device.type == "cpu" and not graph and k > 1 and torch.get_num_threads() > 1:

            def source(j: int) -> Callable[[], Tensor]:
                return lambda: priors[j].denoise(x[:, j], t, labs[j])

            return torch.stack(side_by_side([source(j) for j in range(k)]), dim=1)

        parts = []
        for prior, ks, ls in plan:
            xs = x[:, ks].reshape(-1, length)  # [B * K_p, L], item-major
            lab = ls if isinstance(ls, int) else ls.to(x.device).repeat(batch)
            x0 = prior.denoise(xs, t, lab)
            parts.append(x0.reshape(batch, len(ks), length))
        return torch.cat(parts, dim=1)[:, inverse.to(x.device)]

    return denoise


def init_state(mix: Tensor, k: int, init: str, full: Schedule, randn_like: RandnLike) -> Tensor:
    """Initial state [B, K, L] for a mixture [B, L]; ``full`` is the un-respaced schedule.

    noisy-mixture (official): every source starts as the same sqrt(abar) y + sqrt(1-abar) z,
    z drawn once, at the noise level of DDPM step 149 of 200 (the same fraction of another
    T), whatever the respacing; split: y / K each, diffused to the last step T with zero-sum
    noise (so the sources sum to sqrt(abar_T) y, and no two start equal); noise: independent
    N(0, I) per source; mixture: copies of y.
    """
    check_choice("init", init, INITS)
    if init == "noisy-mixture":
        t_init = round(149 / 199 * (len(full) - 1))
        z = randn_like(mix)
        return q_sample(mix, float(full.alphas_cumprod[t_init]), z)[:, None].repeat(1, k, 1)
    if init == "split":
        share = (mix / k)[:, None].repeat(1, k, 1)
        return q_sample(share, float(full.alphas_cumprod[-1]), zero_sum(randn_like)(share))
    if init == "noise":
        return randn_like(mix[:, None].expand(-1, k, -1))
    return mix[:, None].repeat(1, k, 1)  # mixture


def mixture_consistency(est: Tensor, mix: Tensor, mode: str = "equal") -> Tensor:
    """Make sources [B, K, L] sum to the mixture [B, L]: ``equal`` adds an equal share of the
    residual to each source; ``mask`` splits the mixture with the soft masks
    |S_k| / sum_j |S_j| of the estimates' STFT (the residual goes where each source has its
    energy, and what the estimates hold that the mixture lacks is dropped); ``none``: as is."""
    check_choice("consistency", mode, CONSISTENCY)
    if mode == "equal":
        return est + ((mix - est.sum(dim=1)) / est.shape[1])[:, None]
    if mode == "mask":
        length = est.shape[-1]
        pad = max(0, MASK_FFT - length)  # very short inputs: zero-pad to one window
        est, mix = F.pad(est, (0, pad)), F.pad(mix, (0, pad))
        mags = stft(est.float(), MASK_FFT, MASK_HOP, root=False).abs()
        return soft_masks(mix, mags, MASK_FFT, MASK_HOP)[..., :length]
    return est  # none


def _generators(generator: GeneratorArg, batch: int) -> list[torch.Generator]:
    if generator is None:
        seeds = torch.randint(0, 2**62, (batch,)).tolist()
        return [torch.Generator().manual_seed(s) for s in seeds]
    if isinstance(generator, torch.Generator):
        if batch != 1:
            raise ValueError("pass one generator per mixture for a batch (batched == unbatched)")
        return [generator]
    return list(generator)


def _draw_generators(gens: list[torch.Generator], samples: int) -> list[torch.Generator]:
    """``samples`` generators per mixture, item-major: the mixture's own first (draw 0 is the
    one-sample result), then ones seeded from its seed (deterministic, independent)."""
    out = []
    for g in gens:
        seed = g.initial_seed()
        out.append(g)
        for d in range(1, samples):
            out.append(torch.Generator(g.device).manual_seed((seed * 1_000_003 + d) % 2**63))
    return out


def posterior_mean(draws: Tensor, groups: Sequence[Sequence[int]]) -> Tensor:
    """Mean of posterior draws [B, N, K, L] -> [B, K, L]. Sources of one group (one prior and
    class) may come out in any order in each draw: each draw is first permuted within the
    groups to match draw 0 (largest summed correlation)."""
    if len(groups) == draws.shape[2]:  # no two sources are interchangeable
        return draws.mean(dim=1)
    ref = draws[:, 0]
    aligned = [ref]
    for cur in draws[:, 1:].unbind(dim=1):  # [B, K, L] each
        aligned.append(
            torch.stack(
                [c[best_permutation(c @ r.T, groups)] for c, r in zip(cur, ref, strict=True)]
            )
        )
    return torch.stack(aligned, dim=1).mean(dim=1)


def separate_tensor(
    priors: Sequence[Prior],
    mix: Tensor,
    *,
    labels: Sequence[int | None] | None = None,
    steps: int | None = None,
    spacing: str = "snr",
    solver: str = "dirac",
    init: str = "auto",
    generator: GeneratorArg = None,
    consistency: str = "none",
    guidance: GuidanceConfig | None = None,
    callback: Callback | None = None,
    precision: str = "fp32",
    samples: int = 1,
    low_memory: bool = False,
    classifier: SourceClassifier | None = None,
    classes: Sequence[int | None] | None = None,
) -> Tensor:
    """Separate mixtures [B, L] (or [L]) into sources [B, K, L], one per prior in ``priors``.

    The mixture is used at the level it is given (the priors' training level is the caller's
    business, see ``PriorConfig.level_dbfs``). ``labels`` gives a class per source (None: the
    prior's default), ``steps`` respaces the DDPM schedule (``spacing``: see ``respace``),
    ``guidance`` holds the solver and its knobs (default: ``GuidanceConfig(solver=solver)``),
    ``generator`` is one ``torch.Generator`` per mixture, ``consistency`` makes the result
    sum to the mixture (see :func:`mixture_consistency`), ``precision`` is the networks'
    arithmetic (see :func:`~.devices.autocast`; the sampler's own stays fp32); ``samples``
    draws per mixture are averaged (:func:`posterior_mean`: an estimate of the posterior mean,
    at ``samples`` times the cost; draw 0 is the one-sample result); ``low_memory`` makes the
    guided steps recompute the networks' activations in their backward (see ``TFUNet._level``);
    ``classifier`` with one class per source in ``classes`` (None: none for that source) adds
    class guidance of strength ``guidance.class_weight`` from DDPM step ``class_min_step`` on
    (see :func:`.classifier.class_guidance`).
    """
    if not priors:
        raise ValueError("need at least one prior")
    check_choice("consistency", consistency, CONSISTENCY)  # init_state checks init
    base = priors[0].config.diffusion
    if any(p.config.diffusion != base for p in priors):
        raise ValueError("all priors must share one diffusion schedule")
    mix = mix[None] if mix.ndim == 1 else mix
    labels = list(labels) if labels is not None else [None] * len(priors)
    if len(labels) != len(priors):
        raise ValueError(f"{len(labels)} labels for {len(priors)} sources")
    guidance = GuidanceConfig(solver=solver) if guidance is None else guidance
    keys = [(id(p), lab) for p, lab in zip(priors, labels, strict=True)]
    if samples < 1:
        raise ValueError("samples must be at least 1")
    if classes is not None and len(classes) != len(priors):
        raise ValueError(f"{len(classes)} classifier classes for {len(priors)} sources")
    guidance = guidance.for_sources(shared_prior=len(set(keys)) < len(keys))
    if init == "auto":
        init = "split" if guidance.solver in FORWARD_ONLY else "noisy-mixture"
    schedule = respace(priors[0].schedule, steps or base.steps, spacing)
    batch, gens = mix.shape[0], _generators(generator, mix.shape[0])
    mix_n = mix.repeat_interleave(samples, dim=0)  # [B * N, L], item-major
    randn_like = stacked_randn_like(_draw_generators(gens, samples))
    x = init_state(mix_n, len(priors), init, priors[0].schedule, randn_like)
    denoise = joint_denoiser(priors, labels, schedule)
    if classifier is not None and classes is not None:
        denoise = class_guidance(
            denoise,
            classifier,
            classes,
            schedule,
            guidance.class_weight,
            guidance.class_min_step or 0,
        )
    denoise = solver_denoiser(denoise, mix_n, schedule, guidance)
    noise = zero_sum(randn_like) if guidance.solver == "dirac" else randn_like
    eta = float(guidance.eta or 0.0)
    with autocast(mix.device, precision), _recomputing(priors, low_memory):
        est = sample_ddim(denoise, x, schedule, eta=eta, randn_like=noise, callback=callback)
    if samples > 1:
        groups = [[k for k, key in enumerate(keys) if key == u] for u in dict.fromkeys(keys)]
        est = posterior_mean(est.reshape(batch, samples, *est.shape[1:]), groups)
    return mixture_consistency(est, mix, consistency)
