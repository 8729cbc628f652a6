"""Separate audio files of any length in bounded memory: stream blocks in, resample to the
priors' rate, separate level-calibrated segments in batches, cross-fade them, resample back
and stream every source to its own file (written under a temporary name, renamed when done).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from ..config import PEAK_LIMIT, SeparateConfig
from ..core.separation import separate_tensor
from ..core.sources import ResolvedSources
from ..core.stream import OverlapAdd, Segmenter, segment_count
from ..errors import DiffsepError, InputError
from .audio import audio_info, count_nonfinite
from .files import atomic_file

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BLOCK_SECONDS = 10.0
SILENCE_RMS = 1e-5  # segments quieter than -100 dBFS are left silent
MAX_GAIN = 1000.0


@dataclass
class FileResult:
    input: Path
    outputs: dict[str, Path]
    seconds: float  # audio duration
    wall: float = 0.0
    clipped: int = 0  # input samples at full scale
    segments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.wall / self.seconds if self.seconds else 0.0


def _calibrate(seg: Tensor, target_rms: float) -> Tensor:
    """Per-segment gain bringing the mixture to the level the priors were trained at, or lower
    where that would peak above ``PEAK_LIMIT`` (as the training crops); 0 for (near-)silence.
    seg: [N, L] -> [N]."""
    rms = seg.square().mean(dim=-1).sqrt()
    peak = seg.abs().amax(dim=-1).clamp_min(SILENCE_RMS)
    gain = torch.minimum(target_rms / rms.clamp_min(SILENCE_RMS), PEAK_LIMIT / peak)
    gain = gain.clamp(max=MAX_GAIN)
    return torch.where(rms > SILENCE_RMS, gain, torch.zeros_like(gain))


class _Separator:
    """Batches segments [C, S] and returns separated ones [C, K, S] in order."""

    def __init__(
        self,
        src: ResolvedSources,
        cfg: SeparateConfig,
        device: torch.device,
        progress: Progress,
        name: str = "the input",
    ) -> None:
        self.src, self.cfg, self.device, self.progress = src, cfg, device, progress
        self.name = name
        k = len(src.priors)
        level = float(np.mean([p.config.level_dbfs for p in src.priors]))
        self.target = 10 ** ((level + 10 * math.log10(k)) / 20)  # K sources at `level` each
        self.pending: list[tuple[int, Tensor]] = []

    def _run(self) -> list[Tensor]:
        index = [i for i, _ in self.pending]
        segs = torch.stack([s for _, s in self.pending])  # [N, C, S]
        n, c, length = segs.shape
        flat = segs.reshape(n * c, length).to(self.device)
        gain = _calibrate(flat, self.target)
        out = torch.zeros(n * c, len(self.src.priors), length, device=self.device)
        live = (gain > 0).nonzero().flatten().tolist()
        if live:
            gens = [
                torch.Generator().manual_seed(
                    self.cfg.seed * 1_000_003 + (j % c) * 10_007 + index[j // c]
                )
                for j in live
            ]
            est = separate_tensor(
                self.src.priors,
                flat[live] * gain[live, None],
                labels=self.src.labels,
                steps=self.cfg.steps,
                spacing=self.cfg.spacing,
                guidance=self.cfg.guidance(),
                init=self.cfg.init,
                generator=gens,
                consistency=self.cfg.consistency,
                precision=self.cfg.precision,
                samples=self.cfg.samples,
                low_memory=self.cfg.low_memory,
                classifier=self.src.classifier,
                classes=self.src.classes,
                callback=lambda i, *_: self.progress("step", self.cfg.steps - i, self.cfg.steps),
            )
            bad = sorted({index[live[j] // c] for j in (~est.isfinite()).nonzero()[:, 0].tolist()})
            if bad:
                raise InputError(
                    f"the solver diverged (non-finite output) in segment(s) {bad[:5]} of "
                    f"{self.name}: nothing written for it"
                )
            out[live] = est / gain[live, None, None]
        self.pending = []
        return list(out.cpu().reshape(n, c, -1, length))

    def push(self, index: int, seg: Tensor) -> list[Tensor]:
        # a shorter (last) segment cannot share a batch with full ones
        done = self.flush() if self.pending and self.pending[0][1].shape != seg.shape else []
        self.pending.append((index, seg))
        return done + (self._run() if len(self.pending) >= self.cfg.batch_size else [])

    def flush(self) -> list[Tensor]:
        return self._run() if self.pending else []


def _input_blocks(path: Path, channels_out: int, clip: list[int]) -> Iterator[np.ndarray]:
    """[n, C] float32 blocks of the input: the mono downmix, or every channel. A decoding
    error (a truncated or corrupt file) is an InputError naming the file."""
    try:
        with sf.SoundFile(str(path)) as f:
            block = max(1, int(BLOCK_SECONDS * f.samplerate))
            # read() until it returns nothing: a header may promise more frames than decode
            # (truncated MP3), and blocks() then yields uninitialised memory
            while len(x := f.read(block, dtype="float32", always_2d=True)):
                clip[0] += int(np.count_nonzero(np.abs(x) >= 0.999))
                yield x if channels_out == x.shape[1] else x.mean(axis=1, keepdims=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        if isinstance(exc, torch.OutOfMemoryError):
            raise
        raise InputError(f"{path}: truncated or corrupt audio ({exc})") from None


def output_format(info: sf._SoundFileInfo, fmt: str | None, subtype: str | None) -> tuple[str, str]:
    """(format, subtype) for outputs: the input's unless given; checked with libsndfile."""
    fmt = (fmt or info.format).upper()
    if fmt not in sf.available_formats():
        raise DiffsepError(f"unknown output format {fmt!r}")
    subtype = (subtype or (info.subtype if fmt == info.format else "")).upper()
    if not subtype or not sf.check_format(fmt, subtype):
        if subtype and subtype != info.subtype.upper():
            raise DiffsepError(f"subtype {subtype} is not valid for {fmt}")
        subtype = sf.default_subtype(fmt)
    return fmt, subtype


def _segments(
    path: Path, c: int, clip: list[int], rate: int, segmenter: Segmenter
) -> Iterator[Tensor]:
    """The input as [C, S] segments at the priors' ``rate`` (the last one trimmed), read
    and resampled in blocks."""
    down = soxr.ResampleStream(audio_info(path).samplerate, rate, c, dtype="float32", quality="HQ")
    for x in _input_blocks(path, c, clip):
        yield from segmenter.push(torch.from_numpy(down.resample_chunk(x).T.copy()))
    tail = down.resample_chunk(np.zeros((0, c), np.float32), last=True)
    yield from segmenter.push(torch.from_numpy(tail.T.copy()))
    yield from segmenter.finish()


class _Writer:
    """Cross-fades separated segments [C, K, S], resamples them to the input rate, restores
    mixture consistency there (the residual of the resampling shared equally, unless
    ``consistency`` is "none") and streams each source to its file, cropped to the input's
    exact length."""

    def __init__(
        self,
        files: list[sf.SoundFile],
        path: Path,
        ola: OverlapAdd,
        rate: int,
        shape: tuple[int, int],
        consistency: str,
    ) -> None:
        info = audio_info(path)
        self.name = str(path)
        self.files, self.ola, (self.c, self.k) = files, ola, shape
        self.frames, self.n_prior = info.frames, math.ceil(info.frames * rate / info.samplerate)
        self.up = soxr.ResampleStream(
            rate, info.samplerate, self.c * self.k, dtype="float32", quality="HQ"
        )
        self.mix = _input_blocks(path, self.c, [0]) if consistency != "none" else None
        self.mix_buf = np.zeros((0, self.c), dtype=np.float32)
        self.emitted = self.written = 0

    def push(self, seg: Tensor) -> None:
        self._emit(self.ola.push(seg))

    def finish(self) -> None:
        self._emit(self.ola.finish(), last=True)
        if self.written < self.frames:  # resampler rounding: pad the last few samples
            self._write(np.zeros((self.frames - self.written, self.c * self.k), np.float32))
        for f in self.files:
            f.close()

    def _emit(self, block: Tensor, last: bool = False) -> None:  # [C, K, n] at the prior rate
        block = block[..., : max(0, self.n_prior - self.emitted)]
        self.emitted += block.shape[-1]
        self._write(self.up.resample_chunk(block.reshape(self.c * self.k, -1).T.numpy(), last=last))

    def _write(self, y: np.ndarray) -> None:  # [n, C*K] at the input rate
        y = y[: self.frames - self.written].reshape(-1, self.c, self.k)
        if self.mix is not None:
            while len(self.mix_buf) < len(y):  # past what decodes: silence, as the outputs
                more = next(self.mix, np.zeros((len(y) - len(self.mix_buf), self.c), np.float32))
                self.mix_buf = np.concatenate([self.mix_buf, more])
            mix, self.mix_buf = self.mix_buf[: len(y)], self.mix_buf[len(y) :]
            y = y + ((mix - y.sum(axis=2)) / self.k)[:, :, None]
        if not np.isfinite(y).all():  # never write NaN / inf, whatever went wrong upstream
            raise InputError(f"{self.name}: non-finite output samples; nothing written for it")
        for j, f in enumerate(self.files):
            f.write(y[:, :, j])
        self.written += len(y)


def separate_file(
    path: Path,
    outputs: dict[str, Path],
    src: ResolvedSources,
    cfg: SeparateConfig,
    *,
    fmt: str | None = None,
    subtype: str | None = None,
    overwrite: bool = False,
    device: torch.device | str = "cpu",
    progress: Progress = lambda stage, done, total: None,
) -> FileResult:
    """Separate one file into ``outputs`` (source name -> path), streaming in blocks."""
    info = audio_info(path)
    if info.frames <= 0:
        raise InputError(f"{path}: empty audio (0 samples)")
    if bad := count_nonfinite(path):
        raise InputError(f"{path}: {bad} samples are not finite (NaN or inf)")
    fmt, subtype = output_format(info, fmt, subtype)
    rate = src.priors[0].config.sample_rate
    seg_len = round((cfg.segment or min(p.config.segment for p in src.priors) / rate) * rate)
    overlap = min(round(cfg.overlap * seg_len), seg_len // 2)  # 0.5 of an odd length rounds up
    c = info.channels if cfg.per_channel else 1
    total = segment_count(math.ceil(info.frames * rate / info.samplerate), seg_len, overlap)
    result = FileResult(path, outputs, info.frames / info.samplerate, segments=total)
    start, clip = time.perf_counter(), [0]
    separator = _Separator(src, cfg, torch.device(device), progress, str(path))
    with ExitStack() as stack:
        tmps = {n: stack.enter_context(atomic_file(p, overwrite)) for n, p in outputs.items()}
        files = [
            stack.enter_context(
                sf.SoundFile(str(tmps[n]), "w", info.samplerate, c, subtype, format=fmt)
            )
            for n in src.names
        ]
        ola = OverlapAdd(seg_len, overlap, src.groups)
        writer = _Writer(files, path, ola, rate, (c, len(src.priors)), cfg.consistency)
        done = 0
        segments = itertools.chain(
            _segments(path, c, clip, rate, Segmenter(seg_len, overlap)), [None]
        )
        for index, seg in enumerate(segments):  # streamed: one segment at a time
            for out in separator.flush() if seg is None else separator.push(index, seg):
                writer.push(out)
                done += 1
                progress("segments", done, total)
        writer.finish()
    result.wall, result.clipped = time.perf_counter() - start, clip[0]
    return result
