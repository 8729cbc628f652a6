"""The report's figures (matplotlib, Agg canvas, no pyplot state): spectrograms on one colour
scale per group of tracks, SI-SDRi per mixture and system, and quality against speed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RANGE_DB = 80.0  # dynamic range of a colour scale, below the loudest bin of the group
MAX_FRAMES = 1200  # STFT frames per image at most (longer audio: a larger hop)
SPEC_SIZE = (7.2, 1.9)  # inches at DPI: the page shows images at this pixel size
DPI = 100
SPEC_PIXELS = (round(SPEC_SIZE[0] * DPI), round(SPEC_SIZE[1] * DPI))
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def spectrogram_db(x: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Power spectrogram in dB [F, T] of frames centred every hop (Hann window of ~32 ms, at
    most ``MAX_FRAMES`` frames), and the hop in seconds."""
    n_fft = 2 ** max(6, round(math.log2(0.032 * rate)))
    hop = max(n_fft // 4, math.ceil(len(x) / MAX_FRAMES))
    padded = np.pad(np.asarray(x, dtype=np.float32), (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][: 1 + len(x) // hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=-1)) ** 2
    return (10 * np.log10(spec.T + 1e-12)).astype(np.float32), hop / rate


class SpectrogramPlot:
    """One reused figure: a spectrogram (time in s, frequency in kHz) and its dB colour bar."""

    def __init__(self) -> None:
        self.fig = Figure(figsize=SPEC_SIZE, dpi=DPI)  # fixed margins: no layout pass per image
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.07, 0.22, 0.83, 0.70))
        self.image = self.ax.imshow(
            np.zeros((2, 2)), origin="lower", aspect="auto", cmap="magma", interpolation="nearest"
        )
        bar = self.fig.colorbar(self.image, cax=self.fig.add_axes((0.915, 0.22, 0.015, 0.70)))
        bar.ax.set_title("dB", fontsize=7, pad=3)
        bar.ax.tick_params(labelsize=7)
        self.ax.set_xlabel("time (s)", fontsize=8)
        self.ax.set_ylabel("kHz", fontsize=8)
        self.ax.tick_params(labelsize=7)

    def draw(self, db: np.ndarray, hop: float, rate: int, seconds: float, top: float) -> None:
        """Show ``db`` relative to ``top`` (the group's loudest bin), ``RANGE_DB`` deep."""
        self.image.set_data(db - top)
        self.image.set_extent((-hop / 2, (db.shape[1] - 0.5) * hop, 0.0, rate / 2000))
        self.image.set_clim(-RANGE_DB, 0.0)
        self.ax.set_xlim(0.0, max(seconds, 1e-3))
        self.ax.set_ylim(0.0, rate / 2000)

    def save(self, out: Path) -> None:
        self.fig.savefig(out, format="png", dpi=DPI)


def loudest(dbs: Sequence[np.ndarray]) -> float:
    """The loudest bin of a group of spectrograms: its 0 dB (one colour scale for all)."""
    return max((float(d.max()) for d in dbs if d.size), default=0.0)


def _colour(systems: list[str]) -> dict[str, str]:
    return {s: COLOURS[i % len(COLOURS)] for i, s in enumerate(systems)}


def per_mixture_plot(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]], order: Mapping[str, list[str]]
) -> Figure:
    """SI-SDRi of each system on each mixture, one panel per task; mixtures sorted by the
    main system's score. scores: task -> system -> mixture -> dB; order: task -> mixtures."""
    tasks = list(scores)
    systems = list(dict.fromkeys(s for t in tasks for s in scores[t]))
    colour = _colour(systems)
    fig = Figure(figsize=(9, 0.4 + 2.6 * len(tasks)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(len(tasks), 1, i + 1)
        names = order[task]
        x = np.arange(len(names))
        for system, values in scores[task].items():
            y = [values.get(n, math.nan) for n in names]
            ax.plot(x, y, "o-", ms=4, lw=1, color=colour[system], label=system)
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
        ax.set_title(task, fontsize=9, loc="left")
        ax.set_ylabel("SI-SDRi (dB)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(names) <= 40:
            ax.set_xticks(x, names, fontsize=7)
            if len(names) > 12:
                ax.tick_params(axis="x", labelrotation=45)
        else:
            ax.set_xlabel(f"{len(names)} mixtures, sorted by score", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", ncols=min(4, len(scores[task])))
    return fig


def quality_speed_plot(summary: Sequence[Mapping[str, Any]]) -> Figure:
    """Mean SI-SDRi (95 % interval bars) against mean real-time factor per task and system."""
    systems = list(dict.fromkeys(s["system"] for s in summary))
    tasks = list(dict.fromkeys(s["task"] for s in summary))
    colour, markers = _colour(systems), "osD^vP*X"
    fig = Figure(figsize=(6.4, 3.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for s in summary:
        q, rtf = s.get("si_sdri"), s.get("rtf")
        if not q or not rtf or not q["n"] or not math.isfinite(rtf["mean"]):
            continue
        x, y = max(rtf["mean"], 1e-5), q["mean"]
        lo, hi = (q["lo"], q["hi"]) if math.isfinite(q["lo"]) else (y, y)
        marker = markers[tasks.index(s["task"]) % len(markers)]
        ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt=marker, color=colour[s["system"]], ms=6)
        label = s["system"] if len(tasks) == 1 else f"{s['system']} ({s['task']})"
        ax.annotate(label, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("real-time factor (wall time / audio time, log scale)", fontsize=8)
    ax.set_ylabel("SI-SDRi (dB), mean ± 95 % CI", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    return fig
