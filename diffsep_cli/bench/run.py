"""``diffsep bench``: separate (or read) every mixture of a folder, run baselines side by side,
score each system with the same code and measure its cost. Returns rows; never prints.

A dataset folder holds one subfolder per mixture: ``mix.wav``, references (``s1.wav``..., else
``real_*.wav``) and optionally ``sources.json`` naming the prior of each reference.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import SeparateConfig
from ..core.devices import precision_used
from ..core.metrics import distinctness, score_sources, summarize
from ..core.sources import SourceSpec
from ..errors import DiffsepError
from ..io.mixtures import Item, discover, load_item_audio
from .options import SYSTEM, BenchOptions
from .quality import available_quality, quality_scores
from .systems import (
    Context,
    Progress,
    class_key,
    nmf_key,
    run_system,
    train_nmf,
)

METRICS = ("si_sdr", "si_sdri", "sdr", "sdri", "pesq_wb", "estoi", "distinct")


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any]


def spec_groups(specs: list[str] | None, k: int) -> list[list[int]]:
    """Interchangeable sources (same prior and class); all of them when priors are unknown."""
    if specs is None:
        return [list(range(k))]
    keys = [SourceSpec.parse(s) for s in specs]
    return [[i for i, x in enumerate(keys) if x == key] for key in dict.fromkeys(keys)]


def task_name(specs: list[str] | None, k: int) -> str:
    return "+".join(sorted(class_key(s) for s in specs)) if specs else f"{k} sources"


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
    scorer = partial(quality_scores, sample_rate=rate, names=quality) if quality else None
    groups = spec_groups(item.specs, k)
    s = score_sources(est, refs, mix, groups, quality=scorer)
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
        "distinct": distinctness(est, groups),  # of the interchangeable estimates; None: none
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
        from ..hub.api import load_prior

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
        "precision": precision_used(device, cfg.precision),  # what auto meant here
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
