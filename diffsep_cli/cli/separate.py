"""``diffsep separate``: the command, its progress display and its results on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import SeparateConfig
from ..errors import DiffsepError
from .console import err, make_progress, out, user_errors
from .options import (
    AsJson,
    BatchSize,
    Consistency,
    Device,
    Eta,
    GuidedSteps,
    Init,
    Overlap,
    Overwrite,
    Quiet,
    Seed,
    Segment,
    Solver,
    Steps,
    Verbose,
    config_from,
)

if TYPE_CHECKING:
    import torch

    from ..core.sources import ResolvedSources
    from ..io.outputs import Job
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
    steps: Steps = 50,
    solver: Solver = "hybrid",
    init: Init = "noisy-mixture",
    seed: Seed = 0,
    segment: Segment = None,
    overlap: Overlap = 0.25,
    batch_size: BatchSize = 4,
    consistency: Consistency = "mask",
    eta: Eta = 1.0,
    guided_steps: GuidedSteps = 0,
    per_channel: Annotated[
        bool, typer.Option(help="Separate each channel instead of the mono downmix.")
    ] = False,
    overwrite: Overwrite = False,
    skip_existing: Annotated[
        bool, typer.Option(help="Skip inputs whose outputs all exist.")
    ] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Separate audio files into one file per source."""
    with user_errors(verbose):
        cfg = config_from(SeparateConfig, locals())
        notices = not (quiet or as_json)
        plan = plan_run(
            inputs, sources, out_dir, filename, fmt, subtype, device, overwrite, skip_existing
        )
        for path in plan.skipped if notices else []:
            err.print(f"skipped {path} (outputs exist)")
        results = separate_jobs(plan, cfg, notices)
        if as_json:
            out.print_json(json.dumps(results_doc(results, plan, cfg)))
        elif not quiet:
            print_results(results)


@dataclass
class Plan:
    """Everything resolved before any work: outputs of each input, the priors, the device."""

    jobs: list[Job]
    skipped: list[Path]
    src: ResolvedSources
    device: torch.device
    fmt: str | None
    subtype: str | None
    overwrite: bool


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
) -> Plan:
    """Find the inputs, load the priors and plan every output (all errors before any work)."""
    from ..core.devices import resolve_device
    from ..core.sources import parse_sources, resolve_sources
    from ..hub.api import load_prior
    from ..io.audio import find_audio
    from ..io.outputs import plan_jobs

    files = find_audio(inputs)
    if not files:
        raise DiffsepError("no audio files found in the inputs")
    dev = resolve_device(device)
    src = resolve_sources(parse_sources(sources), lambda n: load_prior(n, dev))
    names = src.names
    jobs, skipped = plan_jobs(
        files, names, out_dir, template, fmt, subtype, overwrite, skip_existing
    )
    return Plan(jobs, skipped, src, dev, fmt, subtype, overwrite)


def separate_jobs(plan: Plan, cfg: SeparateConfig, notices: bool) -> list[FileResult]:
    """Separate each planned input with progress bars on stderr; notices for stereo, clipping."""
    from ..io.audio import audio_info

    progress = make_progress(err, notices and err.is_terminal)
    results: list[FileResult] = []
    try:
        with progress:
            files_task = progress.add_task("files", total=len(plan.jobs))
            seg_task = progress.add_task("segments", total=None)
            step_task = progress.add_task("steps", total=cfg.steps)

            def update(stage: str, done: int, total: int) -> None:
                task = seg_task if stage == "segments" else step_task
                progress.update(task, completed=done, total=total)

            for job in plan.jobs:
                channels = audio_info(job.input).channels
                if notices and channels > 1 and not cfg.per_channel:
                    err.print(
                        f"{job.input}: {channels} channels downmixed to mono "
                        "(--per-channel separates each)"
                    )
                progress.update(seg_task, completed=0)
                results.append(separate_one(job, plan, cfg, update))
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


def separate_one(
    job: Job, plan: Plan, cfg: SeparateConfig, update: Callable[[str, int, int], None]
) -> FileResult:
    """One input through the file pipeline; write and memory failures become one line."""
    import soundfile as sf
    import torch

    from ..io.pipeline import separate_file

    try:
        return separate_file(
            job.input,
            job.outputs,
            plan.src,
            cfg,
            fmt=plan.fmt,
            subtype=plan.subtype,
            overwrite=plan.overwrite,
            device=plan.device,
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


def results_doc(results: list[FileResult], plan: Plan, cfg: SeparateConfig) -> dict[str, Any]:
    """The ``--json`` document of a run."""
    return {
        "device": str(plan.device),
        "steps": cfg.steps,
        "solver": cfg.solver,
        "sources": plan.src.names,
        "files": [
            {
                "input": str(r.input),
                "outputs": {k: str(v) for k, v in r.outputs.items()},
                "duration_s": round(r.seconds, 3),
                "wall_s": round(r.wall, 3),
                "rtf": round(r.rtf, 3),
                "segments": r.segments,
                "clipped_samples": r.clipped,
            }
            for r in results
        ],
        "skipped": [str(p) for p in plan.skipped],
    }


def print_results(results: list[FileResult]) -> None:
    """Each written path on its own line, then a comment line with the duration and RTF."""
    for r in results:
        for path in r.outputs.values():
            out.print(f"{path}")
        out.print(
            f"# {r.input}: {r.seconds:.1f} s in {r.wall:.1f} s (RTF {r.rtf:.2f})", highlight=False
        )
