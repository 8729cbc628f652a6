"""Training a source classifier (``core.classifier``): level-calibrated crops of each class's
single-source folders, each diffused to a random DDPM step, cross-entropy on the class; then
its balanced accuracy on held-out crops at a few noise levels (what the card reports).

With ``leak`` a share of the crops carries a crop of another class beneath it, and the target
is each class's share of the energy: the classifier then scores how *pure* a source is, and
its guidance pushes a leak out of a source estimate rather than only its class (issue 13)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import AUGMENTS, PRECISIONS, ClassifierConfig, check_choice
from ..core.classifier import SourceClassifier
from ..core.devices import autocast, precision_used
from ..core.diffusion import ddpm_schedule, q_sample
from .data import CropSampler, load_clips
from .interrupt import sigterm_as_interrupt

EVAL_STEPS = (20, 60, 100, 150)  # DDPM steps (of 200) of the held-out accuracy


@dataclass(frozen=True)
class ClassifierRun:
    classifier: SourceClassifier
    accuracy: dict[int, float]  # held-out balanced accuracy per DDPM step ({} without valid)
    steps: int  # steps done (fewer than asked when interrupted)


@dataclass(frozen=True)
class ClassifierRecipe:
    steps: int = 3000
    batch: int = 32  # crops per step, shared equally by the classes
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: float = 0.5  # group folders drawn by length (0) .. equally often (1)
    seed: int = 0
    leak: float = 0.0  # share of crops with another class's crop beneath (soft targets)
    leak_db: tuple[float, float] = (-25.0, 0.0)  # its level against the crop's, uniform
    # (class, AUGMENTS preset) pairs; a class not named takes the preset of its own name
    augment: tuple[tuple[str, str], ...] = ()
    precision: str = "auto"  # PRECISIONS: bf16 autocast where native (AMX: 1.5x faster steps)

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)
        for _, preset in self.augment:
            check_choice("augment", preset, tuple(AUGMENTS))

    def presets(self, labels: Sequence[str]) -> dict[str, str]:
        """Each class's augmentation preset (a key of ``AUGMENTS``)."""
        given = dict(self.augment)
        return {c: given.get(c, c if c in AUGMENTS else "none") for c in labels}


def add_leaks(
    x0: Tensor, y: Tensor, classes: int, prob: float, db: tuple[float, float], gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Crops x0 [B, L] of classes y [B] (blocks of equal size per class, as ``_batch`` makes
    them) -> (crops, targets [B, classes]). With probability ``prob`` a crop gets the crop one
    class block away (another class) added at a level uniform in ``db`` dB against its own,
    the sum scaled back to the crop's own RMS; its target is then each class's energy share
    (one-hot otherwise)."""
    n = len(y)
    if prob <= 0:
        return x0, F.one_hot(y, classes).float()
    other = (torch.arange(n) + n // classes) % n
    rms = x0.square().mean(dim=-1).add(1e-12).sqrt()  # [B]
    level = torch.empty(n).uniform_(*db, generator=gen)
    hit = torch.rand(n, generator=gen) < prob
    gain = torch.where(hit, 10 ** (level / 20) * rms / rms[other], torch.zeros(n))  # [B]
    mixed = x0 + gain[:, None] * x0[other]
    mixed = mixed * (rms / mixed.square().mean(dim=-1).add(1e-12).sqrt())[:, None]
    share = torch.where(hit, 1 / (1 + 10 ** (level / 10)), torch.ones(n))  # own class's share
    targets = F.one_hot(y, classes).float() * share[:, None]
    targets[torch.arange(n), y[other]] += 1 - share
    return mixed, targets


def _samplers(
    folders: Mapping[str, Sequence[Path]],
    cfg: ClassifierConfig,
    balance: float,
    seed: int,
    presets: Mapping[str, str] | None,
) -> list[CropSampler]:
    """One crop sampler per class, augmented with its preset (``presets``; None: none)."""
    out = []
    for i, label in enumerate(cfg.labels):
        clips = load_clips(folders[label], cfg.sample_rate)
        aug = AUGMENTS[presets[label]] if presets is not None else None
        out.append(CropSampler(clips, cfg.segment, seed=seed + i, balance=balance, augment=aug))
    return out


def _batch(samplers: Sequence[CropSampler], n: int) -> tuple[Tensor, Tensor]:
    """[n, segment] crops and [n] class indices, the classes sharing n equally."""
    each = max(1, n // len(samplers))
    crops = [s.batch(each)[0] for s in samplers]
    labels = torch.arange(len(samplers)).repeat_interleave(each)
    return torch.cat(crops), labels


def accuracy(
    clf: SourceClassifier, x0: Tensor, labels: Tensor, steps: Sequence[int] = EVAL_STEPS
) -> dict[int, float]:
    """Balanced accuracy (mean of per-class recalls) on x0 [N, L] diffused to each DDPM step
    (fixed noise per step)."""
    abar = ddpm_schedule(clf.config.diffusion).alphas_cumprod
    out = {}
    with torch.no_grad():
        for t in steps:
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
            pred = clf(q_sample(x0, float(abar[t]), noise), t).argmax(dim=-1)
            recalls = [(pred[labels == c] == c).float().mean() for c in labels.unique()]
            out[t] = float(torch.stack(recalls).mean())
    return out


def train_classifier(
    folders: Mapping[str, Sequence[Path]],
    cfg: ClassifierConfig,
    recipe: ClassifierRecipe,
    valid: Mapping[str, Sequence[Path]] | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
) -> ClassifierRun:
    """Train a classifier of ``cfg.labels`` (each a key of ``folders``) and measure it on
    ``valid``. Ctrl-C / SIGTERM end the training early, with the weights so far."""
    torch.manual_seed(recipe.seed)
    clf = SourceClassifier(cfg)
    samplers = _samplers(folders, cfg, recipe.balance, recipe.seed, recipe.presets(cfg.labels))
    abar = ddpm_schedule(cfg.diffusion).alphas_cumprod.float()
    opt = torch.optim.AdamW(clf.parameters(), recipe.lr, weight_decay=recipe.weight_decay)
    precision = precision_used(torch.device("cpu"), recipe.precision)  # once, not every step
    start, running = time.monotonic(), 0.0
    done, gen = 0, torch.Generator().manual_seed(recipe.seed)
    try:
        with sigterm_as_interrupt():
            for step in range(recipe.steps):
                for group in opt.param_groups:  # constant, then linear to 0 over the last half
                    group["lr"] = recipe.lr * min(1.0, 2 * (1 - step / recipe.steps))
                x0, y = _batch(samplers, recipe.batch)
                x0, target = add_leaks(x0, y, len(samplers), recipe.leak, recipe.leak_db, gen)
                t = torch.randint(0, cfg.diffusion.steps, (len(y),))
                x_t = q_sample(x0, abar[t][:, None], torch.randn_like(x0))
                with autocast(torch.device("cpu"), precision):
                    loss = F.cross_entropy(clf(x_t, t).float(), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running, done = 0.98 * running + 0.02 * loss.item(), step + 1
                if log is not None and done % 50 == 0:
                    smooth = running / (1 - 0.98**done)
                    log({"step": done, "loss": smooth, "seconds": time.monotonic() - start})
    except KeyboardInterrupt:
        pass
    clf.eval()
    if not valid or not done:
        return ClassifierRun(clf, {}, done)
    x0, y = _batch(_samplers(valid, cfg, recipe.balance, seed=10_000, presets=None), 128)
    return ClassifierRun(clf, accuracy(clf, x0, y), done)


def classifier_card(
    run: ClassifierRun, folders: Mapping[str, Sequence[Path]], recipe: ClassifierRecipe
) -> str:
    """The classifier's model card: what it tells apart, its data, recipe and accuracy."""
    cfg = run.classifier.config
    params = sum(p.numel() for p in run.classifier.parameters())
    data = "\n".join(f"- {name}: {', '.join(map(str, folders[name]))}" for name in cfg.labels)
    acc = "\n".join(f"| {t} | {a:.3f} |" for t, a in run.accuracy.items()) or "| - | - |"
    lo, hi = recipe.leak_db
    leaks = (
        f"; {recipe.leak:.0%} of crops with another class's crop {lo:g} to {hi:g} dB beneath"
        " (targets: energy shares)"
        if recipe.leak
        else ""
    )
    augment = ", ".join(f"{c} {p}" for c, p in recipe.presets(cfg.labels).items())
    return f"""---
library_name: diffsep
tags: [source-classifier, class-guidance]
---
# Source classifier: {" / ".join(cfg.labels)}

A noise-conditional classifier ({params} parameters) of which prior's class a noisy waveform
x_t holds, for class guidance in `diffsep separate` (`--classifier`, `--class-weight`): each
source whose prior is named {", ".join(cfg.labels)} is moved towards its own class.

Training data (single-source audio, {cfg.sample_rate} Hz crops of {cfg.segment} samples):
{data}

Recipe: {run.steps} steps, batch {recipe.batch}, AdamW lr {recipe.lr} (constant, then linear
to 0 over the second half), group balance {recipe.balance}, seed {recipe.seed}{leaks};
augmentation presets: {augment}; arithmetic {precision_used(torch.device("cpu"), recipe.precision)}.

Held-out balanced accuracy by DDPM step (of {cfg.diffusion.steps}):

| step | accuracy |
|---|---|
{acc}
"""
