"""Evaluation folders: built the way the paper does (method.md §4), reproducibly from a seed,
and read back for ``diffsep bench`` (``discover``).

Recipe per mixture (``numpy.random.default_rng([seed, index])``, so mixture i does not depend
on N): draw distinct classes (a file's class is its parent folder: a speaker or a sound group)
among the sources that share a source folder, then one file per class. Speech sources (prior
name containing "speech") are randomly cropped to 4 s; other sources keep one non-silent span
(50 ms windows, 25 ms hop, mean energy > 1e-4) drawn with probability proportional to its length,
cropped to <= 4 s. Each source gets an RMS level U[-25, -20] dBFS. The first source starts at a
random offset; each later one starts in [previous start, min(previous end, 4 s - length)], so it
overlaps the previous one. Speech-only mixtures start every source at 0 (right-padded), as the
paper's speech+speech set. The sum is scaled down (with its references) if its peak exceeds 0.95.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.sources import SourceSpec
from ..errors import DiffsepError
from .audio import audio_info, find_audio, load_mono, rms_db, save_audio
from .files import atomic_dir

Progress = Callable[[str, int, int], None]
SOURCES_FILE, META_FILE, MIX_FILE = "sources.json", "meta.json", "mix.wav"
MAX_DRAWS = 20  # redraws of a file whose crop is silent


@dataclass(frozen=True)
class MixRecipe:
    duration: float = 4.0  # seconds
    sample_rate: int = 16000
    level_low: float = -25.0  # per-source RMS level range, dBFS
    level_high: float = -20.0
    peak: float = 0.95
    min_seconds: float = 0.25  # shorter files are never drawn
    window: float = 0.05  # non-silent span detection (seconds)
    hop: float = 0.025
    energy: float = 1e-4  # mean squared amplitude of an active window


def is_speech(spec: str) -> bool:
    """Speech sources are cropped like utterances, the others like sound events."""
    prior = SourceSpec.parse(spec).prior
    return "speech" in Path(prior.split("@")[0].rstrip("/")).name.lower()


def active_spans(x: np.ndarray, rate: int, recipe: MixRecipe) -> list[tuple[int, int]]:
    """Sample ranges [start, end) of runs of windows whose mean energy exceeds the threshold."""
    win, hop = round(recipe.window * rate), round(recipe.hop * rate)
    if len(x) < win:
        return [(0, len(x))] if np.mean(x**2) > recipe.energy else []
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    active = np.mean(frames.astype(np.float64) ** 2, axis=1) > recipe.energy
    spans: list[tuple[int, int]] = []
    for i in np.flatnonzero(active):
        start, end = int(i) * hop, int(i) * hop + win
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def crop(
    x: np.ndarray, speech: bool, rng: np.random.Generator, recipe: MixRecipe
) -> tuple[int, int]:
    """(start, length) of the clip kept from ``x``: a random crop of at most ``duration``, of
    the whole file (speech) or of one non-silent span drawn in proportion to its length."""
    n = round(recipe.duration * recipe.sample_rate)
    lo, hi = 0, len(x)
    spans = [] if speech else active_spans(x, recipe.sample_rate, recipe)
    if spans:
        lengths = np.array([e - s for s, e in spans], dtype=np.float64)
        lo, hi = spans[int(rng.choice(len(spans), p=lengths / lengths.sum()))]
    return lo + int(rng.integers(0, max(0, hi - lo - n) + 1)), min(hi - lo, n)


def offsets(lengths: list[int], total: int, rng: np.random.Generator, speech: bool) -> list[int]:
    """Start of each source in the mixture; each later source overlaps the previous one."""
    if speech:
        return [0] * len(lengths)
    starts = [int(rng.integers(0, total - lengths[0] + 1))]
    for n, prev_n in zip(lengths[1:], lengths, strict=False):
        prev = starts[-1]
        lo = min(prev, total - n)
        hi = max(lo, min(prev + prev_n - 1, total - n))
        starts.append(int(rng.integers(lo, hi + 1)))
    return starts


def pools(
    src_dirs: list[Path], specs: list[str], recipe: MixRecipe
) -> tuple[list[Path], dict[Path, dict[str, list[Path]]]]:
    """Source folder of each source and, per folder, its files (>= min_seconds) by class."""
    distinct = list(dict.fromkeys(specs))
    if len(src_dirs) == len(specs):
        dirs = list(src_dirs)
    elif len(src_dirs) == len(distinct):
        dirs = [src_dirs[distinct.index(s)] for s in specs]
    elif len(src_dirs) == 1:
        dirs = src_dirs * len(specs)
    else:
        raise DiffsepError(
            f"{len(src_dirs)} source folders for {len(specs)} sources: give one per source, "
            "one per distinct prior, or one for all"
        )
    given = {d.resolve(): d for d in dirs}  # files keep the paths as given (portable meta)
    dirs = [d.resolve() for d in dirs]
    by_dir: dict[Path, dict[str, list[Path]]] = {}
    for d in dict.fromkeys(dirs):
        classes: dict[str, list[Path]] = {}
        for f in find_audio([given[d]]):
            info = audio_info(f)
            if info.frames >= recipe.min_seconds * info.samplerate:
                classes.setdefault(f.parent.name, []).append(f)
        need = dirs.count(d)
        if len(classes) < need:
            raise DiffsepError(
                f"{d}: {len(classes)} classes (subfolders) with audio, {need} distinct needed"
            )
        by_dir[d] = classes
    return dirs, by_dir


def draw_sources(
    dirs: list[Path],
    by_dir: dict[Path, dict[str, list[Path]]],
    specs: list[str],
    rng: np.random.Generator,
    recipe: MixRecipe,
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """One level-normalised clip per source, from distinct classes within each folder."""
    chosen: dict[Path, list[str]] = {}
    for d in dict.fromkeys(dirs):
        names = sorted(by_dir[d])
        picks = rng.choice(len(names), size=dirs.count(d), replace=False)
        chosen[d] = [names[i] for i in picks]
    clips, info = [], []
    for d, spec in zip(dirs, specs, strict=True):
        cls = chosen[d].pop(0)
        for _ in range(MAX_DRAWS):
            path = by_dir[d][cls][int(rng.integers(len(by_dir[d][cls])))]
            x = load_mono(path, recipe.sample_rate)
            start, n = crop(x, is_speech(spec), rng, recipe)
            clip = x[start : start + n].astype(np.float64)
            if rms_db(clip) > -100:
                break
        else:
            raise DiffsepError(f"{d}/{cls}: only silent files drawn")
        level = float(rng.uniform(recipe.level_low, recipe.level_high))
        clips.append(clip * 10 ** ((level - rms_db(clip)) / 20))
        rate = recipe.sample_rate
        info.append(
            {
                "prior": spec,
                "file": str(path),
                "class": cls,
                "clip_start_s": start / rate,
                "clip_seconds": n / rate,
                "level_dbfs": level,
            }
        )
    return clips, info


def build_mixture(
    dirs: list[Path],
    by_dir: dict[Path, dict[str, list[Path]]],
    specs: list[str],
    rng: np.random.Generator,
    recipe: MixRecipe,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(mixture [L], references [K, L], provenance) of one mixture."""
    clips, info = draw_sources(dirs, by_dir, specs, rng, recipe)
    total = round(recipe.duration * recipe.sample_rate)
    speech_only = all(is_speech(s) for s in specs)
    starts = offsets([len(c) for c in clips], total, rng, speech_only)
    refs = np.zeros((len(clips), total))
    for k, (clip, start) in enumerate(zip(clips, starts, strict=True)):
        refs[k, start : start + len(clip)] = clip
        info[k]["offset_s"] = start / recipe.sample_rate
    peak = float(np.abs(refs.sum(0)).max())
    gain = min(1.0, recipe.peak / peak) if peak > 0 else 1.0
    refs *= gain
    meta = {"recipe": "speech+speech" if speech_only else "overlapping", "gain": gain}
    return refs.sum(0), refs, {**meta, "sources": info}


def make_mixtures(
    src_dirs: list[Path],
    out: Path,
    specs: list[str],
    n: int,
    seed: int,
    *,
    recipe: MixRecipe | None = None,
    overwrite: bool = False,
    progress: Progress = lambda stage, done, total: None,
) -> list[Path]:
    """Write ``n`` mixture folders ``out/0000/`` ... (mix.wav, s1.wav..., sources.json,
    meta.json; 32-bit float WAV) and return them. Deterministic for (sources, folders, seed)."""
    recipe = recipe or MixRecipe()
    if n < 1:
        raise DiffsepError("-n must be at least 1")
    if len(specs) < 2:
        raise DiffsepError("--sources needs at least two sources to mix")
    dirs, by_dir = pools(src_dirs, specs, recipe)
    folders = []
    with atomic_dir(out, overwrite) as tmp:
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            mix, refs, meta = build_mixture(dirs, by_dir, specs, rng, recipe)
            folder = tmp / f"{i:04d}"
            folder.mkdir()
            save_audio(folder / MIX_FILE, mix.astype(np.float32), recipe.sample_rate)
            names = [f"s{k + 1}.wav" for k in range(len(refs))]
            for name, ref, item in zip(names, refs, meta["sources"], strict=True):
                save_audio(folder / name, ref.astype(np.float32), recipe.sample_rate)
                item["ref"] = name
            (folder / SOURCES_FILE).write_text(json.dumps(dict(zip(names, specs, strict=True))))
            meta = {"seed": seed, "index": i, **asdict(recipe), **meta}
            (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
            folders.append(out / folder.name)
            progress("mixtures", i + 1, n)
    return folders


# reading an evaluation folder (``diffsep bench``)

DEFAULT_REFS = ("s[0-9]*.wav", "real_*.wav")  # s1.wav.. (not sepa_*); else real_*.wav
MAX_TRIM_S = 0.1  # files of one mixture may differ in length by at most this


@dataclass
class Item:
    """One mixture folder: its files and the prior spec of each reference (None: unknown)."""

    name: str
    mix: Path
    refs: list[Path]
    specs: list[str] | None
    estimates: dict[str, list[Path]] = field(default_factory=dict)  # system -> files


def natural_key(path: Path) -> list[Any]:
    """s2 before s10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _glob(folder: Path, pattern: str, exclude: set[Path]) -> list[Path]:
    files = (p for p in folder.glob(pattern) if p.is_file() and p not in exclude)
    return sorted(files, key=natural_key)


def read_specs(folder: Path, refs: list[Path]) -> list[str] | None:
    """Prior of each reference from sources.json ({file: prior} or a list in file order)."""
    path = folder / SOURCES_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        specs = [str(doc[r.name]) for r in refs] if isinstance(doc, dict) else list(map(str, doc))
    except (ValueError, KeyError) as exc:
        raise DiffsepError(f"{path}: no prior for reference {exc}") from None
    if len(specs) != len(refs):
        raise DiffsepError(f"{folder}: {len(specs)} sources for {len(refs)} references")
    return specs


def read_item(
    folder: Path, refs_glob: str | None, estimates: dict[str, str], sources: list[str] | None
) -> Item:
    """Files of one mixture folder; ``sources`` (one list for all) overrides sources.json."""
    mix = folder / MIX_FILE
    found = {n: _glob(folder, g, {mix}) for n, g in estimates.items()}
    taken = {mix, *(p for ps in found.values() for p in ps)}
    refs: list[Path] = []
    for pattern in [refs_glob] if refs_glob else DEFAULT_REFS:
        refs = refs or _glob(folder, pattern, taken)
    if not refs:
        raise DiffsepError(
            f"{folder}: no reference files ({refs_glob or ' or '.join(DEFAULT_REFS)})"
        )
    for name, files in found.items():
        if len(files) != len(refs):
            raise DiffsepError(f"{folder}: {len(files)} {name} estimates, {len(refs)} references")
    if sources is not None and len(sources) != len(refs):
        raise DiffsepError(f"{folder}: {len(sources)} sources for {len(refs)} references")
    specs = sources if sources is not None else read_specs(folder, refs)
    return Item(folder.name, mix, refs, specs, found)


def discover(
    folder: Path,
    *,
    refs_glob: str | None = None,
    estimates: dict[str, str] | None = None,
    sources: list[str] | None = None,
    limit: int | None = None,
) -> list[Item]:
    """Every mixture of ``folder``: its subfolders holding mix.wav, or the folder itself."""
    if not folder.is_dir():
        raise DiffsepError(f"no such folder: {folder}")
    if (folder / MIX_FILE).is_file():
        dirs = [folder]
    else:
        dirs = sorted((d for d in folder.iterdir() if (d / MIX_FILE).is_file()), key=natural_key)
    if not dirs:
        raise DiffsepError(f"{folder}: no mixtures (subfolders with {MIX_FILE})")
    return [read_item(d, refs_glob, estimates or {}, sources) for d in dirs[:limit]]


def load_item_audio(item: Item) -> tuple[int, np.ndarray, np.ndarray]:
    """(rate, mixture [L], references [K, L]) at the mixture's rate, trimmed to one length."""
    rate = int(audio_info(item.mix).samplerate)
    mix = load_mono(item.mix, rate)
    refs = [load_mono(r, rate) for r in item.refs]
    lengths = [len(mix), *map(len, refs)]
    if max(lengths) - min(lengths) > MAX_TRIM_S * rate:
        raise DiffsepError(f"{item.mix.parent}: mixture and references differ in length")
    n = min(lengths)
    for path, r in zip(item.refs, refs, strict=True):
        if not np.any(r[:n]):
            raise DiffsepError(f"{path}: silent reference (SI-SDR is undefined)")
    return rate, mix[:n], np.stack([r[:n] for r in refs])


def load_estimates(paths: list[Path], rate: int, length: int) -> np.ndarray:
    """Estimate files at ``rate``, trimmed or zero-padded to ``length``: [K, L]."""
    out = np.zeros((len(paths), length), dtype=np.float32)
    for k, p in enumerate(paths):
        x = load_mono(p, rate)
        if abs(len(x) - length) > MAX_TRIM_S * rate:
            raise DiffsepError(f"{p}: {len(x) / rate:.2f} s, the mixture {length / rate:.2f} s")
        out[k, : min(length, len(x))] = x[:length]
    return out
