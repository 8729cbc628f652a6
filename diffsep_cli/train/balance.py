"""Per-noise-level loss balancing: every diffusion step gets an equal say in the gradient.

The eps-MSE of a prior falls ~50x from DDPM step 20 to step 199 (the noise hides the crop:
predicting the noise becomes easy), and Min-SNR-gamma only damps the low-noise end, so the
high-noise steps, where a separation's sources are assigned, carry little of the gradient.
``StepBalance`` keeps a running mean of the per-item loss in buckets of steps and divides
each step's weight by it (as EDM2, Karras et al. 2024, does with a learned per-sigma
uncertainty; here a bias-corrected exponential mean), so each bucket's expected weighted loss
is equal. ``strength`` interpolates geometrically between the base weights (0) and full
balance (1). The weights are rescaled so the expected total loss equals the base weighting's:
the gradient scale, and so gradient clipping and the lr, keep their meaning.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class StepBalance:
    """Running per-bucket means of the unweighted loss and the balanced weights from them.

    steps: T diffusion steps, split into ``buckets`` equal runs of steps; ``decay``: the
    exponential mean's factor per observation of a bucket (0.99: the last ~100 items)."""

    def __init__(self, steps: int, strength: float, buckets: int = 40, decay: float = 0.99):
        if not 0 < strength <= 1:
            raise ValueError("strength must be in (0, 1]")
        self.steps, self.strength, self.decay = steps, strength, decay
        self.buckets = min(buckets, steps)
        self.total = torch.zeros(self.buckets, dtype=torch.float64)  # decayed sums of losses
        self.count = torch.zeros(self.buckets, dtype=torch.float64)  # decayed sums of ones

    def bucket(self, t: Tensor) -> Tensor:
        """Bucket of each step. t: [B] long -> [B] long."""
        return t.long() * self.buckets // self.steps

    def observe(self, t: Tensor, loss: Tensor) -> None:
        """Fold in a batch's per-item losses. t: [B] steps; loss: [B] unweighted eps-MSE."""
        values = loss.detach().cpu().tolist()
        for b, value in zip(self.bucket(t.cpu()).tolist(), values, strict=True):
            self.total[b] = self.decay * self.total[b] + value
            self.count[b] = self.decay * self.count[b] + 1.0

    def means(self) -> Tensor | None:
        """Each bucket's running mean loss [buckets], or None before any observation. Buckets
        not seen yet take the log-linear interpolation of their seen neighbours (flat beyond
        the outermost ones)."""
        seen = self.count > 0
        if not bool(seen.any()):
            return None
        idx = torch.arange(self.buckets)
        logm = (self.total[seen] / self.count[seen]).clamp_min(1e-12).log()
        filled = np.interp(idx.numpy(), idx[seen].numpy(), logm.numpy())
        return torch.from_numpy(filled).exp()

    def weights(self, base: Tensor) -> Tensor:
        """Balanced per-step weights [T] from the base weights [T] (e.g. Min-SNR): base *
        (base * m)^-strength, m the step's running mean loss, scaled so that sum(w * m) =
        sum(base * m). The base weights before the first observation."""
        means = self.means()
        if means is None:
            return base
        m = means[self.bucket(torch.arange(self.steps))].to(base.dtype).clamp_min(1e-12)
        w = base * (base * m) ** -self.strength
        return w * (base * m).sum() / (w * m).sum()

    def state_dict(self) -> dict[str, Tensor]:
        return {"total": self.total.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state["total"].shape != self.total.shape:
            raise ValueError("step balance state has another number of buckets")
        self.total, self.count = state["total"].clone(), state["count"].clone()
