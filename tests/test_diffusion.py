import math

import pytest
import torch

from diffsep_cli.config import DiffusionConfig, GuidanceConfig
from diffsep_cli.core.diffusion import ddpm_schedule, min_snr_weights, network_timestep, respace
from diffsep_cli.core.guidance import step_radius
from diffsep_cli.core.sampling import sample_ddpm, stacked_randn_like

FULL = ddpm_schedule(DiffusionConfig())


def test_official_constants() -> None:
    abar = FULL.alphas_cumprod
    assert abar[199].item() == pytest.approx(0.132, abs=5e-4)
    assert abar[149].item() == pytest.approx(0.320, abs=5e-4)
    assert math.sqrt(abar[149]) == pytest.approx(0.5660, abs=1e-4)
    assert FULL.posterior_std[199].item() == pytest.approx(0.1412, abs=1e-4)
    assert FULL.posterior_std[0].item() == 0.0
    assert FULL.coef_x0[0].item() == pytest.approx(1.0)  # last step returns x0_hat
    assert torch.equal(
        network_timestep(DiffusionConfig(), torch.tensor([0, 1, 199])),
        torch.tensor([0.0, 5.0, 995.0], dtype=torch.float64),
    )


@pytest.mark.parametrize(
    "t,radius",
    [
        (199, 3.215),
        (149, 2.779),
        (100, 2.271),
        (50, 1.600),
        (20, 1.029),
        (10, 0.789),
        (5, 0.665),
        (0, 0.538),
    ],
)
def test_hybrid_radius(t: int, radius: float) -> None:
    assert step_radius(FULL, 64000, GuidanceConfig())[t].item() == pytest.approx(radius, abs=2e-3)


def test_dsg_radius_has_no_floor() -> None:
    dsg = step_radius(FULL, 64000, GuidanceConfig(solver="dsg"))
    assert dsg[0].item() == 0.0
    assert dsg[199].item() == pytest.approx(math.sqrt(64000) * 0.09 * 0.1412, rel=1e-3)


@pytest.mark.parametrize("spacing", ["linear", "snr"])
@pytest.mark.parametrize("steps", [1, 2, 10, 25, 50, 199])
def test_respaced_schedule_consistent(steps: int, spacing: str) -> None:
    s = respace(FULL, steps, spacing)
    assert len(s) == steps
    assert s.timesteps[-1] == 199 and (steps == 1 or s.timesteps[0] == 0)
    assert torch.all(s.timesteps[1:] > s.timesteps[:-1])
    # abar is the base schedule's at the kept steps, and the respaced betas reproduce it
    assert torch.allclose(s.alphas_cumprod, FULL.alphas_cumprod[s.timesteps])
    assert torch.allclose(torch.cumprod(1 - s.betas, 0), s.alphas_cumprod)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), s.alphas_cumprod[:-1]])
    var = s.betas * (1 - prev) / (1 - s.alphas_cumprod)
    assert torch.allclose(s.posterior_std, var.sqrt())
    # the posterior mean weights make a_t x0 + b_t x_t exact for a noiseless x_t = x0
    ab = s.alphas_cumprod
    assert torch.allclose(s.coef_x0 + s.coef_xt * ab.sqrt(), prev.sqrt())


def test_snr_spacing_is_even_in_log_snr() -> None:
    """At 10 steps the log-SNR gaps are even (within the grid's rounding to integer t, which
    the kept steps near t = 0, where log-SNR falls fastest, cannot follow)."""
    lam = lambda s: 0.5 * torch.log(s.alphas_cumprod / (1 - s.alphas_cumprod))  # noqa: E731
    gaps = -lam(respace(FULL, 10, "snr")).diff()
    assert gaps[3:].std() / gaps[3:].mean() < 0.15
    linear = -lam(respace(FULL, 10)).diff()
    assert linear.std() / linear.mean() > 1
    with pytest.raises(ValueError, match="spacing"):
        respace(FULL, 10, "cosine")


def test_respace_full_is_identity_and_bounds() -> None:
    assert respace(FULL, 200) is FULL
    with pytest.raises(ValueError):
        respace(FULL, 0)


@pytest.mark.parametrize("steps", [200, 25])
def test_sampler_closed_form_gaussian(steps: int) -> None:
    """With the exact denoiser of N(0, s^2), x0_hat = sqrt(abar) s^2 / (abar s^2 + 1 - abar) x,
    the output variance follows v <- (a g + b)^2 v + std^2 step by step; with 200 steps it is
    close to s^2 (few steps of the "fixed small" variance lose some: DDPM behaviour)."""
    s, sched = 0.3, respace(FULL, steps)

    def gain(i: int) -> float:
        ab = float(sched.alphas_cumprod[i])
        return math.sqrt(ab) * s**2 / (ab * s**2 + 1 - ab)

    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    randn = stacked_randn_like(gens)
    ab_t = float(sched.alphas_cumprod[-1])
    var = ab_t * s**2 + 1 - ab_t
    x = randn(torch.empty(4, 20000)) * math.sqrt(var)
    out = sample_ddpm(lambda x, i: gain(i) * x, x, sched, randn_like=randn)
    for i in reversed(range(steps)):
        a, b = float(sched.coef_x0[i]), float(sched.coef_xt[i])
        var = (a * gain(i) + b) ** 2 * var + float(sched.posterior_std[i]) ** 2
    assert out.std().item() == pytest.approx(math.sqrt(var), rel=0.02)
    if steps == 200:
        assert out.std().item() == pytest.approx(s, rel=0.03)


def test_min_snr_weights() -> None:
    abar = ddpm_schedule(DiffusionConfig()).alphas_cumprod
    snr = abar / (1 - abar)
    w = min_snr_weights(abar, 5.0)
    assert torch.all(w <= 1) and torch.all(w > 0)
    assert torch.equal(w[snr <= 5], torch.ones_like(w[snr <= 5]))
    assert torch.allclose(w[snr > 5], 5 / snr[snr > 5])
    assert float(w[0]) < 0.01 and float(w[-1]) == 1.0  # clean end down-weighted
    assert torch.equal(min_snr_weights(abar, 0.0), torch.ones_like(abar))
