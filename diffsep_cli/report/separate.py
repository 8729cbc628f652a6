"""The page of a ``diffsep separate`` run: per input, the mixture and each source as players
with spectrograms; duration, RTF, the priors and the settings."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io.pipeline import FileResult
from .figures import SPEC_PIXELS
from .media import Assets
from .page import render, write_page

OPEN_ITEMS = 8  # pages with more files show them collapsed below the table of files


def file_entry(index: int, result: FileResult, base: str, assets: Assets) -> dict[str, Any]:
    """One input's row and section: the mixture, then each source."""
    group = [("mixture", result.input, "")]
    group += [(name, path, "") for name, path in result.outputs.items()]
    return {
        "anchor": f"file-{index}",
        "input": os.path.relpath(result.input.absolute(), base) if base else str(result.input),
        "seconds": result.seconds,
        "wall": result.wall,
        "rtf": result.rtf,
        "segments": result.segments,
        "clipped": result.clipped,
        "tracks": assets.tracks(group),
    }


def write_separate_report(
    page: Path,
    results: Sequence[FileResult],
    priors: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    *,
    skipped: Sequence[Path] = (),
    failed: Sequence[tuple[Path, str]] = (),
    overwrite: bool = False,
) -> Path:
    """Write the run's page (images and previews in ``PAGE_files/``, the page last, atomically).

    ``priors``: per source {source, prior, label, revision}; ``settings``: option -> value.
    """
    assets = Assets(page)
    parents = [str(r.input.parent.absolute()) for r in results]
    base = os.path.commonpath(parents) if len(results) > 1 else ""
    files = [file_entry(i + 1, r, base, assets) for i, r in enumerate(results)]
    html = render(
        "separate.html.j2",
        files=files,
        base=base,
        priors=priors,
        settings=[(k, "–" if v is None else v) for k, v in settings.items()],
        device=settings.get("device", "?"),
        steps=settings.get("steps", "?"),
        solver=settings.get("solver", "?"),
        total_seconds=sum(r.seconds for r in results),
        total_wall=sum(r.wall for r in results),
        skipped=[str(p) for p in skipped],
        failed=[(str(p), reason) for p, reason in failed],
        open_items=len(files) <= OPEN_ITEMS,
        size=SPEC_PIXELS,
    )
    return write_page(page, html, overwrite)
