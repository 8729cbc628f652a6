"""Where each input's sources are written: output paths from a template, planned before work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DiffsepError
from .audio import audio_info
from .pipeline import output_format

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
    """One input file and the path of each of its sources."""

    input: Path
    outputs: dict[str, Path]


def output_paths(
    path: Path, names: list[str], out_dir: Path, template: str, ext: str
) -> dict[str, Path]:
    """``template`` filled in for each source name: {track}, {source}, {ext}."""
    outs = {}
    for n in names:
        try:
            outs[n] = out_dir / template.format(track=path.stem, source=n, ext=ext)
        except (KeyError, IndexError) as exc:
            raise DiffsepError(
                f"--filename: unknown field {exc} (use {{track}}, {{source}}, {{ext}})"
            ) from None
    return outs


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
        outs = output_paths(path, names, out_dir, template, ext)
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
