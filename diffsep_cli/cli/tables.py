"""The results of ``diffsep bench`` for people and programs: the terminal table, CSV, JSON."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ..errors import DiffsepError
from .console import out

if TYPE_CHECKING:
    from ..bench.run import BenchResult

LABELS = {
    "si_sdr": "SI-SDR",
    "si_sdri": "SI-SDRi",
    "sdr": "SDR",
    "sdri": "SDRi",
    "pesq_wb": "PESQ-WB",
    "estoi": "ESTOI",
    "distinct": "distinct",
    "rtf": "RTF",
}


def print_summary(result: BenchResult, keep: Path | None) -> None:
    """The table (200 columns wide when not on a terminal), then the setup lines."""
    wide = out if out.is_terminal else Console(file=out.file, width=200, highlight=False)
    wide.print(summary_table(result))
    meta = result.meta
    out.print(f"# {meta['mixtures']} mixtures; {meta['device']}; CPU threads {meta['threads']}")
    for p in meta["priors"]:
        out.print(f"# prior {p['spec']}: weights {p['revision']}")
    if "nmf" in meta:
        out.print(f"# nmf dictionaries trained in {meta['nmf']['train_s']:.1f} s")
    if keep is not None:
        out.print(f"# estimates kept in {keep}")


def finite(x: Any) -> Any:
    """NaN and inf become null (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def _cell(stats: dict[str, float] | None, digits: int = 2) -> str:
    """``mean ±half-width`` over ``med median`` (half-width of the 95 % t-interval)."""
    if not stats or not stats["n"]:
        return "-"
    half = (stats["hi"] - stats["lo"]) / 2
    ci = f" ±{half:.{digits}f}" if math.isfinite(half) else ""
    return f"{stats['mean']:.{digits}f}{ci}\nmed {stats['median']:.{digits}f}"


def _memory(s: dict[str, Any]) -> str:
    rss, gpu = s.get("peak_rss_mb"), s.get("peak_gpu_mb")
    text = "-" if rss is None else f"{rss:.0f}"
    return text if gpu is None else f"{text}\nGPU {gpu:.0f}"


def summary_table(result: BenchResult) -> Table:
    """Per task and system: metrics (mean ±95 % CI, median), RTF, peak memory, steps, device."""
    metrics = [m for m in LABELS if any(m in s for s in result.summary)]
    table = Table(caption="mean ±95 % t-interval half-width; med = median over mixtures")
    for col in ("task", "system", "n", *(LABELS[m] for m in metrics), "peak MB", "steps"):
        table.add_column(col, justify="left" if col in ("task", "system") else "right")
    table.add_column("device")
    for s in result.summary:
        cells = [_cell(s.get(m), 3 if m in ("estoi", "distinct", "rtf") else 2) for m in metrics]
        extra = [_memory(s), str(s["steps"] or "-"), str(s["device"] or "-")]
        table.add_row(s["task"], s["system"], str(s["n"]), *cells, *extra, end_section=True)
    return table


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One line per (mixture, system); per-source metrics as ``si_sdr.s1`` columns."""
    flat = []
    for row in rows:
        line = {k: v for k, v in row.items() if k != "sources"}
        for src in row["sources"]:
            stem = Path(src["ref"]).stem
            line.update({f"{k}.{stem}": v for k, v in src.items() if k != "ref"})
        flat.append(line)
    fields = list(dict.fromkeys(k for line in flat for k in line))
    try:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(flat)
    except OSError as exc:
        raise DiffsepError(f"cannot write {path}: {exc.strerror}") from None
