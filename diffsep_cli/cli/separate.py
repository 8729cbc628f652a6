"""Terminal side of ``diffsep separate``: inputs, output names, progress, results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf
import torch
from rich.console import Console

from .audio import audio_info, find_audio
from .cli import make_progress
from .config import SeparateConfig
from .devices import resolve_device
from .errors import DiffsepError
from .hub import load_prior
from .pipeline import FileResult, output_format, separate_file
from .sources import ResolvedSources, parse_sources, resolve_sources

EXTENSIONS = {
    "WAV": "wav",
    "FLAC": "flac",
    "OGG": "ogg",
    "MP3": "mp3",
    "AIFF": "aiff",
    "W64": "w64",
    "RF64": "wav",
    "CAF": "caf",
}


@dataclass
class Job:
    input: Path
    outputs: dict[str, Path]


def plan_jobs(
    files: list[Path],
    names: list[str],
    out_dir: Path,
    template: str,
    fmt: str | None,
    subtype: str | None,
    overwrite: bool,
    skip_existing: bool,
) -> tuple[list[Job], list[Path]]:
    """Output paths for every input; refuses collisions and (without --overwrite) existing
    outputs before any work starts. Returns (jobs, skipped inputs)."""
    if "{source}" not in template:
        raise DiffsepError("--filename must contain {source}")
    jobs: list[Job] = []
    skipped: list[Path] = []
    seen: set[Path] = set()
    for path in files:
        ext = EXTENSIONS.get(output_format(audio_info(path), fmt, subtype)[0], "audio")
        outs = {}
        for n in names:
            try:
                outs[n] = out_dir / template.format(track=path.stem, source=n, ext=ext)
            except (KeyError, IndexError) as exc:
                raise DiffsepError(
                    f"--filename: unknown field {exc} (use {{track}}, {{source}}, {{ext}})"
                ) from None
        if seen & set(outs.values()):
            raise DiffsepError(f"{path}: outputs collide with another input's (same name?)")
        seen |= set(outs.values())
        existing = [p for p in outs.values() if p.exists()]
        if skip_existing and len(existing) == len(outs):
            skipped.append(path)
        elif existing and not overwrite:
            raise DiffsepError(f"{existing[0]} exists (use --overwrite or --skip-existing)")
        else:
            jobs.append(Job(path, outs))
    return jobs, skipped


def run_separate(
    inputs: list[Path],
    sources: str,
    out_dir: Path,
    template: str,
    cfg: SeparateConfig,
    *,
    fmt: str | None,
    subtype: str | None,
    device: str,
    overwrite: bool,
    skip_existing: bool,
    as_json: bool,
    quiet: bool,
    console: Console,
    out: Console,
) -> list[FileResult]:
    """Resolve everything up front, then separate each file; prints results."""
    files = find_audio(inputs)
    if not files:
        raise DiffsepError("no audio files found in the inputs")
    dev = resolve_device(device)
    src: ResolvedSources = resolve_sources(parse_sources(sources), lambda n: load_prior(n, dev))
    jobs, skipped = plan_jobs(
        files, src.names, out_dir, template, fmt, subtype, overwrite, skip_existing
    )
    notices = not (quiet or as_json)
    for path in skipped:
        if notices:
            console.print(f"skipped {path} (outputs exist)")
    progress = make_progress(console, notices and console.is_terminal)
    results: list[FileResult] = []
    try:
        with progress:
            files_task = progress.add_task("files", total=len(jobs))
            seg_task = progress.add_task("segments", total=None)
            step_task = progress.add_task("steps", total=cfg.steps)

            def update(stage: str, done: int, total: int) -> None:
                task = seg_task if stage == "segments" else step_task
                progress.update(task, completed=done, total=total)

            for job in jobs:
                info = audio_info(job.input)
                if notices and info.channels > 1 and not cfg.per_channel:
                    console.print(
                        f"{job.input}: {info.channels} channels downmixed to mono "
                        "(--per-channel separates each)"
                    )
                progress.update(seg_task, completed=0)
                results.append(_one(job, src, cfg, fmt, subtype, overwrite, dev, update))
                if notices and results[-1].clipped:
                    console.print(
                        f"{job.input}: {results[-1].clipped} input samples at full "
                        "scale (clipped input separates less well)"
                    )
                progress.advance(files_task)
    except KeyboardInterrupt:
        finished = ", ".join(str(r.input) for r in results) or "none"
        console.print(f"interrupted; no partial files left. finished: {finished}")
        raise
    _report(results, skipped, src, cfg, dev, as_json, quiet, out)
    return results


def _one(
    job: Job,
    src: ResolvedSources,
    cfg: SeparateConfig,
    fmt: str | None,
    subtype: str | None,
    overwrite: bool,
    dev: torch.device,
    update: Any,
) -> FileResult:
    try:
        return separate_file(
            job.input,
            job.outputs,
            src,
            cfg,
            fmt=fmt,
            subtype=subtype,
            overwrite=overwrite,
            device=dev,
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


def _report(
    results: list[FileResult],
    skipped: list[Path],
    src: ResolvedSources,
    cfg: SeparateConfig,
    dev: torch.device,
    as_json: bool,
    quiet: bool,
    out: Console,
) -> None:
    if as_json:
        doc = {
            "device": str(dev),
            "steps": cfg.steps,
            "solver": cfg.solver,
            "sources": src.names,
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
            "skipped": [str(p) for p in skipped],
        }
        out.print_json(json.dumps(doc))
        return
    if quiet:
        return
    for r in results:
        for _name, path in r.outputs.items():
            out.print(f"{path}")
        out.print(
            f"# {r.input}: {r.seconds:.1f} s in {r.wall:.1f} s (RTF {r.rtf:.2f})", highlight=False
        )
