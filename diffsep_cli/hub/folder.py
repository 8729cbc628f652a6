"""A prior folder on disk: ``config.json`` + ``model.safetensors`` (+ ``README.md``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import PriorConfig
from ..core.prior import Prior
from ..errors import DiffsepError
from .registry import CARD as CARD_NAME
from .registry import CONFIG as CONFIG_NAME
from .registry import WEIGHTS as WEIGHTS_NAME

__all__ = ["CARD_NAME", "CONFIG_NAME", "WEIGHTS_NAME", "load_prior_dir", "save_prior"]


def save_prior(prior: Prior, out_dir: str | Path, card: str | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``README.md``) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prior.config.save(out / CONFIG_NAME)
    state = {k: v.detach().cpu().contiguous() for k, v in prior.net.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    if card is not None:
        (out / CARD_NAME).write_text(card)
    return out


def load_prior_dir(path: str | Path, device: str | torch.device = "cpu") -> Prior:
    """Load a prior folder (config + safetensors weights, strict key match), in eval mode.
    A folder that does not make a prior (missing or truncated files, a config that does not
    match the weights) is a one-line DiffsepError naming the folder."""
    folder = Path(path)
    try:
        prior = Prior(PriorConfig.load(folder / CONFIG_NAME))
        prior.net.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, SafetensorError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DiffsepError(f"{folder}: not a loadable prior folder ({reason})") from None
    return prior.to(device).eval().requires_grad_(False)


def weights_revision(module: torch.nn.Module) -> str:
    """First 12 hex digits of the sha256 of the weights (names and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]
