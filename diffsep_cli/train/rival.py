"""The rival margin: a prior in training should denoise another class's audio worse than that
class's own prior does.

Two independent priors separate a mixture only where each one scores its own class better
than the other's (the loss bounds -log p): a speech prior that denoises a violin better than
the sound prior does pulls the violin into the speech estimate. The rival margin is the class
margin of :mod:`.losses` between two priors: on crops of the rival's class, the loss of the
prior in training should exceed the frozen rival's loss on the same noised crops by the factor
1 + margin. Crops where the rival already wins by that much cost nothing, so the hinge acts only
on the sounds both priors claim (for speech: tonal instruments). Training still sees only
single-source audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..core.prior import Prior
from ..errors import DiffsepError
from ..hub.folder import load_prior_dir
from .data import CropSampler, load_clips


@dataclass
class Rival:
    """A frozen prior of another class and a sampler of that class's crops."""

    prior: Prior
    sampler: CropSampler
    label: int  # the rival's class for its crops (its default: null or 0)

    def batch(
        self, n: int, steps: int, gen: torch.Generator, device: str
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``n`` noised crops of the rival's class and the rival's loss on them (no gradient):
        x0 [n, L], t [n], noise [n, L] on the CPU; loss [n] on ``device``."""
        x0, _ = self.sampler.batch(n)
        t = torch.randint(0, steps, (n,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        with torch.no_grad():
            loss = self.prior(x0.to(device), t.to(device), noise.to(device), self.label)
        return x0, t, noise, loss.float()


def load_rival(
    prior_dir: str | Path, data: Sequence[str | Path], segment: int, sampler: dict[str, Any]
) -> Rival:
    """The rival prior in ``prior_dir`` (frozen, eval) and ``segment``-long crops of ``data``;
    ``sampler``: the other arguments of :class:`.data.CropSampler` (level, seed, balance, ...)."""
    prior = load_prior_dir(prior_dir).eval().requires_grad_(False)
    rate = sampler["rate"]
    if prior.config.sample_rate != rate:
        raise DiffsepError(
            f"--rival {prior_dir} runs at {prior.config.sample_rate} Hz, the prior in training"
            f" at {rate} Hz"
        )
    clips = load_clips(data, rate)
    return Rival(prior, CropSampler(clips, segment, **sampler), prior.config.default_label)
