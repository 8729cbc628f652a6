"""Source classifiers on disk (``config.json`` + ``model.safetensors`` + ``README.md``, as a
prior) and which one a separation uses: ``auto`` (the default) takes the bundled classifier,
``models/classifiers/NAME``, whose labels name two or more of the sources' priors; ``none``
uses none; anything else is a classifier folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import ClassifierConfig
from ..core.classifier import SourceClassifier
from ..core.prior import Prior
from ..core.sources import ResolvedSources, with_classifier
from ..errors import DiffsepError
from .api import models_dir
from .folder import load_module_dir, save_module
from .registry import CONFIG


def save_classifier(clf: SourceClassifier, out_dir: str | Path, card: str | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``README.md``) into ``out_dir``."""
    return save_module(clf.config, clf, out_dir, card)


def load_classifier_dir(path: str | Path, device: str | torch.device = "cpu") -> SourceClassifier:
    """Load a classifier folder (strict key match) in eval mode, frozen."""
    build = lambda c: SourceClassifier(ClassifierConfig.load(c))  # noqa: E731
    clf = load_module_dir(path, build, lambda m: m, "classifier")
    return clf.to(device).eval().requires_grad_(False)


def bundled_classifiers() -> list[Path]:
    root = models_dir() / "classifiers"
    return sorted(p for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []


def resolve_classifier(
    spec: str, priors: Sequence[Prior], device: str | torch.device = "cpu"
) -> SourceClassifier | None:
    """The classifier ``spec`` names (auto | none | a folder) for sources of ``priors``."""
    if spec == "none":
        return None
    if spec != "auto":
        if not Path(spec).is_dir():
            raise DiffsepError(f"--classifier {spec!r}: use auto, none or a classifier folder")
        return load_classifier_dir(spec, device)
    names = {p.config.name for p in priors}
    for folder in bundled_classifiers():
        labels = ClassifierConfig.load(folder / CONFIG).labels
        if len(names & set(labels)) >= 2:
            return load_classifier_dir(folder, device)
    return None


def guide(src: ResolvedSources, spec: str, device: str | torch.device = "cpu") -> ResolvedSources:
    """``src`` with the classifier ``spec`` names (see :func:`resolve_classifier`)."""
    return with_classifier(src, resolve_classifier(spec, src.priors, device))
