"""The class margin of class-conditional priors: the hinge itself and that training with it
makes the classes score apart (the joint speech + sound prior's failure: classes alike)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffsep_cli.config import PRESETS, TrainConfig
from diffsep_cli.core.prior import Prior
from diffsep_cli.errors import DiffsepError
from diffsep_cli.train.data import CropSampler, load_clips
from diffsep_cli.train.losses import class_margin_loss, margin_at, wrong_labels
from diffsep_cli.train.trainer import _optimise, _State, train

from .conftest import tiny_prior


def test_wrong_labels_are_other_real_classes_and_null_stays() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3, 3, 0] * 50)  # 3 real classes, null = 3
    wrong = wrong_labels(labels, 3, 3, gen)
    real = labels != 3
    assert (wrong[real] != labels[real]).all() and (wrong[real] < 3).all()
    assert (wrong[~real] == 3).all()
    assert set(wrong[labels == 0].tolist()) == {1, 2}  # both other classes drawn


def test_margin_hinge_is_zero_past_the_margin_and_pushes_the_classes_apart() -> None:
    own = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    wrong = torch.tensor([1.5, 1.1, 0.5], requires_grad=True)
    mask = torch.tensor([True, True, False])
    loss = class_margin_loss(own, wrong, 0.2, mask)
    # item 0 is past the margin (1.5 > 1.2), item 2 is masked: the mean of 0 and item 1's
    assert math.isclose(float(loss.detach()), (math.log(1.2) - math.log(1.1)) / 2, rel_tol=1e-5)
    loss.backward()
    assert own.grad is not None and wrong.grad is not None
    assert own.grad[1] > 0 and wrong.grad[1] < 0  # descent lowers own, raises wrong
    assert own.grad[0] == 0 and own.grad[2] == 0 and wrong.grad[2] == 0
    assert float(class_margin_loss(own, wrong, 0.2, torch.zeros(3, dtype=torch.bool))) == 0


def test_the_margin_asked_shrinks_with_the_signal() -> None:
    abar = tiny_prior().schedule.alphas_cumprod  # [200], falling with the step
    m = margin_at(abar, 0.2)
    assert math.isclose(float(m[20]), 0.2) and float(m[199]) < 0.01  # SNR 0.15 at step 199
    assert bool((m[1:] <= m[:-1]).all())


def _batch(corpus: Path, segment: int) -> tuple[torch.Tensor, ...]:
    """Fixed noised crops of both classes: x0 [8, L], t [8], noise [8, L], labels [8]."""
    clips = load_clips([corpus], 16000, labels_from_folders=True)
    x0, lab = CropSampler(clips, segment, (-25, -20), seed=7).batch(8)
    gen = torch.Generator().manual_seed(7)
    t = torch.randint(5, 60, (8,), generator=gen)
    return x0, t, torch.randn(x0.shape, generator=gen), lab


def _gap(prior: Prior, batch: tuple[torch.Tensor, ...]) -> float:
    """Mean log(loss under the other class / loss under the own class) of a batch."""
    x0, t, noise, lab = batch
    with torch.no_grad():
        return float((prior(x0, t, noise, 1 - lab) / prior(x0, t, noise, lab)).log().mean())


def test_optimising_with_a_margin_makes_the_classes_score_apart(corpus: Path) -> None:
    """The same model, crops, steps and noise, optimised with and without the margin: only
    the margin run opens a gap between its own class's loss and the other class's."""
    tc = TrainConfig(lr=1e-2, warmup=0, class_margin=0.5, margin_weight=10.0)
    gaps = {}
    for margin in (0.0, 0.5):
        prior = tiny_prior(seed=3, num_classes=2).train().requires_grad_(True)
        batch = _batch(corpus, prior.config.segment)
        opt = torch.optim.AdamW(prior.parameters(), lr=tc.lr)
        st = _State(prior, copy.deepcopy(prior), prior, opt, step=0, elapsed=0.0)
        weights = torch.ones(prior.config.diffusion.steps)
        for _ in range(5):
            wrong = 1 - batch[3] if margin > 0 else None
            _optimise(st, replace(tc, class_margin=margin), batch, weights, "cpu", wrong)
        gaps[margin] = _gap(prior, batch)
    assert gaps[0.5] > 0.01 and gaps[0.5] > gaps[0.0] + 0.01, gaps


def test_training_records_the_margin_on_the_card(corpus: Path, tmp_path: Path) -> None:
    tc = TrainConfig(steps=2, batch=2, class_margin=0.5, checkpoint_every=2, valid_every=2)
    train(PRESETS["tiny"], tc, [corpus], tmp_path / "m", labels_from_folders=True)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "class margin 0.5 (weight 0.02)" in card


def test_a_margin_needs_classes(corpus: Path, tmp_path: Path) -> None:
    tc = TrainConfig(steps=1, batch=2, class_margin=0.2)
    with pytest.raises(DiffsepError, match="class-margin"):
        train(PRESETS["tiny"], tc, [corpus], tmp_path / "plain")
    with pytest.raises(ValueError):
        TrainConfig(class_margin=-1)
