"""Shared fixtures: tiny random priors and paths to the team's shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffsep_cli.config import NetConfig, PriorConfig
from diffsep_cli.prior import Prior

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"

TINY_NET = NetConfig(
    hidden=8,
    emb=16,
    heads=2,
    depths=(1, 1, 1, 1, 1),
    n_fft=62,
    hop=31,
    latent_fold=2,
    latent_sup=4,
)


def tiny_prior(seed: int = 0, num_classes: int = 1, **kw: object) -> Prior:
    """A randomly initialised prior small enough for fast CPU tests."""
    torch.manual_seed(seed)
    net = NetConfig(**{**TINY_NET.__dict__, "num_classes": num_classes})
    cfg = PriorConfig(**{"net": net, "segment": 4000, **kw})  # type: ignore[arg-type]
    return Prior(cfg).eval().requires_grad_(False)


@pytest.fixture
def tiny() -> Prior:
    return tiny_prior()


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (../shared absent)")
