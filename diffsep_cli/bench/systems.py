"""The systems ``diffsep bench`` compares: diffsep itself (the real file pipeline), the
mixture, the oracle IRM and NMF baselines, or estimates read from files; each returns
estimates [K, L] and its cost (wall time, peak memory, steps, device)."""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import SeparateConfig
from ..core import baselines as bl
from ..core.sources import ResolvedSources, SourceSpec
from ..errors import DiffsepError
from ..hub.folder import weights_revision
from ..io.audio import find_audio, load_mono, resample, save_audio
from ..io.mixtures import Item, load_estimates
from .options import SYSTEM, BenchOptions

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def class_key(spec: str) -> str:
    """Prior name (last part of a path or id) plus ``:CLASS``: speech, sfx, sfx:Bark."""
    s = SourceSpec.parse(spec)
    stem = Path(s.prior.split("@")[0].rstrip("/")).name or s.prior
    return f"{stem}:{s.label}" if s.label else stem


@contextmanager
def peak_memory(device: torch.device, into: dict[str, Any]) -> Iterator[None]:
    """Peak process RSS (Linux: VmHWM after resetting it) and peak CUDA memory, in MiB."""
    status = Path("/proc/self/status")
    with suppress(OSError):  # without a reset: the lifetime peak
        Path("/proc/self/clear_refs").write_text("5")
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    yield
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if status.is_file():
        hwm = re.search(r"VmHWM:\s*(\d+)", status.read_text())
        rss = int(hwm.group(1)) / 1024 if hwm else rss
    into["peak_rss_mb"] = round(rss, 1)
    into["peak_gpu_mb"] = (
        round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None
    )


def nmf_key(spec: str, trained: dict[str, Any]) -> str:
    """The --nmf-train entry of a source: ``sfx:Bark`` if given, else the prior's ``sfx``."""
    key = class_key(spec)
    for k in (key, key.split(":")[0]):
        if k in trained:
            return k
    raise DiffsepError(
        f"nmf: no --nmf-train folder for source {key!r} (given: {', '.join(trained)})"
    )


def train_nmf(dirs: dict[str, Path], cfg: bl.NMFConfig, progress: Progress) -> dict[str, Tensor]:
    """One dictionary per class from at most ``cfg.seconds`` of its folder (seeded file order,
    at most ``cfg.file_seconds`` from each file): {class: [F, rank]}."""
    rate, out = cfg.sample_rate, {}
    for done, (key, folder) in enumerate(dirs.items()):
        files = find_audio([folder])
        if not files:
            raise DiffsepError(f"nmf: no audio files in {folder}")
        mags, total = [], 0
        for i in np.random.default_rng(cfg.seed).permutation(len(files)):
            x = load_mono(files[i], rate)[: round(cfg.file_seconds * rate)]
            if len(x) > bl.N_FFT:
                mags.append(bl.magnitude(torch.from_numpy(x.copy())))
                total += len(x)
            if total >= cfg.seconds * rate:
                break
        if not mags:
            raise DiffsepError(f"nmf: no usable audio in {folder}")
        out[key] = bl.learn_dictionary(torch.cat(mags, dim=1), cfg)
        progress("nmf", done + 1, len(dirs))
    return out


@dataclass
class Context:
    opts: BenchOptions
    cfg: SeparateConfig
    device: torch.device
    load: Callable[[str], Any]  # prior spec -> Prior
    work: Path
    progress: Progress
    resolved: dict[tuple[str, ...], ResolvedSources] = field(default_factory=dict)
    dictionaries: dict[str, Tensor] = field(default_factory=dict)
    revisions: dict[str, str] = field(default_factory=dict)


def resolved_sources(specs: list[str], ctx: Context) -> ResolvedSources:
    """Load the priors of a source list once; remember their weight revisions."""
    from ..core.sources import parse_sources, resolve_sources
    from ..hub.classifiers import guide

    key = tuple(specs)
    if key not in ctx.resolved:
        src = resolve_sources(parse_sources(",".join(specs)), ctx.load)
        ctx.resolved[key] = guide(src, ctx.cfg.classifier, ctx.device)
        for spec, prior in zip(specs, ctx.resolved[key].priors, strict=True):
            ctx.revisions.setdefault(spec, weights_revision(prior))
    return ctx.resolved[key]


def run_diffsep(item: Item, rate: int, length: int, ctx: Context) -> tuple[Tensor, dict[str, Any]]:
    """Separate the mixture file exactly as ``diffsep separate`` does, then read the outputs."""
    from ..io.pipeline import separate_file

    assert item.specs is not None
    src = resolved_sources(item.specs, ctx)
    folder = ctx.work / SYSTEM / item.name
    outputs = {n: folder / f"{n}.wav" for n in src.names}
    res = separate_file(
        item.mix,
        outputs,
        src,
        ctx.cfg,
        fmt="WAV",
        subtype="FLOAT",
        overwrite=ctx.opts.overwrite or ctx.opts.keep is None,
        device=ctx.device,
        progress=ctx.progress,
    )
    est = torch.from_numpy(load_estimates([outputs[n] for n in src.names], rate, length))
    priors = ",".join(f"{class_key(s)}@{ctx.revisions[s]}" for s in dict.fromkeys(item.specs))
    return est, {
        "wall_s": res.wall,
        "steps": ctx.cfg.steps,
        "spacing": ctx.cfg.spacing,
        "device": str(ctx.device),
        "priors": priors,
    }


def run_nmf(item: Item, rate: int, mix: Tensor, ctx: Context) -> Tensor:
    """NMF baseline at its own rate, resampled back: [K, L]."""
    assert item.specs is not None
    cfg = ctx.opts.nmf
    x = torch.from_numpy(resample(mix.numpy(), rate, cfg.sample_rate).copy())
    dicts = [ctx.dictionaries[nmf_key(s, ctx.dictionaries)] for s in item.specs]
    est = bl.nmf_separate(x, dicts, cfg).numpy()
    back = torch.from_numpy(resample(est.T.copy(), cfg.sample_rate, rate).T.copy())
    out = torch.zeros(len(dicts), mix.shape[-1])
    out[:, : back.shape[-1]] = back[:, : mix.shape[-1]]
    return out


def run_system(
    system: str, item: Item, rate: int, mix: Tensor, refs: Tensor, ctx: Context
) -> tuple[Tensor, dict[str, Any]]:
    """Estimates [K, L] of one system and its cost (wall time, peak memory, steps, device)."""
    cost: dict[str, Any] = {"wall_s": None, "steps": None, "device": "cpu", "priors": None}
    if system in item.estimates:
        est = torch.from_numpy(load_estimates(item.estimates[system], rate, mix.shape[-1]))
        return est, {**cost, "device": None, "peak_rss_mb": None, "peak_gpu_mb": None}
    dev = ctx.device if system == SYSTEM else torch.device("cpu")
    with peak_memory(dev, cost):
        start = time.perf_counter()
        if system == SYSTEM:
            est, extra = run_diffsep(item, rate, mix.shape[-1], ctx)
            cost.update(extra)
        elif system == "mixture":
            est = mix.expand_as(refs).clone()
        elif system == "oracle-irm":
            est = bl.oracle_irm(mix, refs)
        else:
            est = run_nmf(item, rate, mix, ctx)
            cost["steps"] = ctx.opts.nmf.iters
        cost["wall_s"] = cost["wall_s"] if system == SYSTEM else time.perf_counter() - start
    if ctx.opts.keep is not None and system in ("oracle-irm", "nmf"):
        (ctx.work / system / item.name).mkdir(parents=True, exist_ok=True)
        for ref, x in zip(item.refs, est, strict=True):
            save_audio(ctx.work / system / item.name / ref.name, x.numpy(), rate)
    return est, cost
