"""Training data: single-source clips in memory and random level-calibrated crops of them,
drawn balanced across their folders and augmented on the fly (see ``augment``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import CROP_STYLES, PEAK_LIMIT, AugmentConfig, check_choice
from ..errors import DiffsepError
from ..io.audio import find_audio, load_mono
from ..io.mixtures import MixRecipe
from ..io.mixtures import crop as event_crop
from .augment import augment, speed_factor


@dataclass
class Clips:
    """Decoded mono clips at one rate, with a class index each (0 without labels)."""

    audio: list[np.ndarray]
    labels: list[int]
    names: tuple[str, ...]  # class names (empty without labels)
    groups: list[str] = field(default_factory=list)  # each clip's folder under its root

    @property
    def seconds(self) -> float:
        return sum(len(a) for a in self.audio)


def _class_of(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            parts = path.relative_to(root).parts
            if len(parts) > 1:
                return parts[0]
    raise DiffsepError(f"{path}: with --labels-from-folders every file must sit in a class folder")


def _group_of(path: Path, roots: Sequence[Path]) -> str:
    """The folder a clip sits in, relative to its root (a package, a speaker, a class)."""
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return str(path.parent.relative_to(root))
    return str(path.parent)


def load_clips(
    paths: Sequence[str | Path],
    sample_rate: int,
    *,
    labels_from_folders: bool = False,
    shard: tuple[int, int] = (0, 1),
    min_seconds: float = 0.1,
) -> Clips:
    """Decode every audio file under ``paths`` (files or folders) to mono at ``sample_rate``.

    ``shard = (rank, world)`` keeps every world-th file, for data-parallel training.
    """
    roots = [Path(p) for p in paths]
    files = find_audio(roots)
    if not files:
        raise DiffsepError(f"no audio files in {', '.join(map(str, paths))}")
    classes = [_class_of(f, roots) for f in files] if labels_from_folders else []
    names = tuple(sorted(set(classes)))
    rank, world = shard
    audio, labels, groups = [], [], []
    for i in range(rank, len(files), world):
        x = load_mono(files[i], sample_rate)
        if len(x) >= min_seconds * sample_rate and np.abs(x).max() > 0:
            audio.append(x)
            labels.append(names.index(classes[i]) if classes else 0)
            groups.append(_group_of(files[i], roots))
    if not audio:
        raise DiffsepError("no usable (non-silent, long enough) clips found")
    return Clips(audio, labels, names, groups)


def _rebalance(
    w: np.ndarray, length: np.ndarray, keys: Sequence[object], balance: float
) -> np.ndarray:
    """Reweight the draw weights ``w`` [N] so each key's share goes as its ``length`` total **
    (1 - ``balance``), keeping the proportions within a key."""
    if balance == 0 or len(set(keys)) < 2:
        return w
    _, index = np.unique(np.asarray(keys), return_inverse=True)
    share, total = np.bincount(index, weights=w), np.bincount(index, weights=length)
    return w * (total ** (1 - balance) / share)[index]


def clip_weights(
    clips: Clips, segment: int, balance: float = 0.0, class_balance: float = 0.0
) -> np.ndarray:
    """Probability of drawing each clip [N]: by its length (long clips count half beyond one
    segment), then the groups reweighted so a group's share goes as its total ** (1 -
    ``balance``): 0 keeps shares by length, 1 draws every group equally often; then the
    classes likewise by ``class_balance`` (1: every class equally often, whatever its groups)."""
    lengths = np.array([len(a) for a in clips.audio], dtype=np.float64)
    length = np.minimum(lengths, segment) + np.maximum(lengths - segment, 0) * 0.5
    w = _rebalance(length, length, clips.groups, balance)
    w = _rebalance(w, length, clips.labels, class_balance)
    return w / w.sum()


class CropSampler:
    """Random crops of ``segment`` samples at a random RMS level (dBFS, uniform in ``level``;
    crops that would peak above ``PEAK_LIMIT`` are turned down to it, never clipped), clips
    drawn with probability proportional to their length; clips shorter than the segment are
    placed at a random offset in silence (as the paper's test mixtures are built).

    ``style`` (``CROP_STYLES``): "crop" sets the level on the whole crop, silence included;
    "clip" on the clip's own span in it, so that a short clip keeps the level it would have
    in a mixture (``io.mixtures`` levels each clip before placing it), quieter in the crop;
    "event" as "clip", of one non-silent span of the clip drawn by its length (a sound event
    as ``io.mixtures`` cuts it from a file)."""

    def __init__(
        self,
        clips: Clips,
        segment: int,
        level: tuple[float, float] = (-25.0, -20.0),
        seed: int = 0,
        min_active: float = 0.25,
        *,
        balance: float = 0.0,
        class_balance: float = 0.0,
        augment: AugmentConfig | None = None,
        rate: int = 16000,
        style: str = "crop",
    ) -> None:
        check_choice("style", style, CROP_STYLES)
        self.clips, self.segment, self.level, self.min_active = clips, segment, level, min_active
        self.style = style
        self.weights = clip_weights(clips, segment, balance, class_balance)
        self.augment, self.rate = augment, rate
        self.rng = np.random.default_rng(seed)

    def _active(self, x: np.ndarray) -> float:
        """Fraction of 20 ms frames within 40 dB of the crop's loudest frame."""
        frames = x[: len(x) // 320 * 320].reshape(-1, 320)
        energy = np.square(frames).mean(axis=1) + 1e-12
        return float(np.mean(energy > energy.max() * 1e-4)) if len(energy) else 0.0

    def _event(self, i: int, size: int) -> np.ndarray:
        """At most ``size`` samples of one non-silent span of clip ``i``, cut as
        ``io.mixtures.crop`` cuts a sound event from a file."""
        clip = self.clips.audio[i]
        recipe = MixRecipe(duration=size / self.rate, sample_rate=self.rate)
        start, n = event_crop(clip, False, self.rng, recipe)
        return clip[start : start + n]

    def crop(self) -> tuple[np.ndarray, int]:
        """One crop [segment] and its class (augmented, when asked, before its level is set)."""
        aug = self.augment
        factor = speed_factor(aug, self.rng) if aug is not None else 1.0
        size = int(np.ceil(self.segment * factor))  # played `factor` times faster
        for _ in range(10):  # silence rejection
            i = int(self.rng.choice(len(self.weights), p=self.weights))
            clip = self._event(i, size) if self.style == "event" else self.clips.audio[i]
            out = np.zeros(size, dtype=np.float32)
            span = (0, size)
            if len(clip) >= size:
                start = int(self.rng.integers(0, len(clip) - size + 1))
                out[:] = clip[start : start + size]
            else:
                start = int(self.rng.integers(0, size - len(clip) + 1))
                out[start : start + len(clip)] = clip
                span = (start, start + len(clip))
            active = self._active(out) * size / min(len(clip), size)
            if np.abs(out).max() > 0 and active >= self.min_active:
                break
        if aug is not None:
            out = augment(out, self.segment, self.rate, aug, self.rng, factor)
        lo, hi = (0, len(out))
        if self.style != "crop":  # the span, in the (re-timed) output's samples
            lo, hi = int(span[0] * len(out) / size), int(np.ceil(span[1] * len(out) / size))
        gain_db = self.rng.uniform(*self.level) - 10 * np.log10(np.mean(out[lo:hi] ** 2) + 1e-12)
        gain = min(10 ** (gain_db / 20), PEAK_LIMIT / max(float(np.abs(out).max()), 1e-12))
        out *= gain * self.rng.choice((-1.0, 1.0))
        return out, self.clips.labels[i]

    def batch(self, n: int) -> tuple[Tensor, Tensor]:
        """[n, segment] float32 crops and [n] long labels."""
        crops, labels = zip(*(self.crop() for _ in range(n)), strict=True)
        return torch.from_numpy(np.stack(crops)), torch.tensor(labels, dtype=torch.long)
