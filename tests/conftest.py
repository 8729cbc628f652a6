"""Shared fixtures: tiny random priors and paths to the team's shared fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep_cli.config import NetConfig, PriorConfig
from diffsep_cli.core.prior import Prior
from diffsep_cli.hub.card import model_card
from diffsep_cli.hub.folder import save_prior

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"

# Tests interrupt CLI subprocesses with SIGINT (Ctrl-C). A shell starts background jobs with
# SIGINT ignored, and an ignored signal stays ignored across exec: handle it here, so children
# start with the default disposition (Python's KeyboardInterrupt) however pytest was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread (the joint denoiser then batches sources by prior)."""
    yield from _threads(1)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """torch on two intra-op threads (the joint denoiser then runs sources side by side)."""
    yield from _threads(2)


def tiny_prior(seed: int = 0, num_classes: int = 1, **kw: object) -> Prior:
    """A randomly initialised prior small enough for fast CPU tests."""
    torch.manual_seed(seed)
    net = NetConfig(**{**TINY_NET.__dict__, "num_classes": num_classes})
    cfg = PriorConfig(**{"net": net, "segment": 4000, **kw})  # type: ignore[arg-type]
    return Prior(cfg).eval().requires_grad_(False)


def make_prior(folder: Path, seed: int, card: bool = True) -> Path:
    """A tiny two-class prior saved as a prior folder (with a model card unless ``card``)."""
    p = tiny_prior(seed, num_classes=2, labels=("Bark", "Gong"), name="tiny")
    return save_prior(p, folder, model_card(p.config, summary="A test prior.") if card else None)


@pytest.fixture(scope="module")
def priors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two versions of the tiny prior folder, ``v1`` and ``v2`` (other weights)."""
    root = tmp_path_factory.mktemp("priors")
    return {"v1": make_prior(root / "v1", 0), "v2": make_prior(root / "v2", 1)}


@pytest.fixture
def tiny() -> Prior:
    return tiny_prior()


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (../shared absent)")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models/ folder of two tiny random priors named like the bundled ones (speech, sfx)."""
    root = tmp_path_factory.mktemp("models")
    save_prior(tiny_prior(0), root / "speech")
    save_prior(tiny_prior(1), root / "sfx")
    return root


@pytest.fixture(scope="module")
def labelled_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``models``, with a class-conditional sfx prior (classes Bark, Gong, a null class)."""
    root = tmp_path_factory.mktemp("models")
    save_prior(tiny_prior(0), root / "speech")
    save_prior(tiny_prior(1, num_classes=2, labels=("Bark", "Gong"), null_label=True), root / "sfx")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two class folders of short clips: the real example clips, cut, plus tones."""
    root = tmp_path_factory.mktemp("corpus")
    for name in ("speech", "sfx"):
        x, sr = sf.read(ROOT / "examples" / f"{name}.flac", dtype="float32")
        (root / name).mkdir()
        for i in range(3):
            sf.write(root / name / f"{name}{i}.wav", x[i * sr // 2 : i * sr // 2 + sr], sr)
    t = np.arange(22050) / 22050
    sf.write(root / "sfx" / "tone.flac", 0.3 * np.sin(2 * np.pi * 330 * t), 22050)
    (root / "sfx" / "notes.txt").write_text("not audio, ignored")
    return root
