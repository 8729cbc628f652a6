"""Where priors come from: a folder, the bundled ``models/``, or the Hugging Face Hub cache."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from .errors import DiffsepError
from .prior import CONFIG_NAME, WEIGHTS_NAME, Prior, load_prior_dir


def models_dir() -> Path:
    """The bundled priors: ``$DIFFSEP_MODELS`` or ``models/`` beside the package."""
    env = os.environ.get("DIFFSEP_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def bundled_priors() -> dict[str, Path]:
    root = models_dir()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG_NAME).is_file()}


def _is_prior_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def resolve_prior(name: str) -> Path:
    """A prior folder for ``name``: a folder path, then a bundled prior, else an error."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not _is_prior_dir(path):
            raise DiffsepError(f"{path} is not a prior folder ({CONFIG_NAME} + {WEIGHTS_NAME})")
        return path
    bundled = bundled_priors()
    if name in bundled:
        return bundled[name]
    known = ", ".join(bundled) or "none"
    raise DiffsepError(f"unknown prior {name!r} (bundled: {known}; or give a prior folder)")


@lru_cache(maxsize=16)
def _load_cached(path: str, device: str) -> Prior:
    return load_prior_dir(path, device)


def load_prior(name: str, device: str | torch.device = "cpu") -> Prior:
    """Load a prior by name, folder or Hub id (cached: one object per prior and device)."""
    return _load_cached(str(resolve_prior(name).resolve()), str(device))
