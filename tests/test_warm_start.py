"""Warm starts: a prior grown into a class-conditional one, or into a deeper net whose new
blocks start as the identity; bad ``--depths`` are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffsep_cli.config import PRESETS, TrainConfig
from diffsep_cli.core.prior import Prior
from diffsep_cli.errors import DiffsepError
from diffsep_cli.hub.folder import load_prior_dir
from diffsep_cli.train.checkpoint import warm_start
from diffsep_cli.train.trainer import train

_TC = TrainConfig(steps=1, batch=2, checkpoint_every=1, log_every=1, valid_every=100)


def _plain(data: Path, out: Path) -> Prior:
    """A tiny unconditional prior trained one step on ``data``, saved in ``out``."""
    train(PRESETS["tiny"], _TC, [data], out)
    return load_prior_dir(out)


def test_init_grows_an_unconditional_prior_into_a_class_conditional_one(
    corpus: Path, tmp_path: Path
) -> None:
    tc, plain = _TC, _plain(corpus / "sfx", tmp_path / "plain")
    # lr 0: the weights stay where the warm start put them
    grown = tmp_path / "grown"
    train(
        PRESETS["lite"],
        replace(tc, lr=0.0),
        [corpus],
        grown,
        labels_from_folders=True,
        init=tmp_path / "plain",
    )
    prior = load_prior_dir(grown)
    assert prior.config.net == replace(plain.config.net, num_classes=2)  # not lite's
    assert prior.labels == ("sfx", "speech") and prior.config.null_label
    x = torch.randn(1, prior.config.segment, generator=torch.Generator().manual_seed(0))
    want = plain.eps(x, 50)
    for label in (0, 1, 2):  # every class, and the null class, start as the plain prior
        torch.testing.assert_close(prior.eps(x, 50, torch.tensor([label])), want)
    started = f"| initialised from | {tmp_path / 'plain'} |"
    assert started in (grown / "README.md").read_text()
    # a resumed run's card still says where the run started
    train(
        PRESETS["lite"],
        replace(tc, steps=2),
        [corpus],
        grown,
        labels_from_folders=True,
        resume=True,
    )
    assert started in (grown / "README.md").read_text()
    # and an architecture that does not fit is one clear error
    with pytest.raises(DiffsepError, match="does not match the architecture"):
        warm_start(Prior(PRESETS["lite"]), plain)


def test_init_with_depths_grows_deeper_levels_that_start_as_identity(
    corpus: Path, tmp_path: Path
) -> None:
    tc, plain = _TC, _plain(corpus / "speech", tmp_path / "plain")
    deeper = (1, 2, 3, 1, 1)  # tiny is (0, 1, 1, 1, 0): every kind of level grows
    train(
        PRESETS["lite"],
        replace(tc, lr=0.0),
        [corpus / "speech"],
        tmp_path / "deep",
        init=tmp_path / "plain",
        depths=deeper,
    )
    prior = load_prior_dir(tmp_path / "deep")
    assert prior.config.net == replace(plain.config.net, depths=deeper)
    x = torch.randn(2, prior.config.segment, generator=torch.Generator().manual_seed(0))
    for t in (3, 120):  # the grown net computes what the plain one does
        torch.testing.assert_close(prior.eps(x, t), plain.eps(x, t))
    assert (
        "grown: depths (0, 1, 1, 1, 0) -> (1, 2, 3, 1, 1)"
        in (tmp_path / "deep" / "README.md").read_text()
    )
    # training moves the new blocks off the identity: their gates get gradients
    train(
        PRESETS["lite"],
        tc,
        [corpus / "speech"],
        tmp_path / "deep2",
        init=tmp_path / "plain",
        depths=deeper,
    )
    moved = load_prior_dir(tmp_path / "deep2").net.latent[2].freatt.adaLN_modulation[1].weight
    assert moved.abs().sum() > 0
    # a shallower net cannot take its weights
    with pytest.raises(DiffsepError, match="levels can only grow deeper"):
        warm_start(
            Prior(replace(plain.config, net=replace(plain.config.net, depths=(0, 1, 0, 1, 0)))),
            plain,
        )


@pytest.mark.parametrize("depths", ["0,0,4", "0,0,-1,0,0", "a,b,c,d,e"])
def test_bad_depths_are_one_line_errors_and_write_nothing(
    corpus: Path, tmp_path: Path, depths: str
) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "diffsep_cli", "train", str(corpus), "-o", str(out)]
    proc = subprocess.run([*cmd, "--depths", depths], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "--depths" in proc.stderr
    assert not out.exists()
