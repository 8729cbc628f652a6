"""The rival margin: a prior trained against another class's prior learns to denoise that
class's audio worse than the rival does (so the two priors stop claiming the same sounds)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffsep_cli.config import PRESETS, TrainConfig
from diffsep_cli.core.prior import Prior
from diffsep_cli.errors import DiffsepError
from diffsep_cli.hub.folder import save_prior
from diffsep_cli.train.data import CropSampler, load_clips
from diffsep_cli.train.rival import Rival
from diffsep_cli.train.trainer import _optimise, _State, train

from .conftest import tiny_prior


def _ratio(prior: Prior, rival: Prior, batch: tuple[torch.Tensor, ...]) -> float:
    """Mean log(loss of ``prior`` / loss of ``rival``) on the same noised crops."""
    x0, t, noise = batch
    with torch.no_grad():
        return float((prior(x0, t, noise) / rival(x0, t, noise)).log().mean())


def test_the_rival_margin_makes_the_prior_lose_on_the_rivals_class(corpus: Path) -> None:
    """The same model and crops, optimised with and without a rival: only with it does the
    prior's loss on the rival's audio rise above the rival's own."""
    clips = load_clips([corpus / "sfx"], 16000)
    rival_prior = tiny_prior(seed=5)
    sampler = CropSampler(clips, rival_prior.config.segment, (-25, -20), seed=3)
    own_clips = load_clips([corpus / "speech"], 16000)
    own = CropSampler(own_clips, rival_prior.config.segment, (-25, -20), seed=4)
    gen = torch.Generator().manual_seed(0)
    x0, lab = own.batch(8)
    batch = (x0, torch.randint(5, 60, (8,), generator=gen), torch.randn(x0.shape), lab)
    rx, _ = sampler.batch(8)
    probe = (rx, torch.randint(5, 60, (8,), generator=gen), torch.randn(rx.shape))
    with torch.no_grad():
        ref = rival_prior(*probe)
    weights = torch.ones(rival_prior.config.diffusion.steps)
    ratios = {}
    for use in (False, True):
        prior = tiny_prior(seed=3).train().requires_grad_(True)
        opt = torch.optim.AdamW(prior.parameters(), lr=1e-2)
        st = _State(prior, copy.deepcopy(prior), prior, opt, step=0, elapsed=0.0)
        tc = TrainConfig(lr=1e-2, warmup=0, class_margin=0.5, margin_weight=10.0)
        for _ in range(5):
            _optimise(st, tc, batch, weights, "cpu", rival=(*probe, ref) if use else None)
        ratios[use] = _ratio(prior, rival_prior, probe)
    assert ratios[True] > 0.05 and ratios[True] > ratios[False] + 0.05, ratios


def test_rival_batches_are_seeded_and_scored_without_gradient(corpus: Path) -> None:
    prior = tiny_prior(seed=1)
    clips = load_clips([corpus / "sfx"], 16000)

    def draw() -> tuple[torch.Tensor, ...]:
        sampler = CropSampler(clips, prior.config.segment, (-25, -20), seed=9)
        rival = Rival(prior.requires_grad_(True), sampler, prior.config.default_label)
        return rival.batch(4, 200, torch.Generator().manual_seed(2), "cpu")

    x0, t, noise, loss = draw()
    assert x0.shape == noise.shape == (4, prior.config.segment) and t.shape == loss.shape == (4,)
    assert not loss.requires_grad and bool((loss > 0).all())
    assert all(torch.equal(a, b) for a, b in zip(draw(), (x0, t, noise, loss), strict=True))


def test_training_against_a_rival_records_it_and_checks_it(corpus: Path, tmp_path: Path) -> None:
    rival = save_prior(tiny_prior(seed=4, segment=16000), tmp_path / "rival")
    tc = TrainConfig(steps=2, batch=2, class_margin=0.3, checkpoint_every=2, valid_every=2)
    cfg = PRESETS["tiny"]
    train(cfg, tc, [corpus / "speech"], tmp_path / "m", rival=(rival, [corpus / "sfx"]))
    card = (tmp_path / "m" / "README.md").read_text()
    assert f"class margin 0.3 (weight 0.02) against the rival prior {rival}" in card
    with pytest.raises(DiffsepError, match="--rival needs a --class-margin"):
        train(cfg, TrainConfig(steps=1, batch=2), [corpus], tmp_path / "n", rival=(rival, [corpus]))
    other = save_prior(tiny_prior(seed=4, sample_rate=8000), tmp_path / "r8k")
    with pytest.raises(DiffsepError, match="8000 Hz"):
        train(cfg, tc, [corpus / "speech"], tmp_path / "o", rival=(other, [corpus / "sfx"]))


def test_the_command_wants_both_rival_options(corpus: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "diffsep_cli", "train", str(corpus), "-o", str(tmp_path / "x")]
    run = subprocess.run([*cmd, "--rival", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode != 0 and "--rival and --rival-data go together" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "x").exists()
