"""Quality against wall time of every solver and step count, paired against a reference.

Runs ``diffsep bench``'s own library path (the real file pipeline, same mixtures, same seeds)
for each configuration
``SOLVER:STEPS[:ETA[:INIT[:GUIDED[:SPACING[:SEGMENT[:PRECISION[:SAMPLES[:CLASS_W]]]]]]]]`` on each
evaluation folder, keeps every per-mixture row in a JSON file (resumable: configurations
already there are skipped), then prints one table per folder: mean SI-SDRi with its 95 % CI,
the paired difference to the reference configuration with its 95 % CI, RTF, and writes a
quality-vs-time plot.

  python benchmarks/solver_sweep.py runs/dev/speech_sfx -s models/speech,models/sfx \\
      --config hybrid:50 --config dirac:25 --config dirac:50 --out runs/sweep/dev_speech_sfx.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from diffsep_cli.bench.options import BenchOptions
from diffsep_cli.bench.run import benchmark
from diffsep_cli.config import SeparateConfig
from diffsep_cli.core.metrics import t975
from diffsep_cli.core.sources import parse_sources, resolve_sources, with_classifier
from diffsep_cli.hub.api import load_prior
from diffsep_cli.hub.classifiers import resolve_classifier


def parse_config(text: str) -> SeparateConfig:
    """``dirac:50:0.5:split:3:snr:4:bf16:4:8:40`` -> SeparateConfig (eta, init, guided steps,
    spacing, segment seconds, precision, posterior samples, class-guidance weight and its
    lowest DDPM step optional). An omitted spacing is ``linear``, an omitted precision ``fp32``
    and an omitted class weight 0 (no class guidance), not the CLI's defaults, so that the
    names of runs saved before they existed keep meaning what was run; an omitted segment is
    the priors' training segment."""
    parts = text.split(":")
    solver, steps = parts[0], int(parts[1])
    eta = float(parts[2]) if len(parts) > 2 and parts[2] else None
    init = parts[3] if len(parts) > 3 and parts[3] else "auto"
    guided = int(parts[4]) if len(parts) > 4 and parts[4] else 0
    spacing = parts[5] if len(parts) > 5 and parts[5] else "linear"
    segment = float(parts[6]) if len(parts) > 6 and parts[6] else None
    precision = parts[7] if len(parts) > 7 and parts[7] else "fp32"
    samples = int(parts[8]) if len(parts) > 8 and parts[8] else 1
    class_weight = float(parts[9]) if len(parts) > 9 and parts[9] else 0.0
    class_min_step = int(parts[10]) if len(parts) > 10 and parts[10] else 0
    return SeparateConfig(
        steps=steps,
        solver=solver,
        eta=eta,
        init=init,
        guided_steps=guided,
        spacing=spacing,
        segment=segment,
        precision=precision,
        samples=samples,
        class_weight=class_weight,
        class_min_step=class_min_step,
    )


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval."""
    n = len(values)
    mean = statistics.fmean(values)
    half = t975(n - 1) * statistics.stdev(values) / math.sqrt(n) if n > 1 else math.nan
    return mean, half


def table(doc: dict[str, Any], reference: str, metric: str = "si_sdri") -> list[str]:
    """Markdown rows: config, mean ± CI, paired difference to ``reference`` ± CI, the mean
    distinctness of interchangeable sources (``core.metrics.distinctness``), RTF, wall."""
    ref = {r["mixture"]: r[metric] for r in doc["runs"].get(reference, [])}
    head = f"| config | SI-SDRi dB | paired vs {reference} | distinct | RTF | wall s/mixture |"
    lines = [head, "|---|---|---|---|---|---|"]
    for name, rows in doc["runs"].items():
        vals = [r[metric] for r in rows]
        mean, half = mean_ci(vals)
        diffs = [r[metric] - ref[r["mixture"]] for r in rows if r["mixture"] in ref]
        paired = "-"
        if diffs and name != reference:
            d, dh = mean_ci(diffs)
            paired = f"{d:+.2f} ± {dh:.2f}"
        rtf = statistics.fmean(r["rtf"] for r in rows)
        wall = statistics.fmean(r["wall_s"] for r in rows)
        apart = [r["distinct"] for r in rows if r.get("distinct") is not None]  # newer runs
        distinct = f"{statistics.fmean(apart):.2f}" if apart else "-"
        cells = f"{mean:+.2f} ± {half:.2f} | {paired} | {distinct} | {rtf:.2f} | {wall:.1f}"
        lines.append(f"| {name} | {cells} |")
    return lines


def plot(doc: dict[str, Any], path: Path, metric: str = "si_sdri") -> None:
    """SI-SDRi (mean, 95 % CI) against RTF, one line per solver / eta / init."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[float, float, float]]] = {}
    for name, rows in doc["runs"].items():
        parts = name.split(":")
        family = ":".join(parts[:1] + parts[2:])
        mean, half = mean_ci([r[metric] for r in rows])
        lines.setdefault(family, []).append((statistics.fmean(r["rtf"] for r in rows), mean, half))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, pts in sorted(lines.items()):
        pts.sort()
        ax.errorbar(
            *zip(*[(p[0], p[1]) for p in pts], strict=True),
            yerr=[p[2] for p in pts],
            marker="o",
            capsize=3,
            label=family,
        )
    ax.set_xscale("log")
    ax.set_xlabel("real-time factor (2 CPU cores)")
    ax.set_ylabel("SI-SDRi (dB), mean ± 95 % CI")
    ax.set_title(doc["folder"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument(
        "-s",
        "--sources",
        help="priors, e.g. models/speech,models/sfx (default: each mixture's sources.json)",
    )
    ap.add_argument(
        "--config",
        action="append",
        required=True,
        help="SOLVER:STEPS[:ETA[:INIT[:GUIDED[:SPACING[:SEGMENT[:PRECISION[:SAMPLES[:CLASS_W]]]]]]]]",
    )
    ap.add_argument("--reference", default="hybrid:50")
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classifier", default="auto", help="auto, none or a classifier folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    doc["folder"], doc["sources"] = str(args.folder), args.sources or "sources.json"
    doc["classifier"] = args.classifier  # class guidance's classifier (configs with CLASS_W)
    cache: dict[str, Any] = {}
    load = lambda n: cache.setdefault(n, load_prior(n, torch.device("cpu")))  # noqa: E731
    sources = args.sources.split(",") if args.sources else None
    opts = BenchOptions(sources=sources, baselines=[], limit=args.limit)
    if sources and any(parse_config(c).class_weight > 0 for c in args.config):
        src = resolve_sources(parse_sources(args.sources), load)
        if with_classifier(src, resolve_classifier(args.classifier, src.priors)).classifier is None:
            # the classifier's labels are prior names: a candidate in runs/x-sfx is not "sfx"
            print(
                f"warning: no class guidance for {args.sources} (--classifier "
                f"{args.classifier}: no two of its labels name these priors; train them with"
                " --name speech / --name sfx)",
                file=sys.stderr,
            )
    for name in args.config:
        if name in doc["runs"]:
            continue
        cfg = parse_config(name)
        cfg = dataclasses.replace(cfg, seed=args.seed, classifier=args.classifier)
        result = benchmark(args.folder, opts, cfg, torch.device("cpu"), load=load)
        doc["runs"][name] = [
            {k: r[k] for k in ("mixture", "si_sdri", "sdri", "distinct", "rtf", "wall_s")}
            for r in result.rows
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
        print("\n".join(table(doc, args.reference)[-1:]), flush=True)
    print("\n".join(table(doc, args.reference)))
    plot(doc, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
