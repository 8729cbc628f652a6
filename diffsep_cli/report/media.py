"""What a report page shows beside it: players' sources (relative URLs, OGG previews where the
browser cannot play a file or it lies outside the page's folder) and spectrogram images."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..errors import DiffsepError
from ..io.audio import audio_info, load_mono, transcode
from ..io.files import atomic_file, check_writable
from .figures import SpectrogramPlot, loudest, spectrogram_db

# (format, subtypes) soundfile writes that Chromium, Firefox and Safari decode
PLAYABLE = {
    "WAV": {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "ULAW", "ALAW"},
    "FLAC": None,
    "OGG": None,
    "MP3": None,
}
PLAYABLE["WAVEX"] = PLAYABLE["WAV"]


def files_dir(page: Path) -> Path:
    """The folder of a page's images and previews: ``report.html`` -> ``report_files``."""
    return page.with_name(f"{page.stem}_files")


def check_report_path(page: Path, overwrite: bool) -> Path:
    """Refuse, before any work, a page that cannot be written (one line)."""
    if page.is_dir():
        raise DiffsepError(f"cannot write the report {page}: it is a folder")
    check_writable(page, overwrite)
    folder = page.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DiffsepError(f"cannot write the report {page}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DiffsepError(f"cannot write the report {page}: {folder} is not writable")
    if files_dir(page).exists() and not files_dir(page).is_dir():
        raise DiffsepError(f"cannot write the report {page}: {files_dir(page)} is not a folder")
    return page


def playable(path: Path) -> bool:
    """Whether browsers play this file as it is."""
    info = audio_info(path)
    subtypes = PLAYABLE.get(info.format, set())
    return subtypes is None or info.subtype in subtypes


def relative_url(path: Path, base: Path) -> str:
    """A percent-encoded URL of ``path`` relative to the folder ``base``."""
    rel = os.path.relpath(path.absolute(), base.absolute())
    return quote(Path(rel).as_posix(), safe="/")


@dataclass
class Track:
    """One player on the page, with its spectrogram."""

    label: str
    path: str  # the file as the user knows it (shown as text)
    url: str  # the player's source, relative to the page
    image: str  # the spectrogram, relative to the page
    seconds: float
    note: str = ""  # e.g. "OGG preview"
    score: str = ""  # e.g. "SI-SDRi +4.2 dB"


class Assets:
    """Writes a page's images and previews into its ``_files`` folder, atomically each."""

    def __init__(self, page: Path) -> None:
        self.page, self.dir = page, files_dir(page)
        self.count = 0
        self.plot: SpectrogramPlot | None = None

    def _name(self, stem: str, suffix: str, sub: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:40] or "track"
        (self.dir / sub).mkdir(parents=True, exist_ok=True)
        return self.dir / sub / f"{self.count:04d}-{slug}{suffix}"

    def url(self, path: Path) -> str:
        return relative_url(path, self.page.parent)

    def shown(self, path: Path) -> str:
        """A file as the page shows it: relative to the page's folder where it lies under it."""
        base = self.page.parent.resolve()
        full = path.resolve()
        return str(full.relative_to(base)) if full.is_relative_to(base) else str(path)

    def audio(self, path: Path) -> tuple[str, str]:
        """The player's URL for ``path`` and a note: the file itself where the browser plays
        it and it lies under the page's folder, else an OGG Vorbis preview written here."""
        inside = path.resolve().is_relative_to(self.page.parent.resolve())
        if inside and playable(path):
            return self.url(path), ""
        out = self._name(path.stem, ".ogg", "audio")
        with atomic_file(out, overwrite=True) as tmp:
            transcode(path, tmp, "OGG", "VORBIS")
        why = "not playable in browsers" if inside else "outside the report's folder"
        return self.url(out), f"OGG preview ({why})"

    def figure(self, fig: object, stem: str) -> str:
        """Save a matplotlib figure as PNG beside the page; its URL."""
        out = self._name(stem, ".png", "img")
        with atomic_file(out, overwrite=True) as tmp:
            fig.savefig(tmp, format="png")  # type: ignore[attr-defined]
        return self.url(out)

    def tracks(self, group: list[tuple[str, Path, str]]) -> list[Track]:
        """Players and spectrograms of (label, file, score) tracks on one colour scale."""
        self.plot = self.plot or SpectrogramPlot()
        audio = []
        for _, path, _ in group:
            rate = int(audio_info(path).samplerate)
            audio.append((rate, load_mono(path, rate)))
        specs = [spectrogram_db(x, rate) for rate, x in audio]
        top = loudest([db for db, _ in specs])
        out = []
        for (label, path, score), (rate, x), (db, hop) in zip(group, audio, specs, strict=True):
            url, note = self.audio(path)
            self.plot.draw(db, hop, rate, len(x) / rate, top)
            image = self._name(f"{path.stem}-{label}", ".png", "img")
            with atomic_file(image, overwrite=True) as tmp:
                self.plot.save(tmp)
            shown = self.shown(path)
            out.append(Track(label, shown, url, self.url(image), len(x) / rate, note, score))
        return out
