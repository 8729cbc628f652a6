"""Per-noise-level loss balancing (train.balance) and its place in the train loop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffsep_cli.config import PRESETS, DiffusionConfig, TrainConfig
from diffsep_cli.core.diffusion import ddpm_schedule, min_snr_weights
from diffsep_cli.train.balance import StepBalance
from diffsep_cli.train.trainer import train

T = 200


def _fed(strength: float, scale: torch.Tensor, rounds: int = 300) -> StepBalance:
    """A balance fed noisy losses whose mean at step t is scale[t] (exponential noise)."""
    gen = torch.Generator().manual_seed(0)
    bal = StepBalance(T, strength)
    for _ in range(rounds):
        t = torch.arange(T)
        bal.observe(t, scale * torch.empty(T).exponential_(generator=gen))
    return bal


def test_full_balance_gives_every_noise_level_an_equal_share() -> None:
    scale = torch.logspace(-1, -3, T)  # the eps-MSE falls ~100x from low to high noise
    base = min_snr_weights(ddpm_schedule(DiffusionConfig()).alphas_cumprod.float(), 5.0)
    w = _fed(1.0, scale).weights(base)
    share = w * scale  # expected weighted loss per step
    by_bucket = share.reshape(40, 5).mean(dim=1)
    # equal within the noise of ~100 exponential draws per bucket (~10 %) and the slope of
    # the scale inside a bucket (5 steps of a 100x fall over 200: ~12 %)
    assert float(by_bucket.max() / by_bucket.min()) < 1.6
    # the base weights leave the high-noise end ~30x lighter than the low-noise end
    plain = (base * scale).reshape(40, 5).mean(dim=1)
    assert float(plain.max() / plain.min()) > 10
    # the expected total is kept, so gradient clipping and the lr keep their meaning
    assert float((w * scale).sum()) == pytest.approx(float((base * scale).sum()), rel=0.1)


def test_strength_interpolates_and_unseen_levels_are_interpolated() -> None:
    scale = torch.logspace(-1, -3, T)
    base = torch.ones(T)
    half = _fed(0.5, scale).weights(base)
    ratio = float(half[-1] / half[0])  # high-noise over low-noise weight: sqrt(100) = 10
    assert 6 < ratio < 16
    fresh = StepBalance(T, 1.0)
    assert torch.equal(fresh.weights(base), base)  # nothing seen: the base weights
    fresh.observe(torch.tensor([0, 199]), torch.tensor([1.0, 0.01]))
    means = fresh.means()
    assert means is not None  # log-linear between the two seen ends: 0.1 half-way
    assert float(means[0]) == pytest.approx(1.0) and float(means[-1]) == pytest.approx(0.01)
    assert float(means[19] * means[20]) == pytest.approx(0.01, rel=1e-6)
    with pytest.raises(ValueError, match="strength"):
        StepBalance(T, 0.0)
    with pytest.raises(ValueError, match="step_balance"):
        TrainConfig(step_balance=1.5)


def test_the_balance_reaches_the_loss_and_survives_a_resume(corpus: Path, tmp_path: Path) -> None:
    cfg = PRESETS["tiny"]
    tc = TrainConfig(steps=3, batch=8, checkpoint_every=3, log_every=1, valid_every=100)
    bal = replace(tc, step_balance=1.0)
    plain = train(cfg, tc, [corpus], tmp_path / "plain")
    balanced = train(cfg, bal, [corpus], tmp_path / "bal")
    assert balanced.loss != plain.loss  # same crops, steps and noise; other weights
    state = torch.load(tmp_path / "bal" / "train" / "state.pt", weights_only=True)
    assert float(state["step_balance"]["count"].sum()) == pytest.approx(
        sum(0.99**k for k in range(3)) * 8, rel=0.5
    )
    assert "step_balance" not in torch.load(tmp_path / "plain" / "train" / "state.pt")
    # a resumed run continues from the saved means, not from nothing
    train(cfg, replace(bal, steps=4), [corpus], tmp_path / "bal", resume=True)
    after = torch.load(tmp_path / "bal" / "train" / "state.pt", weights_only=True)
    assert float(after["step_balance"]["count"].sum()) > float(state["step_balance"]["count"].sum())
    assert "noise levels balanced 1" in (tmp_path / "bal" / "README.md").read_text()
