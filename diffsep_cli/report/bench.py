"""The page of a ``diffsep bench`` run: the summary table, SI-SDRi per mixture and system,
quality against speed, and the mixtures (all, or the worst and best) as players."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..core.sources import SourceSpec, unique_names
from ..errors import DiffsepError
from ..io.mixtures import Item
from .figures import SPEC_PIXELS, per_mixture_plot, quality_speed_plot
from .media import Assets, check_report_path, files_dir
from .page import render, write_page

METRICS = {
    "si_sdri": "SI-SDRi (dB)",
    "sdri": "SDRi (dB)",
    "pesq_wb": "PESQ-WB",
    "estoi": "ESTOI",
    "distinct": "distinct",  # sources sharing a prior: 0 when they collapsed to one signal
}
BASELINE_FILES = ("oracle-irm", "nmf")  # baselines whose estimates bench keeps, named as refs


class Scores(Protocol):
    """What ``diffsep bench`` returns (``bench.run.BenchResult``)."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any]


def estimate_files(item: Item, row: dict[str, Any], work: Path, main: str) -> list[Path | None]:
    """The estimate file scored against each reference (None: no file, e.g. ``mixture``), in
    the layout bench keeps: WORK/SYSTEM/MIXTURE/{source}.wav, baselines named as the refs."""
    system = row["system"]
    if system in item.estimates:
        files = list(item.estimates[system])
    elif system == main and item.specs is not None:
        names = unique_names([SourceSpec.parse(s).stem for s in item.specs])
        files = [work / system / item.name / f"{n}.wav" for n in names]
    elif system in BASELINE_FILES:
        files = [work / system / item.name / r.name for r in item.refs]
    else:
        return [None] * len(item.refs)
    found = [files[s["estimate"]] for s in row["sources"]]
    return [p if p.is_file() else None for p in found]


def _score(row: dict[str, Any] | None) -> float:
    value = None if row is None else row.get("si_sdri")
    return -math.inf if value is None or not math.isfinite(value) else float(value)


def ranked(rows: list[dict[str, Any]], main: str) -> list[str]:
    """Mixtures from the main system's worst SI-SDRi to its best."""
    mixtures = list(dict.fromkeys(r["mixture"] for r in rows))
    by_name = {r["mixture"]: r for r in rows if r["system"] == main}
    return sorted(mixtures, key=lambda m: _score(by_name.get(m)))


def pick(order: list[str], n: int | None) -> dict[str, str]:
    """The mixtures that get players, in ``order``, tagged worst / best (all: untagged)."""
    if n is None or 2 * n >= len(order):
        return dict.fromkeys(order, "")
    return {**dict.fromkeys(order[:n], "worst"), **dict.fromkeys(order[-n:], "best")}


def estimates_dir(page: Path, keep: Path | None, n_items: int | None, overwrite: bool) -> Path:
    """Check a bench page's path before any work; where the estimates go (``--keep``, else
    ``PAGE_files/estimates``: the players need files)."""
    if n_items is not None and n_items < 1:
        raise DiffsepError("--report-items must be at least 1")
    check_report_path(page, overwrite)
    return keep or files_dir(page) / "estimates"


def summary_rows(summary: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    """Table cells per task and system: each metric's mean, median and 95 % interval."""
    cells = []
    for s in summary:
        stats = {m: s.get(m) or {} for m in metrics}
        rtf = s.get("rtf") or {}
        cells.append({**s, "stats": stats, "rtf_mean": rtf.get("mean")})
    return cells


def mixture_entry(
    item: Item, rows: list[dict[str, Any]], work: Path, main: str, tag: str, assets: Assets
) -> dict[str, Any]:
    """One mixture's section: the mixture, then per reference the reference and estimates."""
    group: list[tuple[str, Path, str]] = [("mixture", item.mix, "")]
    files = {r["system"]: estimate_files(item, r, work, main) for r in rows}
    for j, ref in enumerate(item.refs):
        group.append((f"reference {ref.name}", ref, ""))
        for r in rows:
            path, value = files[r["system"]][j], r["sources"][j].get("si_sdri")
            if path is not None:
                score = "" if value is None else f"SI-SDRi {value:+.1f} dB"
                group.append((f"{r['system']} → {ref.name}", path, score))
    return {
        "name": item.name,
        "task": rows[0]["task"],
        "tag": tag,
        "scores": [(r["system"], r.get("si_sdri")) for r in rows],
        "tracks": assets.tracks(group),
    }


def write_bench_report(
    page: Path,
    result: Scores,
    items: Sequence[Item],
    work: Path,
    main: str,
    n_items: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the benchmark's page; ``work`` holds the kept estimates, ``main`` names the system
    that ranks the mixtures; ``n_items``: only the worst and best N mixtures get players."""
    rows, assets = result.rows, Assets(page)
    systems = list(dict.fromkeys(r["system"] for r in rows))
    main = main if main in systems else systems[0]
    order = ranked(rows, main)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    scores = {
        t: {
            s: {r["mixture"]: _score(r) for r in rows if (r["task"], r["system"]) == (t, s)}
            for s in systems
        }
        for t in tasks
    }
    per_task = {t: [m for m in order if any(m in v for v in scores[t].values())] for t in tasks}
    plots = [
        (
            assets.figure(per_mixture_plot(scores, per_task), "per-mixture"),
            f"SI-SDRi of each system on each mixture, sorted by {main}'s score.",
        ),
        (
            assets.figure(quality_speed_plot(result.summary), "quality-speed"),
            "Quality against speed: mean SI-SDRi (bars: 95 % interval) over the real-time factor.",
        ),
    ]
    chosen, by_name = pick(order, n_items), {it.name: it for it in items}
    entries = [
        mixture_entry(by_name[m], [r for r in rows if r["mixture"] == m], work, main, tag, assets)
        for m, tag in chosen.items()
    ]
    metrics = [m for m in METRICS if any(s.get(m) for s in result.summary)]
    html = render(
        "bench.html.j2",
        meta=result.meta,
        summary=summary_rows(result.summary, metrics),
        metrics={m: METRICS[m] for m in metrics},
        gpu=any(s.get("peak_gpu_mb") is not None for s in result.summary),
        plots=plots,
        mixtures=entries,
        main=main,
        selection=len(chosen) < len(order),
        n_items=n_items,
        settings=sorted(result.meta.get("separate", {}).items()),
        open_items=len(entries) <= 8,
        size=SPEC_PIXELS,
    )
    return write_page(page, html, overwrite)
