"""Where each input's sources are written: output paths from a template, planned before work.

Outputs never leave the output folder: a template that is absolute or climbs out (``..``) is
refused, the values put into it (the input's name, the source names) are sanitised, and the
resolved path of every output is checked to lie inside the output folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from ..errors import DiffsepError, InputError
from .audio import audio_info
from .pipeline import output_format

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")  # path separators and control characters

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


def check_template(template: str) -> None:
    """Refuse, before any work, a template that cannot stay inside the output folder."""
    if "{source}" not in template:
        raise DiffsepError("--filename must contain {source}")
    parts = PurePath(template).parts
    if PurePath(template).is_absolute() or template.startswith("~") or ".." in parts:
        raise DiffsepError(
            f"--filename {template!r} must be a relative path inside the output folder (no "
            "leading / or ~, no ..)"
        )


def safe_name(text: str) -> str:
    """A value that is one harmless path component: separators and control characters become
    ``_``, and names made only of dots (``.``, ``..``) or nothing are escaped."""
    name = _UNSAFE.sub("_", text).strip()
    return "_" + name if not name.strip(".") else name


def output_paths(
    path: Path, names: list[str], out_dir: Path, template: str, ext: str
) -> dict[str, Path]:
    """``template`` filled in for each source name ({track}, {source}, {ext}), each value
    sanitised; every path is checked to resolve inside ``out_dir``."""
    root = out_dir.resolve()
    outs = {}
    for n in names:
        try:
            rel = template.format(track=safe_name(path.stem), source=safe_name(n), ext=ext)
        except (KeyError, IndexError, ValueError) as exc:
            raise DiffsepError(
                f"--filename: bad field {exc} (use {{track}}, {{source}}, {{ext}})"
            ) from None
        target = (out_dir / rel).resolve()
        if target == root or not target.is_relative_to(root):
            raise DiffsepError(f"--filename puts the outputs of {path.name!r} outside {out_dir}")
        outs[n] = out_dir / rel
    return outs


@dataclass
class Plan:
    """Every input's fate, decided before any work: a job, skipped (done), or failed."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, one-line reason)


def plan_jobs(
    files: list[Path],
    names: list[str],
    out_dir: Path,
    template: str,
    fmt: str | None,
    subtype: str | None,
    overwrite: bool,
    skip_existing: bool,
) -> Plan:
    """Output paths for every input; refuses unsafe templates, collisions and (without
    --overwrite) existing outputs before any work starts. Inputs that cannot be read are
    recorded as failed; the others still run."""
    check_template(template)
    plan = Plan()
    seen: set[Path] = set()
    for path in files:
        try:
            ext = EXTENSIONS.get(output_format(audio_info(path), fmt, subtype)[0], "audio")
        except InputError as exc:
            plan.failed.append((path, str(exc)))
            continue
        outs = output_paths(path, names, out_dir, template, ext)
        if seen & set(outs.values()):
            raise DiffsepError(f"{path}: outputs collide with another input's (same name?)")
        seen |= set(outs.values())
        existing = [p for p in outs.values() if p.exists()]
        if skip_existing and len(existing) == len(outs):
            plan.skipped.append(path)
        elif existing and not overwrite:
            raise DiffsepError(f"{existing[0]} exists (use --overwrite or --skip-existing)")
        else:
            plan.jobs.append(Job(path, outs))
    return plan
