"""Audio files: the only module that opens them (soundfile for I/O, soxr for resampling)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import DiffsepError, InputError
from .files import is_partial

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".w64")


def find_audio(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively: regular files with audio extensions, not the
    leftovers of interrupted writes) into a sorted file list; a path named on its own may be
    any regular file (it is checked when read)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file() and not is_partial(f)
            )
        elif p.is_file():
            found.append(p)
        elif p.exists():
            raise InputError(f"{p}: not a regular file (a device, FIFO or socket)")
        else:
            raise InputError(f"no such file or folder: {p}")
    return found


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file, with a one-line error for anything soundfile cannot read
    (a FIFO or device is refused before it is opened: reading it could block forever)."""
    if not Path(path).is_file():
        what = "no such file" if not Path(path).exists() else "not a regular file"
        raise InputError(f"{path}: {what}")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(f"{path}: not a readable audio file ({exc})") from None
    except OSError as exc:  # permission denied and friends
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def count_nonfinite(path: str | Path, block: int = 1 << 20) -> int:
    """Number of NaN / inf samples of a file (0 at once for integer PCM, which cannot hold
    them; float and compressed formats are decoded once, in blocks)."""
    subtype = audio_info(path).subtype
    if subtype.startswith(("PCM_", "ULAW", "ALAW")):
        return 0
    bad = 0
    with sf.SoundFile(str(path)) as f:
        while len(x := f.read(block, dtype="float64", always_2d=True)):
            bad += int(np.count_nonzero(~np.isfinite(x)))
    return bad


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample [L] or [L, C] float audio (soxr HQ); identity when the rates match."""
    if sr_in == sr_out:
        return x
    return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode a whole file to mono float32 at ``sample_rate``: [L]."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(f"{path}: not a readable audio file ({exc})") from None
    if not data.size:
        raise InputError(f"{path}: empty audio")
    return resample(data.mean(axis=1), sr, sample_rate)


def read_blocks(path: str | Path, block: int) -> Iterator[np.ndarray]:
    """Stream [block, C] float32 frames from a file without loading it whole (``read()`` until
    it returns nothing: ``blocks()`` yields uninitialised memory past a truncated MP3's end)."""
    with sf.SoundFile(str(path)) as f:
        while len(x := f.read(block, dtype="float32", always_2d=True)):
            yield x


def transcode(src: str | Path, out: str | Path, fmt: str, subtype: str) -> None:
    """Re-encode ``src`` into ``out`` (libsndfile ``fmt`` / ``subtype``, e.g. OGG / VORBIS) at
    its rate and channels, block by block."""
    info = audio_info(src)
    with sf.SoundFile(str(out), "w", info.samplerate, info.channels, subtype, format=fmt) as f:
        for block in read_blocks(src, 1 << 16):
            f.write(block)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf for silence)."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10 * np.log10(power) if power > 0 else float("-inf")


SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command (sndfile.h)


def save_audio(path: str | Path, x: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> None:
    """Write [L] or [L, C] float audio as WAV (32-bit float by default), byte-reproducibly:
    without the PEAK chunk libsndfile adds to float files (it holds a timestamp)."""
    channels = 1 if x.ndim == 1 else x.shape[1]
    try:
        with sf.SoundFile(str(path), "w", sample_rate, channels, subtype, format="WAV") as f:
            snd = getattr(sf, "_snd", None)  # soundfile exposes no wrapper for sf_command
            if snd is not None:
                snd.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
            f.write(x)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise DiffsepError(f"cannot write {path}: {exc}") from None
