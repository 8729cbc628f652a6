"""Extra training losses of class-conditional priors.

A class-conditional prior separates two classes only if its denoising loss under the true class
is lower than under the other one (the loss bounds -log p(x | class)): a prior whose classes
score alike splits a mixture evenly. ``class_margin_loss`` asks for that directly, an
outlier-exposure-style hinge (Hendrycks et al. 2019, there on likelihoods) on the ratio of the
two losses, computed on the same noised crops.
"""

from __future__ import annotations

import torch
from torch import Tensor


def wrong_labels(labels: Tensor, num_classes: int, null: int, gen: torch.Generator) -> Tensor:
    """A random class other than each item's own, among the ``num_classes`` real ones; items
    of the null class (label dropout) keep the null class. labels: [B] -> [B]."""
    shift = torch.randint(1, max(num_classes, 2), labels.shape, generator=gen)
    wrong = (labels + shift) % num_classes
    return torch.where(labels == null, labels, wrong)


def margin_at(abar: Tensor, margin: float, gamma: float = 5.0) -> Tensor:
    """The margin asked of each item, ``margin`` * min(SNR_t, gamma) / gamma, SNR_t =
    abar / (1 - abar): in full where the crop shows through the noise, shrinking with the
    signal where no prior can tell classes apart (the bundled pair's own contrast falls from
    ~0.14 at DDPM step 20 to ~0.02 at 199). abar: [B] -> [B]."""
    return margin * (abar / (1 - abar) / gamma).clamp(max=1.0)


def class_margin_loss(own: Tensor, wrong: Tensor, margin: float | Tensor, mask: Tensor) -> Tensor:
    """Mean over ``mask`` of relu(log(1 + margin) - log(wrong / own)): zero once the loss under
    a wrong class exceeds the loss under the item's own class by the factor 1 + margin.
    own, wrong: per-item losses [B] of the same noised crops; margin: a float or [B];
    mask: [B] bool."""
    if not bool(mask.any()):
        return own.new_zeros(())
    gap = torch.log(wrong.clamp_min(1e-12)) - torch.log(own.clamp_min(1e-12))
    return torch.relu(torch.log1p(torch.as_tensor(margin, dtype=gap.dtype)) - gap)[mask].mean()
