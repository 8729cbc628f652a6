"""``diffsep separate``: the command, its progress display and its results on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..config import SeparateConfig
from ..errors import EXIT_ERROR, DiffsepError, InputError
from .console import err, fail, make_progress, out, user_errors
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
    LowMemory,
    Overlap,
    Overwrite,
    PerChannel,
    Precision,
    Quiet,
    Samples,
    Seed,
    Segment,
    SkipExisting,
    Solver,
    Spacing,
    Steps,
    Verbose,
    config_from,
)

if TYPE_CHECKING:
    import torch

    from ..core.sources import ResolvedSources
    from ..io.outputs import Job, Plan
    from ..io.pipeline import FileResult

Sources = Annotated[
    str,
    typer.Option(
        "--sources",
        "-s",
        help="One prior per source: speech,sfx | speech,speech | sfx:Bark,sfx:Gong | "
        "a prior folder | org/name[@rev].",
    ),
]


def separate_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders (recursive).")],
    sources: Sources,
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path(
        "separated"
    ),
    filename: Annotated[
        str, typer.Option(help="Output path template: {track}, {source}, {ext}.")
    ] = "{track}/{source}.{ext}",
    fmt: Annotated[
        str | None, typer.Option("--format", help="Output format (default: the input's).")
    ] = None,
    subtype: Annotated[
        str | None, typer.Option(help="PCM_16, PCM_24, FLOAT, ... (default: the input's).")
    ] = None,
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
    low_memory: LowMemory = False,
    classifier: Classifier = "auto",
    class_weight: ClassWeight = 8.0,
    class_min_step: ClassMinStep = None,
    per_channel: PerChannel = False,
    overwrite: Overwrite = False,
    skip_existing: SkipExisting = False,
    report: Annotated[
        bool, typer.Option("--report", help="Write an HTML page of the run: OUT/report.html.")
    ] = False,
    report_path: Annotated[
        Path | None, typer.Option(help="Write the HTML page here instead (implies --report).")
    ] = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Separate audio files into one file per source."""
    with user_errors(verbose):
        cfg = config_from(SeparateConfig, locals())
        notices = not (quiet or as_json)
        page = report_path or (out_dir / "report.html" if report else None)
        run = plan_run(
            inputs, sources, out_dir, filename, fmt, subtype, device, overwrite, skip_existing, page
        )
        from ..hub.classifiers import guide

        run.src = guide(run.src, cfg.classifier, run.device)
        for path in run.plan.skipped if notices and run.rank == 0 else []:
            err.print(f"skipped {path} (outputs exist)")
        results = gather(run, separate_jobs(run, cfg, notices and run.rank == 0))
        if run.rank > 0:  # rank 0 reports for every rank
            return
        if run.report is not None:
            write_report(run, results, cfg, sources)
        if as_json:
            out.print_json(json.dumps(results_doc(results, run, cfg)))
        elif not quiet:
            print_results(results, run.report)
        if run.plan.failed:  # each failure had its line; several inputs get a summary too
            total = len(run.plan.failed) + len(results) + len(run.plan.skipped)
            if total > 1:
                fail(f"{len(run.plan.failed)} of {total} inputs failed (see above)")
            raise typer.Exit(EXIT_ERROR)


@dataclass
class Run:
    """Everything resolved before any work: each input's plan, the priors, the device."""

    plan: Plan
    src: ResolvedSources
    device: torch.device
    fmt: str | None
    subtype: str | None
    overwrite: bool
    report: Path | None = None  # the HTML page to write
    rank: int = 0  # under torchrun: this process's share is jobs[rank::world]
    world: int = 1


def plan_run(
    inputs: list[Path],
    sources: str,
    out_dir: Path,
    template: str,
    fmt: str | None,
    subtype: str | None,
    device: str,
    overwrite: bool,
    skip_existing: bool,
    report: Path | None = None,
) -> Run:
    """Find the inputs, load the priors and plan every output (all errors before any work;
    an input that cannot be read is reported, and the others go on)."""
    from ..core.devices import process_group, rank_device, resolve_device
    from ..core.sources import parse_sources, resolve_sources
    from ..hub.api import load_prior
    from ..io.audio import find_audio
    from ..io.outputs import check_template, plan_jobs

    check_template(template)
    if report is not None:
        from ..report.media import check_report_path

        check_report_path(report, overwrite)
    files: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in inputs:
        try:
            found = find_audio([path])
        except InputError as exc:
            failed.append((path, str(exc)))
            continue
        if not found:
            failed.append((path, f"{path}: no audio files in this folder"))
        files += found
    dev = rank_device(resolve_device(device))
    rank, world = process_group(dev)
    src = resolve_sources(parse_sources(sources), lambda n: load_prior(n, dev))
    plan = plan_jobs(files, src.names, out_dir, template, fmt, subtype, overwrite, skip_existing)
    plan.failed[:0] = failed
    for _, reason in plan.failed if rank == 0 else []:
        err.print(f"[bold red]error:[/] {escape(reason)}", markup=True)
    plan.jobs = plan.jobs[rank::world]
    return Run(plan, src, dev, fmt, subtype, overwrite, report, rank, world)


def separate_jobs(run: Run, cfg: SeparateConfig, notices: bool) -> list[FileResult]:
    """Separate each planned input with progress bars on stderr; notices for stereo, clipping;
    an input that fails is reported in one line (and in ``run.plan.failed``), the rest go on."""
    from ..io.audio import audio_info

    progress = make_progress(err, notices and err.is_terminal)
    results: list[FileResult] = []
    try:
        with progress:
            files_task = progress.add_task("files", total=len(run.plan.jobs))
            seg_task = progress.add_task("segments", total=None)
            step_task = progress.add_task("steps", total=cfg.steps)

            def update(stage: str, done: int, total: int) -> None:
                task = seg_task if stage == "segments" else step_task
                progress.update(task, completed=done, total=total)

            for job in run.plan.jobs:
                progress.update(seg_task, completed=0)
                try:
                    channels = audio_info(job.input).channels
                    if notices and channels > 1 and not cfg.per_channel:
                        err.print(
                            f"{job.input}: {channels} channels downmixed to mono "
                            "(--per-channel separates each)"
                        )
                    results.append(separate_one(job, run, cfg, update))
                except InputError as exc:
                    run.plan.failed.append((job.input, str(exc)))
                    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
                    progress.advance(files_task)
                    continue
                if notices and results[-1].clipped:
                    err.print(
                        f"{job.input}: {results[-1].clipped} input samples at full "
                        "scale (clipped input separates less well)"
                    )
                progress.advance(files_task)
    except KeyboardInterrupt:
        finished = ", ".join(str(r.input) for r in results) or "none"
        err.print(f"interrupted; no partial files left. finished: {finished}")
        raise
    return results


def gather(run: Run, results: list[FileResult]) -> list[FileResult]:
    """Under torchrun: every rank's results (tagged with their rank) and the failures of its
    inputs on rank 0, in input order; other ranks get []. One process: as is."""
    from ..core.devices import gather_to_first

    for r in results:
        r.extra["rank"] = run.rank
    mine = (results, [f for f in run.plan.failed if f[0] in {j.input for j in run.plan.jobs}])
    parts = gather_to_first(mine, run.world)
    if run.world == 1 or run.rank > 0:
        return results if run.world == 1 else []
    order = {j: i for i, j in enumerate(sorted({r.input for p in parts for r in p[0]}))}
    run.plan.failed = [f for f in run.plan.failed if f not in mine[1]]
    run.plan.failed += [f for _, failed in parts for f in failed]
    return sorted((r for p in parts for r in p[0]), key=lambda r: order[r.input])


def separate_one(
    job: Job, run: Run, cfg: SeparateConfig, update: Callable[[str, int, int], None]
) -> FileResult:
    """One input through the file pipeline; write and memory failures become one line."""
    import soundfile as sf
    import torch

    from ..io.pipeline import separate_file

    try:
        return separate_file(
            job.input,
            job.outputs,
            run.src,
            cfg,
            fmt=run.fmt,
            subtype=run.subtype,
            overwrite=run.overwrite,
            device=run.device,
            progress=update,
        )
    except sf.LibsndfileError as exc:  # a RuntimeError too: first
        raise DiffsepError(f"cannot write outputs: {exc}") from None
    except RuntimeError as exc:  # torch.OutOfMemoryError is one as well
        if isinstance(exc, torch.OutOfMemoryError) or "memory" in str(exc).lower():
            raise DiffsepError(
                f"not enough memory for --batch-size {cfg.batch_size}: use a smaller one"
            ) from None
        raise


def results_doc(results: list[FileResult], run: Run, cfg: SeparateConfig) -> dict[str, Any]:
    """The ``--json`` document of a run."""
    from ..core.devices import precision_used

    shared = any(len(group) > 1 for group in run.src.groups)
    return {
        "device": str(run.device),
        "precision": precision_used(run.device, cfg.precision),  # what auto meant here
        "ranks": run.world,
        "steps": cfg.steps,
        "spacing": cfg.spacing,
        "solver": cfg.solver,
        "class_weight": cfg.class_weight if run.src.classifier is not None else 0.0,
        "class_min_step": cfg.guidance().for_sources(shared).class_min_step,
        "sources": run.src.names,
        "files": [
            {
                "input": str(r.input),
                "outputs": {k: str(v) for k, v in r.outputs.items()},
                "duration_s": round(r.seconds, 3),
                "wall_s": round(r.wall, 3),
                "rtf": round(r.rtf, 3),
                "segments": r.segments,
                "clipped_samples": r.clipped,
                "rank": r.extra.get("rank", 0),
            }
            for r in results
        ],
        "skipped": [str(p) for p in run.plan.skipped],
        "failed": [{"input": str(p), "error": reason} for p, reason in run.plan.failed],
        **({"report": str(run.report)} if run.report is not None else {}),
    }


def print_results(results: list[FileResult], report: Path | None = None) -> None:
    """Each written path on its own line, then a comment line with the duration and RTF."""
    for r in results:
        for path in r.outputs.values():
            out.print(f"{path}")
        out.print(
            f"# {r.input}: {r.seconds:.1f} s in {r.wall:.1f} s (RTF {r.rtf:.2f})", highlight=False
        )
    if report is not None:
        out.print(f"# report: {report}", highlight=False)


def write_report(run: Run, results: list[FileResult], cfg: SeparateConfig, sources: str) -> None:
    """The run's HTML page: players, spectrograms, priors (weights revisions) and settings."""
    from dataclasses import asdict

    from ..core.sources import parse_sources
    from ..hub.folder import weights_revision
    from ..report.separate import write_separate_report

    assert run.report is not None
    revisions = {id(p): weights_revision(p) for p in run.src.priors}
    priors = [
        {"source": name, "prior": spec.prior, "label": spec.label, "revision": revisions[id(p)]}
        for name, spec, p in zip(run.src.names, parse_sources(sources), run.src.priors, strict=True)
    ]
    settings = {"sources": sources, "device": str(run.device), "format": run.fmt or "input's"}
    settings |= {"subtype": run.subtype or "input's", **asdict(cfg)}
    write_separate_report(
        run.report,
        results,
        priors,
        settings,
        skipped=run.plan.skipped,
        failed=run.plan.failed,
        overwrite=run.overwrite,
    )
