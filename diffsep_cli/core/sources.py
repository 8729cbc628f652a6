"""``--sources`` lists: one prior (and optional class) per source, resolved to loaded priors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DiffsepError
from .classifier import SourceClassifier
from .prior import Prior


@dataclass(frozen=True)
class SourceSpec:
    """One ``PRIOR[:CLASS]`` item: PRIOR is a name, a folder or an ``org/name[@rev]`` id."""

    prior: str
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        text = text.strip()
        if not text:
            raise DiffsepError("empty source name in --sources")
        if Path(text).exists() or ":" not in text:
            return cls(text)
        prior, label = text.rsplit(":", 1)
        if not prior or not label:
            raise DiffsepError(f"bad source {text!r}: use PRIOR or PRIOR:CLASS")
        return cls(prior, label)

    @property
    def stem(self) -> str:
        """Short name for output files: the class, else the prior's last path/repo part."""
        if self.label:
            return self.label
        return Path(self.prior.split("@")[0].rstrip("/")).name or "source"


@dataclass(frozen=True)
class ResolvedSources:
    priors: list[Prior]  # one per source; the same object for sources of one prior
    labels: list[int | None]
    names: list[str]  # unique output names (speech_1, speech_2 for duplicates)
    groups: list[list[int]]  # interchangeable sources (same prior and class)
    classifier: SourceClassifier | None = None  # class guidance (core.classifier)
    classes: list[int | None] | None = None  # each source's class in the classifier


def with_classifier(src: ResolvedSources, classifier: SourceClassifier | None) -> ResolvedSources:
    """``src`` guided by ``classifier``: each source's class is its prior's name among the
    classifier's labels (None where it has none). Without two distinct classes there is
    nothing to tell apart, and the classifier is left out."""
    if classifier is None:
        return replace(src, classifier=None, classes=None)
    labels = classifier.config.labels
    classes = [labels.index(p.config.name) if p.config.name in labels else None for p in src.priors]
    if len({c for c in classes if c is not None}) < 2:
        return replace(src, classifier=None, classes=None)
    return replace(src, classifier=classifier, classes=classes)


def parse_sources(text: str) -> list[SourceSpec]:
    specs = [SourceSpec.parse(s) for s in text.split(",")]
    if not specs:
        raise DiffsepError("--sources needs at least one prior")
    return specs


def unique_names(stems: list[str]) -> list[str]:
    """Suffix duplicates: [speech, speech, sfx] -> [speech_1, speech_2, sfx]."""
    total, seen = Counter(stems), Counter[str]()
    names = []
    for s in stems:
        seen[s] += 1
        names.append(f"{s}_{seen[s]}" if total[s] > 1 else s)
    return names


def resolve_sources(specs: list[SourceSpec], load: Callable[[str], Prior]) -> ResolvedSources:
    """Load each distinct prior once and map class names to indices."""
    loaded: dict[str, Prior] = {}
    priors, labels = [], []
    for spec in specs:
        if spec.prior not in loaded:
            loaded[spec.prior] = load(spec.prior)
        prior = loaded[spec.prior]
        label: int | None = None
        if spec.label is not None:
            if spec.label not in prior.labels:
                known = ", ".join(prior.labels) or "none"
                raise DiffsepError(
                    f"prior {spec.prior!r} has no class {spec.label!r} (classes: {known})"
                )
            label = prior.labels.index(spec.label)
        priors.append(prior)
        labels.append(label)
    rates = {p.config.sample_rate for p in priors}
    if len(rates) > 1:
        raise DiffsepError(f"priors at different sample rates {sorted(rates)} cannot mix")
    keys = [(id(p), lab) for p, lab in zip(priors, labels, strict=True)]
    groups = [[i for i, k in enumerate(keys) if k == key] for key in dict.fromkeys(keys)]
    names = unique_names([s.stem for s in specs])
    return ResolvedSources(priors, labels, names, groups)
