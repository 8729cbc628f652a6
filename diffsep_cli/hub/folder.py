"""A prior folder on disk: ``config.json`` + ``model.safetensors`` (+ ``README.md``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import PriorConfig
from ..core.prior import Prior
from ..errors import DiffsepError
from .registry import CARD as CARD_NAME
from .registry import CONFIG as CONFIG_NAME
from .registry import WEIGHTS as WEIGHTS_NAME

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "load_module_dir",
    "load_prior_dir",
    "save_module",
    "save_prior",
]


class Saves(Protocol):
    def save(self, path: str | Path) -> None: ...


M = TypeVar("M", bound=nn.Module)


def save_module(
    config: Saves, module: nn.Module, out_dir: str | Path, card: str | None = None
) -> Path:
    """Write ``config.json`` + ``module``'s weights as ``model.safetensors`` (+ ``README.md``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_NAME)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    if card is not None:
        (out / CARD_NAME).write_text(card)
    return out


def load_module_dir(
    path: str | Path, build: Callable[[Path], M], weights: Callable[[M], nn.Module], what: str
) -> M:
    """``build(config path)``, then ``weights(it)`` loaded from ``model.safetensors`` (strict
    key match). A folder that does not make one (missing or truncated files, a config that
    does not match the weights) is a one-line DiffsepError naming the folder and ``what``."""
    folder = Path(path)
    try:
        obj = build(folder / CONFIG_NAME)
        weights(obj).load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, SafetensorError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DiffsepError(f"{folder}: not a loadable {what} folder ({reason})") from None
    return obj


def save_prior(prior: Prior, out_dir: str | Path, card: str | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``README.md``) into ``out_dir``."""
    return save_module(prior.config, prior.net, out_dir, card)


def load_prior_dir(path: str | Path, device: str | torch.device = "cpu") -> Prior:
    """Load a prior folder (config + safetensors weights, strict key match), in eval mode."""
    prior = load_module_dir(path, lambda c: Prior(PriorConfig.load(c)), lambda p: p.net, "prior")
    return prior.to(device).eval().requires_grad_(False)


def weights_revision(module: torch.nn.Module) -> str:
    """First 12 hex digits of the sha256 of the weights (names and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]
