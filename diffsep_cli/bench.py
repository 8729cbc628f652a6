"""``diffsep bench``: separate (or read) every mixture of a folder, run baselines side by side,
score each system with the same code and measure its cost. Returns rows; never prints.

A dataset folder holds one subfolder per mixture: ``mix.wav``, references (``s1.wav``..., else
``real_*.wav``) and optionally ``sources.json`` naming the prior of each reference.
"""

from __future__ import annotations

import hashlib
import re
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import baselines as bl
from .audio import find_audio, load_mono, resample, save_audio
from .config import SeparateConfig
from .errors import DiffsepError
from .metrics import available_quality, score_sources, summarize
from .mixtures import Item, discover, load_estimates, load_item_audio
from .sources import ResolvedSources, SourceSpec

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SYSTEM = "diffsep"
BASELINES = ("mixture", "oracle-irm", "nmf")
METRICS = ("si_sdr", "si_sdri", "sdr", "sdri", "pesq_wb", "estoi")


@dataclass
class BenchOptions:
    sources: list[str] | None = None  # one list for every mixture (overrides sources.json)
    refs: str | None = None  # reference glob (None: s[0-9]*.wav, else real_*.wav)
    estimates: dict[str, str] = field(default_factory=dict)  # system name -> glob
    separate: bool = True  # run diffsep (only where no estimates are given)
    baselines: list[str] = field(default_factory=lambda: ["mixture", "oracle-irm"])
    nmf_train: dict[str, Path] = field(default_factory=dict)  # class -> single-source folder
    nmf: bl.NMFConfig = field(default_factory=bl.NMFConfig)
    keep: Path | None = None  # write every system's estimates here
    overwrite: bool = False
    limit: int | None = None


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any]


def class_key(spec: str) -> str:
    """Prior name (last part of a path or id) plus ``:CLASS``: speech, sfx, sfx:Bark."""
    s = SourceSpec.parse(spec)
    stem = Path(s.prior.split("@")[0].rstrip("/")).name or s.prior
    return f"{stem}:{s.label}" if s.label else stem


def spec_groups(specs: list[str] | None, k: int) -> list[list[int]]:
    """Interchangeable sources (same prior and class); all of them when priors are unknown."""
    if specs is None:
        return [list(range(k))]
    keys = [SourceSpec.parse(s) for s in specs]
    return [[i for i, x in enumerate(keys) if x == key] for key in dict.fromkeys(keys)]


def task_name(specs: list[str] | None, k: int) -> str:
    return "+".join(sorted(class_key(s) for s in specs)) if specs else f"{k} sources"


def weights_revision(module: torch.nn.Module) -> str:
    """First 12 hex digits of the sha256 of the weights (names and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


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
    from .sources import parse_sources, resolve_sources

    key = tuple(specs)
    if key not in ctx.resolved:
        ctx.resolved[key] = resolve_sources(parse_sources(",".join(specs)), ctx.load)
        for spec, prior in zip(specs, ctx.resolved[key].priors, strict=True):
            ctx.revisions.setdefault(spec, weights_revision(prior))
    return ctx.resolved[key]


def run_diffsep(item: Item, rate: int, length: int, ctx: Context) -> tuple[Tensor, dict[str, Any]]:
    """Separate the mixture file exactly as ``diffsep separate`` does, then read the outputs."""
    from .pipeline import separate_file

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


def _mean(values: Tensor | None) -> float | None:
    return None if values is None else float(values.mean())


def make_row(
    item: Item,
    system: str,
    rate: int,
    est: Tensor,
    refs: Tensor,
    mix: Tensor,
    cost: dict[str, Any],
    quality: list[str],
) -> dict[str, Any]:
    """Score one system on one mixture: per-source metrics and their means, plus the cost."""
    k = len(item.refs)
    s = score_sources(est, refs, mix, spec_groups(item.specs, k), sample_rate=rate, quality=quality)
    values = {"si_sdr": s.si_sdr, "si_sdri": s.si_sdri, "sdr": s.sdr, "sdri": s.sdri, **s.quality}
    sources = [
        {
            "ref": ref.name,
            "prior": item.specs[j] if item.specs else None,
            "estimate": s.perm[j],
            **{m: float(v[j]) for m, v in values.items() if v is not None},
        }
        for j, ref in enumerate(item.refs)
    ]
    duration = mix.shape[-1] / rate
    wall = cost.get("wall_s")
    return {
        "mixture": item.name,
        "task": task_name(item.specs, k),
        "system": system,
        **{m: _mean(v) for m, v in values.items()},
        "duration_s": duration,
        **cost,
        "rtf": None if wall is None else wall / duration,
        "sources": sources,
    }


def summarize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task and system: n, each metric's mean / median / 95 % t-interval, speed, memory."""
    keys = sorted(dict.fromkeys((r["task"], r["system"]) for r in rows), key=lambda t: t[0])
    out = []
    for task, system in keys:
        sel = [r for r in rows if r["task"] == task and r["system"] == system]
        stats = {
            m: asdict(summarize([r[m] for r in sel]))
            for m in (*METRICS, "rtf", "wall_s")
            if any(r.get(m) is not None for r in sel)
        }
        peaks = {
            m: max((r[m] for r in sel if r.get(m) is not None), default=None)
            for m in ("peak_rss_mb", "peak_gpu_mb")
        }
        first = sel[0]
        info = {m: first.get(m) for m in ("steps", "device", "priors")}
        out.append({"task": task, "system": system, "n": len(sel), **stats, **peaks, **info})
    return out


def check_inputs(items: list[Item], systems: list[str], opts: BenchOptions) -> None:
    """Refuse, before any work, what cannot run: unknown priors, missing NMF folders, --keep."""
    needs_specs = SYSTEM in systems or "nmf" in systems
    for item in items:
        if needs_specs and item.specs is None:
            raise DiffsepError(f"{item.mix.parent}: no sources.json; give --sources")
        if "nmf" in systems and item.specs is not None:
            for spec in item.specs:
                nmf_key(spec, opts.nmf_train)
    keep = opts.keep
    if keep is not None and keep.exists() and any(keep.iterdir()) and not opts.overwrite:
        raise DiffsepError(f"{keep} is not empty (use --overwrite)")


def _setup(
    items: list[Item], opts: BenchOptions, ctx: Context, systems: list[str]
) -> dict[str, Any]:
    """Train the NMF dictionaries the items need (if asked); returns the NMF part of meta."""
    if "nmf" not in systems:
        return {}
    used = {nmf_key(s, opts.nmf_train) for it in items for s in it.specs or []}
    start = time.perf_counter()
    train = {k: Path(v) for k, v in opts.nmf_train.items() if k in used}
    ctx.dictionaries = train_nmf(train, opts.nmf, ctx.progress)
    dirs = {k: str(v) for k, v in train.items()}
    return {"nmf": {**asdict(opts.nmf), "train": dirs, "train_s": time.perf_counter() - start}}


def benchmark(
    folder: Path,
    opts: BenchOptions,
    cfg: SeparateConfig,
    device: torch.device,
    *,
    load: Callable[[str], Any] | None = None,
    progress: Progress = lambda stage, done, total: None,
) -> BenchResult:
    """Run and score every system on every mixture of ``folder``: one row per (mixture,
    system) with per-source scores, means and cost; a summary per task and system."""
    items = discover(
        folder,
        refs_glob=opts.refs,
        estimates=opts.estimates,
        sources=opts.sources,
        limit=opts.limit,
    )
    systems = [*(opts.estimates or ([SYSTEM] if opts.separate else [])), *opts.baselines]
    if not systems:
        raise DiffsepError("nothing to score: no separation, --estimates or --baselines")
    check_inputs(items, systems, opts)
    if load is None:
        from .hub import load_prior

        load = lambda name: load_prior(name, device)  # noqa: E731
    quality, rows = available_quality(), []
    with tempfile.TemporaryDirectory(prefix="diffsep-bench-") as tmp:
        ctx = Context(opts, cfg, device, load, opts.keep or Path(tmp), progress)
        extra = _setup(items, opts, ctx, systems)
        for i, item in enumerate(items):
            rate, mix_np, refs_np = load_item_audio(item)
            mix, refs = torch.from_numpy(mix_np), torch.from_numpy(refs_np)
            for system in systems:
                est, cost = run_system(system, item, rate, mix, refs, ctx)
                rows.append(make_row(item, system, rate, est, refs, mix, cost, quality))
            progress("mixtures", i + 1, len(items))
    meta = {
        "folder": str(folder),
        "mixtures": len(items),
        "systems": systems,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "separate": asdict(cfg),
        "priors": [{"spec": s, "revision": r} for s, r in ctx.revisions.items()],
        "metrics": "SI-SDR (zero-mean, eps 1e-8); SDR: BSS-Eval v3 via fast_bss_eval (512 taps);"
        " permutation maximising mean SI-SDR within groups of the same prior",
        "ci": "95 % Student-t interval of the mean over mixtures",
        "quality": quality,
        **extra,
    }
    return BenchResult(rows, summarize_rows(rows), meta)
