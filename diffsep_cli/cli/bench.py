"""``diffsep bench`` and ``make-mixtures``: the commands, the summary table, JSON and CSV."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import SeparateConfig
from ..errors import DiffsepError
from .console import err, make_progress, out, user_errors
from .options import (
    AsJson,
    BatchSize,
    Classifier,
    ClassMinStep,
    ClassWeight,
    Consistency,
    Device,
    Eta,
    GuidedSteps,
    Init,
    Overlap,
    Overwrite,
    Precision,
    Quiet,
    Samples,
    Seed,
    Segment,
    Solver,
    Spacing,
    Steps,
    Verbose,
    config_from,
)
from .tables import finite, print_summary, write_csv

if TYPE_CHECKING:
    from ..bench.options import BenchOptions
    from ..bench.run import BenchResult


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """``a=x,b=y`` -> {a: x, b: y}."""
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DiffsepError(f"bad {what} item {part!r}: use NAME=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_estimates(globs: list[str]) -> dict[str, str]:
    """``NAME=GLOB`` or ``GLOB`` (then named after its text before the first wildcard)."""
    from ..bench.options import BASELINES, SYSTEM

    found: dict[str, str] = {}
    for g in globs:
        name, sep, pattern = g.partition("=")
        if not sep:
            name, pattern = re.split(r"[*?\[]", g)[0].rstrip("_-.") or g, g
        if name in found or name in (SYSTEM, *BASELINES):
            raise DiffsepError(f"--estimates: system name {name!r} is taken (use NAME=GLOB)")
        found[name] = pattern
    return found


def parse_baselines(text: str) -> list[str]:
    """``mixture,oracle-irm`` -> checked names (``none``: no baselines)."""
    from ..bench.options import BASELINES

    names = [b.strip() for b in text.split(",") if b.strip() not in ("", "none")]
    for b in names:
        if b not in BASELINES:
            raise DiffsepError(f"unknown baseline {b!r} (choose from {', '.join(BASELINES)})")
    return list(dict.fromkeys(names))


def bench_cmd(
    folder: Annotated[Path, typer.Argument(help="One subfolder per mixture: mix.wav + refs.")],
    sources: Annotated[
        str | None,
        typer.Option("--sources", "-s", help="Priors for every mixture (else sources.json)."),
    ] = None,
    refs: Annotated[
        str | None, typer.Option(help="Reference files (default: s[0-9]*.wav, else real_*.wav).")
    ] = None,
    estimates: Annotated[
        list[str] | None,
        typer.Option(help="Score existing files instead of separating: [NAME=]GLOB, repeatable."),
    ] = None,
    separate: Annotated[
        bool, typer.Option(help="Run diffsep (--no-separate: only the baselines).")
    ] = True,
    baselines: Annotated[
        str, typer.Option(help="mixture, oracle-irm, nmf (comma-separated) or none.")
    ] = "mixture,oracle-irm",
    nmf_train: Annotated[
        str, typer.Option(help="Single-source folders of the NMF dictionaries: speech=DIR,...")
    ] = "",
    nmf_rank: Annotated[int, typer.Option(help="NMF atoms per source class.")] = 32,
    nmf_seconds: Annotated[float, typer.Option(help="NMF training audio per class (s).")] = 60.0,
    keep: Annotated[Path | None, typer.Option(help="Keep every system's estimates here.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N mixtures.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads of torch and BLAS for every system.")
    ] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Per-mixture rows (CSV).")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML page: table, plots, players.")
    ] = None,
    report_items: Annotated[
        int | None, typer.Option(help="Players for the worst and best N mixtures only.")
    ] = None,
    as_json: AsJson = False,
    device: Device = "auto",
    steps: Steps = 25,
    spacing: Spacing = "snr",
    solver: Solver = "dirac",
    init: Init = "auto",
    seed: Seed = 0,
    segment: Segment = None,
    overlap: Overlap = 0.25,
    batch_size: BatchSize = 4,
    consistency: Consistency = "mask",
    eta: Eta = None,
    guided_steps: GuidedSteps = 0,
    samples: Samples = 1,
    precision: Precision = "auto",
    classifier: Classifier = "auto",
    class_weight: ClassWeight = 8.0,
    class_min_step: ClassMinStep = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Score separation against references, with baselines and cost, in one run."""
    with user_errors(verbose):
        from ..bench.options import BenchOptions
        from ..core.baselines import NMFConfig
        from ..report.bench import estimates_dir

        opts = BenchOptions(
            sources=[s.strip() for s in sources.split(",")] if sources else None,
            refs=refs,
            estimates=parse_estimates(estimates or []),
            separate=separate,
            baselines=parse_baselines(baselines),
            nmf_train={k: Path(v) for k, v in parse_pairs(nmf_train, "--nmf-train").items()},
            nmf=NMFConfig(rank=nmf_rank, seconds=nmf_seconds),
            keep=estimates_dir(report, keep, report_items, overwrite) if report else keep,
            overwrite=overwrite,
            limit=limit,
        )
        cfg = config_from(SeparateConfig, locals())
        with cpu_threads(threads):
            result = run_bench(folder, opts, cfg, device, csv_path, as_json, quiet)
        if report is not None:
            write_report(report, result, folder, opts, report_items, quiet or as_json)


def write_report(
    page: Path, result: BenchResult, folder: Path, opts: BenchOptions, n: int | None, quiet: bool
) -> None:
    """The benchmark's HTML page, with the kept estimates as players."""
    from ..bench.options import SYSTEM
    from ..io.mixtures import discover
    from ..report.bench import write_bench_report

    assert opts.keep is not None
    found = discover(
        folder,
        refs_glob=opts.refs,
        estimates=opts.estimates,
        sources=opts.sources,
        limit=opts.limit,
    )
    write_bench_report(page, result, found, opts.keep, SYSTEM, n, opts.overwrite)
    if not quiet:
        out.print(f"# report: {page}", highlight=False)


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Limit torch and BLAS/OpenMP pools (threadpoolctl, where installed) to ``n`` threads."""
    if n is None:
        yield
        return
    if n < 1:
        raise DiffsepError("--threads must be at least 1")
    import torch

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(n):
        yield


def run_bench(
    folder: Path,
    opts: BenchOptions,
    cfg: SeparateConfig,
    device: str,
    csv_path: Path | None,
    as_json: bool,
    quiet: bool,
) -> BenchResult:
    """Run the benchmark with progress bars on stderr; print the table or JSON; write CSV."""
    from ..bench.run import benchmark
    from ..core.devices import resolve_device

    if "nmf" in opts.baselines and not opts.nmf_train:
        raise DiffsepError("the nmf baseline needs --nmf-train CLASS=DIR,... (single sources)")
    dev = resolve_device(device)
    progress = make_progress(err, not (quiet or as_json) and err.is_terminal)
    with progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        result = benchmark(folder, opts, cfg, dev, progress=update)
    if csv_path is not None:
        write_csv(csv_path, result.rows)
    if as_json:
        doc = {"meta": result.meta, "summary": result.summary, "rows": result.rows}
        out.print_json(json.dumps(finite(doc)))
    elif not quiet:
        print_summary(result, opts.keep)
    return result


def make_mixtures_cmd(
    src_dirs: Annotated[
        list[Path], typer.Argument(help="Single-source folders (class = each file's subfolder).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Evaluation folder to write.")],
    sources: Annotated[
        str, typer.Option("--sources", "-s", help="Prior of each source: speech,sfx.")
    ],
    n: Annotated[int, typer.Option("-n", help="Number of mixtures.")] = 100,
    seed: Annotated[int, typer.Option(help="Same seed, same mixtures.")] = 0,
    duration: Annotated[float, typer.Option(help="Mixture seconds.")] = 4.0,
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the written files.")] = 16000,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Build an evaluation folder the paper's way (4 s, -25..-20 dBFS, overlapping sources)."""
    with user_errors(verbose):
        from ..io.mixtures import MixRecipe, make_mixtures

        recipe = MixRecipe(duration=duration, sample_rate=sample_rate)
        progress = make_progress(err, not quiet and err.is_terminal)
        with progress:
            task = progress.add_task("mixtures", total=n)
            folders = make_mixtures(
                src_dirs,
                out_dir,
                [s.strip() for s in sources.split(",")],
                n,
                seed,
                recipe=recipe,
                overwrite=overwrite,
                progress=lambda stage, done, total: progress.update(task, completed=done),
            )
        if not quiet:
            out.print(f"wrote {len(folders)} mixtures to {out_dir}")
