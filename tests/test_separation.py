import math

import pytest
import torch

from diffsep_cli.config import (
    PEAK_LIMIT,
    DiffusionConfig,
    GuidanceConfig,
    PriorConfig,
    SeparateConfig,
)
from diffsep_cli.core.diffusion import ddpm_schedule, respace
from diffsep_cli.core.guidance import guidance_loss, reconstruction_guidance, step_radius
from diffsep_cli.core.prior import Prior
from diffsep_cli.core.sampling import stacked_randn_like
from diffsep_cli.core.separation import (
    init_state,
    joint_denoiser,
    mixture_consistency,
    separate_tensor,
)
from diffsep_cli.io.pipeline import _calibrate

from .conftest import TINY_NET, tiny_prior
from .gauss import GaussPrior, filter_power, gauss_case, sdr

L = 16000


def _posterior_mean_gap(guidance: GuidanceConfig) -> tuple[float, float]:
    """(worst dB gap to the Wiener filter, worst dB gain over the mixture) of the mean of 8
    guided samples, over both sources."""
    p1, p2, s1, s2 = gauss_case()
    mix = s1 + s2
    wiener = (filter_power(p1 / (p1 + p2), mix), filter_power(p2 / (p1 + p2), mix))
    gens = [torch.Generator().manual_seed(i) for i in range(8)]
    est = separate_tensor(
        [GaussPrior(p1), GaussPrior(p2)],
        mix.repeat(8, 1),
        generator=gens,
        guidance=guidance,
        consistency="equal",
    ).mean(0)
    gaps = [sdr(w, s) - sdr(e, s) for w, e, s in zip(wiener, est, (s1, s2), strict=True)]
    gains = [sdr(e, s) - sdr(mix, s) for e, s in zip(est, (s1, s2), strict=True)]
    return max(gaps), min(gains)


def test_gaussian_sources_posterior_mean_near_wiener() -> None:
    """Two Gaussian sources with different spectra: the posterior mean is the Wiener filter.
    The mean of 8 samples keeps 1/8 of the posterior variance (-0.5 dB even for an exact
    sampler) and the guided sampler is an approximate (DPS-style) posterior sampler: we allow
    1.5 dB below Wiener (measured: about 1.1 dB), and ask for > 5 dB above the mixture."""
    gap, gain = _posterior_mean_gap(GuidanceConfig())
    assert gap < 1.5
    assert gain > 5.0


@pytest.mark.parametrize(
    "broken",
    [
        GuidanceConfig(ratio=-0.09, floor=-0.002),  # sign error
        GuidanceConfig(ratio=0.009, floor=0.0002),
    ],  # step 10x too small
)
def test_gaussian_check_catches_broken_guidance(broken: GuidanceConfig) -> None:
    gap, gain = _posterior_mean_gap(broken)
    assert gap > 1.5 or gain < 5.0


@pytest.mark.parametrize("solver", ["hybrid", "dsg", "dps"])
def test_guided_step_moves_each_source_by_the_rule(solver: str, one_thread: None) -> None:
    """One ancestral step with and without guidance differs by exactly the step rule (one
    thread: both paths then batch by prior, so their rounding is the same)."""
    a, b = tiny_prior(0), tiny_prior(1)
    sched = respace(a.schedule, 10)
    cfg = GuidanceConfig(solver=solver)
    mix = 0.1 * torch.randn(2, 3000)
    x = 0.3 * torch.randn(2, 3, 3000)
    denoise = joint_denoiser([a, b, a], [None, None, None], sched)
    guided = reconstruction_guidance(denoise, mix, sched, cfg)
    for i in (9, 4, 0):
        moved = float(sched.coef_x0[i]) * (denoise(x, i) - guided(x, i))
        if solver == "dps":
            xg = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(guidance_loss(denoise(xg, i), mix, cfg).sum(), xg)
            assert torch.allclose(moved, 1.5 * grad, atol=1e-6)
        else:
            norms = torch.linalg.vector_norm(moved, dim=-1)
            radius = float(step_radius(sched, 3000, cfg)[i])
            assert torch.allclose(norms, torch.full_like(norms, radius), rtol=1e-4, atol=1e-7)


def test_batched_equals_unbatched() -> None:
    a, b = tiny_prior(0, num_classes=2), tiny_prior(1)
    mixes = 0.1 * torch.randn(3, 2500)
    kw = dict(labels=[1, None, 0], steps=4)
    batched = separate_tensor(
        [a, b, a], mixes, generator=[torch.Generator().manual_seed(s) for s in (7, 8, 9)], **kw
    )
    assert batched.shape == (3, 3, 2500)
    for n, seed in enumerate((7, 8, 9)):
        single = separate_tensor(
            [a, b, a], mixes[n], generator=torch.Generator().manual_seed(seed), **kw
        )
        assert torch.allclose(batched[n], single[0], atol=1e-5)
    other = separate_tensor([a, b, a], mixes[0], generator=torch.Generator().manual_seed(1), **kw)
    assert not torch.allclose(other[0], batched[0], atol=1e-3)


def test_one_network_call_per_distinct_prior_per_step(monkeypatch, one_thread) -> None:
    """On one thread (or a GPU) all sources of a prior go in one call; on several CPU threads
    one call per source, side by side (tests/test_parallel.py)."""
    a, b = tiny_prior(0), tiny_prior(1)
    calls = {"a": [], "b": []}
    for name, prior in (("a", a), ("b", b)):
        orig = prior.eps
        monkeypatch.setattr(
            prior,
            "eps",
            lambda x, t, lab=None, o=orig, n=name: calls[n].append(x.shape[0]) or o(x, t, lab),
        )
    separate_tensor(
        [a, b, a, a],
        0.1 * torch.randn(2, 2000),
        steps=3,
        generator=[torch.Generator().manual_seed(0)] * 2,
    )
    assert calls == {"a": [6, 6, 6], "b": [2, 2, 2]}  # B=2 items x K_p sources, 3 steps


def test_joint_denoiser_routes_priors_and_labels() -> None:
    a, b = tiny_prior(0, num_classes=3), tiny_prior(1)
    sched = respace(a.schedule, 5)
    x = 0.2 * torch.randn(2, 3, 1500)
    out = joint_denoiser([a, b, a], [2, None, 0], sched)(x, 3)
    t = int(sched.timesteps[3])
    assert torch.allclose(out[:, 0], a.denoise(x[:, 0], t, 2), atol=1e-6)
    assert torch.allclose(out[:, 1], b.denoise(x[:, 1], t, None), atol=1e-6)
    assert torch.allclose(out[:, 2], a.denoise(x[:, 2], t, 0), atol=1e-6)


def test_init_states() -> None:
    full = ddpm_schedule(DiffusionConfig())
    mix = torch.randn(2, 500)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    x = init_state(mix, 3, "noisy-mixture", full, stacked_randn_like(gens))
    z = torch.stack(
        [torch.randn(500, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    )
    expect = math.sqrt(full.alphas_cumprod[149]) * mix + math.sqrt(1 - full.alphas_cumprod[149]) * z
    assert torch.allclose(x, expect[:, None].expand(-1, 3, -1), atol=1e-6)
    assert torch.equal(init_state(mix, 2, "mixture", full, torch.randn_like)[:, 1], mix)
    noise = init_state(mix, 2, "noise", full, torch.randn_like)
    assert noise.shape == (2, 2, 500) and not torch.allclose(noise[:, 0], noise[:, 1])
    with pytest.raises(ValueError, match="unknown init"):
        init_state(mix, 2, "zeros", full, torch.randn_like)


@pytest.mark.parametrize("length", [100, 5000])
@pytest.mark.parametrize("mode", ["equal", "mask"])
def test_mixture_consistency_sums_to_mix(mode: str, length: int) -> None:
    est, mix = torch.randn(3, 4, length), torch.randn(3, length)
    out = mixture_consistency(est, mix, mode)
    assert out.shape == est.shape
    assert torch.allclose(out.sum(1), mix, atol=1e-4)


def test_mask_consistency_drops_what_the_mixture_lacks() -> None:
    """Two tones plus estimation noise spread over all bins: the soft masks keep each tone
    and drop most of the noise (the mixture has none), the equal share keeps the noise."""
    t = torch.arange(8000) / 16000
    refs = torch.stack([torch.sin(2 * math.pi * 440 * t), 0.5 * torch.sin(2 * math.pi * 3000 * t)])
    mix = refs.sum(0)[None]
    est = (refs + 0.3 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)))[None]
    gains = {m: sdr(mixture_consistency(est, mix, m)[0], refs) for m in ("none", "equal", "mask")}
    assert gains["mask"] > gains["equal"] + 10 and gains["mask"] > gains["none"] + 10
    with pytest.raises(ValueError, match="unknown consistency"):
        mixture_consistency(est, mix, "wiener")


def test_separate_tensor_checks_choices_before_sampling() -> None:
    with pytest.raises(ValueError, match="unknown consistency"):
        separate_tensor([tiny_prior(0)], torch.randn(1000), steps=2, consistency="wiener")
    with pytest.raises(ValueError, match="unknown init"):
        separate_tensor([tiny_prior(0)], torch.randn(1000), steps=2, init="zeros")
    out = separate_tensor(
        [tiny_prior(0), tiny_prior(1)],
        0.1 * torch.randn(1000),
        steps=2,
        consistency="mask",
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (1, 2, 1000)


@pytest.mark.parametrize("solver", ["hybrid", "dsg", "dps"])
def test_silence_separates_to_finite_output(solver: str) -> None:
    out = separate_tensor(
        [tiny_prior(0), tiny_prior(1)],
        torch.zeros(1, 1200),
        steps=3,
        solver=solver,
        init="mixture",
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(out).all()


def test_argument_errors() -> None:
    a = tiny_prior(0)
    with pytest.raises(ValueError, match="labels"):
        separate_tensor([a, a], torch.zeros(100), labels=[None])
    with pytest.raises(ValueError, match="one generator per mixture"):
        separate_tensor([a, a], torch.zeros(2, 100), generator=torch.Generator())
    with pytest.raises(ValueError, match="unknown solver"):
        separate_tensor([a, a], torch.zeros(100), solver="magic")
    other = Prior(PriorConfig(net=TINY_NET, diffusion=DiffusionConfig(steps=100)))
    with pytest.raises(ValueError, match="diffusion schedule"):
        separate_tensor([a, other], torch.zeros(100))


def test_calibration_reaches_the_level_unless_the_peak_limit_is_hit() -> None:
    target = 0.1
    noise = 0.01 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    click = torch.zeros(16000)
    click[8000:8010] = 0.5  # RMS 0.0125: the level would put its peak at 4
    gain = _calibrate(torch.stack([noise, click, torch.zeros(16000)]), target)
    assert math.isclose(float((gain[0] * noise).square().mean().sqrt()), target, rel_tol=1e-4)
    assert math.isclose(float(gain[1] * click.abs().max()), PEAK_LIMIT, rel_tol=1e-6)
    assert float(gain[2]) == 0.0


@pytest.mark.parametrize("solver", ["dirac", "hybrid"])
def test_bf16_precision_runs_the_networks_in_bf16_and_stays_close(solver: str, monkeypatch) -> None:
    """bf16 autocast reaches the network's matmuls (their outputs are bf16, so the result
    differs from fp32), the sources stay fp32 and close to the fp32 ones, and sum to the
    mixture as in fp32; an unknown precision is refused."""
    priors = [tiny_prior(0), tiny_prior(1)]
    mix = 0.1 * torch.randn(2, 2500, generator=torch.Generator().manual_seed(3))
    seen: list[torch.dtype] = []
    linear = torch.nn.functional.linear

    def spy(*args, **kwargs):
        y = linear(*args, **kwargs)
        seen.append(y.dtype)
        return y

    monkeypatch.setattr(torch.nn.functional, "linear", spy)

    def run(precision: str) -> torch.Tensor:
        seen.clear()
        gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
        return separate_tensor(
            priors,
            mix,
            steps=4,
            solver=solver,
            generator=gens,
            consistency="equal",
            precision=precision,
        )

    ref = run("fp32")
    assert set(seen) == {torch.float32}
    low = run("bf16")
    assert set(seen) == {torch.bfloat16}
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert torch.allclose(low.sum(1), mix, atol=1e-6)
    gap = float((low - ref).norm() / ref.norm())
    assert 1e-5 < gap < 0.1, gap
    with pytest.raises(ValueError, match="precision"):
        run("fp16")


def test_auto_precision_follows_the_hardware(monkeypatch) -> None:
    from diffsep_cli.core import devices

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(devices, "native_bf16", lambda device, n=native: n)
        with devices.autocast(cpu, "auto"):
            assert torch.is_autocast_enabled("cpu") is native
        assert devices.precision_used(cpu, "auto") == ("bf16" if native else "fp32")
        assert devices.precision_used(cpu, "fp32") == "fp32"  # asked for: kept
        assert devices.precision_used(cpu, "bf16") == "bf16"
    with devices.autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision"):
        devices.precision_used(cpu, "fp16")
    assert SeparateConfig().precision == "auto"  # the default: bf16 where it is native


def test_low_memory_recomputes_during_the_run_only_and_changes_nothing() -> None:
    """``low_memory`` turns the networks' recompute on for the call (seen from the step
    callback), gives the same separation, and leaves the priors as they were."""
    a, b = tiny_prior(0), tiny_prior(1)
    mix = 0.1 * torch.randn(1, 1200, generator=torch.Generator().manual_seed(3))
    seen: list[bool] = []

    def run(low_memory: bool) -> torch.Tensor:
        return separate_tensor(
            [a, b],
            mix,
            steps=3,
            solver="hybrid",
            generator=torch.Generator().manual_seed(0),
            low_memory=low_memory,
            callback=lambda *_: seen.append(a.net.grad_checkpointing and b.net.grad_checkpointing),
        )

    plain = run(False)
    assert seen and not any(seen)
    seen.clear()
    low = run(True)
    assert seen and all(seen)
    assert torch.allclose(low, plain, atol=1e-5) and not torch.equal(plain, torch.zeros_like(plain))
    assert not a.net.grad_checkpointing and not b.net.grad_checkpointing
