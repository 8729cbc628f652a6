"""Where the audio is in each Debian package: one generator of clips per package.

Used by ``build_data.py``; each ``src_*`` walks an unpacked package (``x``) and yields an
``Item`` per clip with its group (speaker / voice pack; the package for sfx), language and licence.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av
import numpy as np
import soundfile as sf

AUDIO_EXT = (".ogg", ".wav", ".flac")
# Non-speech files that hold words, singing, chatter or music (spoken letters, radio chatter,
# children, songs): kept out of the sfx prior. Non-verbal sounds (screams, groans, laughs,
# breaths) stay in, as the "voice" family.
VOICE_IN_SFX = re.compile(
    r"yoohoo|hellish|hogchant|/faces/|dreydl|apollo_lander|ghost|xing_school|raving_crowd"
    r"|valkyries|oooh",
    re.I,
)
CC = {"Attribution-ShareAlike": "CC-BY-SA", "Attribution": "CC-BY", "Zero": "CC0"}


@dataclass
class Item:
    """One source clip: where it comes from, how it is labelled and how to decode it."""

    pkg: str
    kind: str  # "speech" | "sfx"
    group: str
    src: str  # path inside the package
    name: str  # output file stem
    load: Callable[[], tuple[np.ndarray, int]]
    lang: str | None = None
    licence: str | None = None
    speaker: str | None = None  # speech: when one group pools several speakers
    family: str | None = None  # sfx: when known by construction (else families.family_of)


def load_sf(src: Path | bytes) -> tuple[np.ndarray, int]:
    """Decode with libsndfile, falling back to FFmpeg (PyAV); return (mono float32, rate)."""
    try:
        x, sr = sf.read(io.BytesIO(src) if isinstance(src, bytes) else src, dtype="float32")
        return (x.mean(axis=1) if x.ndim == 2 else x), sr
    except RuntimeError:
        return load_av(io.BytesIO(src) if isinstance(src, bytes) else src)


def load_av(src: Path | io.BytesIO, fmt: str | None = None) -> tuple[np.ndarray, int]:
    """Decode any FFmpeg-readable input (e.g. raw G.722) to mono float32."""
    with av.open(src if isinstance(src, io.BytesIO) else str(src), format=fmt) as c:
        st = c.streams.audio[0]
        rate = st.codec_context.sample_rate
        rs = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        out = [f.to_ndarray()[0] for fr in c.decode(st) for f in rs.resample(fr)]  # type: ignore[union-attr]
        out += [f.to_ndarray()[0] for f in rs.resample(None)]
        return np.concatenate([np.zeros(0, np.float32), *out]).astype(np.float32), rate


Stanzas = list[tuple[list[str], str, str]]  # (file patterns, licence, stanza text)


def dep5(x: Path, pkg: str) -> Stanzas:
    """Parse the package's machine-readable ``copyright`` file (empty if it is not DEP-5)."""
    cr = x / f"usr/share/doc/{pkg}/copyright"
    out = []
    for para in re.split(r"\n\s*\n", cr.read_text(errors="replace") if cr.exists() else ""):
        f = re.search(r"^Files:(.*(?:\n[ \t].*)*)", para, re.M)
        lic = re.search(r"^License: *(.*)", para, re.M)
        if f and lic:
            out.append((f.group(1).split(), lic.group(1).strip(), para))
    return out


def walk(x: Path, base: str, exts: tuple[str, ...] = AUDIO_EXT) -> Iterator[tuple[Path, str]]:
    """Yield (file, path relative to ``x / base``) for audio files, sorted."""
    root = x / base
    for p in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts):
        yield p, str(p.relative_to(root))


def item(pkg: str, x: Path, p: Path, rel: str, kind: str, group: str, **kw: str) -> Item:
    """Item for a plain file; the output name is its flattened path ``rel``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.rsplit(".", 1)[0].replace("/", "__"))
    return Item(pkg, kind, group, str(p.relative_to(x)), name, partial(load_sf, p), **kw)


def src_asterisk(pkg: str, x: Path) -> Iterator[Item]:
    lang = pkg.split("-")[3]
    lic = "CC-BY-3.0" if lang in ("it", "ru") else "CC-BY-SA-3.0"
    for p, rel in walk(x, "usr/share/asterisk/sounds", (".g722",)):
        rel = rel.split("/", 1)[1]  # drop the voice folder (e.g. it_IT_m_Carlo)
        if not rel.startswith("silence/"):
            it = item(pkg, x, p, rel, "speech", f"asterisk-{lang}", lang=lang, licence=lic)
            it.load = partial(load_av, p, "g722")
            yield it


def src_tuxpaint(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/tuxpaint/stamps"):
        if m := re.search(r"_desc(?:_([a-z]{2,3}))?[^/]*$", rel):
            lang = m.group(1) or "en"
            yield item(pkg, x, p, rel, "speech", f"tuxpaint-{lang}", lang=lang)
        elif not rel.startswith("symbols/") and not VOICE_IN_SFX.search(rel):
            yield item(pkg, x, p, rel, "sfx", "tuxpaint")


def src_hedgewars(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/games/hedgewars/Data/Sounds"):
        if rel.startswith("voices/"):
            pack = rel.split("/")[1].lower()  # Default_es, Russian_pl, Pirate, ...
            lang = "ru" if "russian" in pack else (pack.split("_")[1] if "_" in pack else "en")
            yield item(pkg, x, p, rel, "speech", "hedgewars-" + pack.replace("_", "-"), lang=lang)
        elif not VOICE_IN_SFX.search(rel):  # per debian/copyright, Droplet* are from freesound
            lic = "CC-BY-SA-3.0" if rel.startswith("Droplet") else "GFDL-1.3"
            yield item(pkg, x, p, rel, "sfx", "hedgewars", licence=lic)


def src_klettres(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/klettres", (".ogg",)):
        code = rel.split("/")[0]  # e.g. en_GB
        lang = code.split("_")[0].lower()
        yield item(
            pkg, x, p, rel, "speech", "klettres-" + code.replace("_", "-").lower(), lang=lang
        )


def src_0ad(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "audio"):  # only audio/ was extracted from public.zip
        parts = rel.split("/")
        if parts[0] not in ("music", "voice") and not VOICE_IN_SFX.search(rel):
            it = item(pkg, x, p, rel, "sfx", "0ad")
            it.src = "usr/share/games/0ad/mods/public/public.zip:" + it.src
            yield it


def src_wesnoth(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/games/wesnoth/1.16"):
        if "sounds/" in rel and not VOICE_IN_SFX.search(rel):
            yield item(pkg, x, p, rel, "sfx", "wesnoth")


def src_opensfx(pkg: str, x: Path) -> Iterator[Item]:
    """opensfx.cat = (offset, size) table, then per entry: name length, name, RIFF/WAVE data."""
    cat = x / "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    data = cat.read_bytes()
    for i in range((struct.unpack_from("<I", data)[0] & 0x7FFFFFFF) // 8):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off, n = off & 0x7FFFFFFF, data[off & 0x7FFFFFFF]
        title = data[off + 1 : off + 1 + n].rstrip(b"\0").decode("utf-8", "replace")
        wav = data[off + 1 + n : off + 1 + n + size]
        assert wav[:4] == b"RIFF", f"entry {i} of {cat} is not RIFF"
        lic = title.rsplit("License: ", 1)[-1].split(". ")[0].rstrip(".").replace(" Unported", "")
        lic = re.sub(r"Creative Commons ([\w-]+) ", lambda m: CC[m[1]] + "-", lic)
        name = re.sub(r"[^a-z0-9]+", "_", title.split('".')[0].lower()).strip("_") + f"_{i:02d}"
        src = f"{cat.relative_to(x)}#{i}: {title}"
        if not VOICE_IN_SFX.search(name):
            yield Item(pkg, "sfx", "opensfx", src, name, partial(load_sf, wav), licence=lic)


def src_lmms(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/lmms/samples"):  # .ds drumsynth patches: not audio
        sub = rel.split("/")[0]
        if sub not in ("waveforms", "shapes") and not VOICE_IN_SFX.search(rel):
            yield item(pkg, x, p, rel, "sfx", "lmms")


FILLETS_MAIN = {"m", "v"}  # the two fish: the main actors (37 + 38 min)


def fillets_speaker(level: str, stem: str) -> str:
    """Character code of ``<lvl>-<speaker>-<n>`` (also ``m-word``, ``word-m``; digits per level)."""
    f = stem.split("-")
    code = f[1] if len(f) >= 3 else (f[1] if f[1] in ("m", "v", "b") else f[0]) if f[1:] else "?"
    return f"{level}{code}" if code.isdigit() or code == "x" else code


def src_fillets_cs(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/games/fillets-ng/sound", (".ogg",)):
        spk = "fillets-cs-" + fillets_speaker(rel.split("/")[0], p.stem)
        minor = spk.removeprefix("fillets-cs-") not in FILLETS_MAIN
        group = "fillets-cs-minor" if minor else spk  # tiny speakers pooled into one group
        yield item(pkg, x, p, rel, "speech", group, lang="cs", speaker=spk)


FILLETS_NOT_SFX = re.compile(r"deu-|music|war-[ak]-|-hs-|sl-m-|ampliony")  # speech, music


def src_fillets(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/games/fillets-ng/sound", (".ogg",)):
        if rel.split("/")[1] in ("en", p.name) and not (  # <level>/en/*.ogg, share/*.ogg
            FILLETS_NOT_SFX.search(p.name) or VOICE_IN_SFX.search(rel)
        ):
            yield item(pkg, x, p, rel, "sfx", "fillets")


KTUBERLING_NARROW = {"es", "fi", "it", "nds", "nl", "pt", "sv"}  # 8 kHz recordings


def src_ktuberling(pkg: str, x: Path) -> Iterator[Item]:
    for p, rel in walk(x, "usr/share/ktuberling/sounds", (*AUDIO_EXT, ".opus")):
        lang = rel.split("/")[0]
        if lang in KTUBERLING_NARROW or "@" in lang:  # sr@latin etc. copy sr
            continue
        if sf.info(p).samplerate >= 16000:  # a few 8 kHz files among the wideband ones
            yield item(pkg, x, p, rel, "speech", f"ktuberling-{lang}", lang=lang)


MG = "usr/share/games/megaglest/"
# Units whose ack/select lines are animal calls, machines or moans, not words.
MG_NONHUMAN = set(
    "chicken beehive bull thunderbird behemoth dragon evil_dragon wild_sow elephant sheep mummy "
    "snake_basket eagle_pillar airship battle_machine ornithopter flying_carpet minaret cow pig "
    "archmage_tower wicker_behemoth golem catapult".split()
)


def src_megaglest(pkg: str, x: Path) -> Iterator[Item]:
    """Unit voice lines (speech), unit and common sounds, tileset animal calls (sfx)."""
    for p, rel in walk(x, MG):
        parts, stem = rel.split("/"), re.sub(r"\d+[a-z]?$", "", p.stem.lower())
        if "/units/" in rel:
            faction, unit = parts[3], parts[5]
        elif "commondata/sounds" in rel:
            faction, unit = "common", stem.rsplit("_", 1)[0]
        elif rel.startswith("tilesets/") and p.stem in ("chicken", "wolf"):
            faction, unit = "tileset", p.stem
        elif rel.startswith("data/core/water_sounds"):
            faction, unit = "core", "water"
        else:  # music, menu sounds, tileset ambiences (many sources at once)
            continue
        action = stem.rsplit("_", 1)[-1]
        human = unit not in MG_NONHUMAN and faction not in ("tileset", "core")
        if human and action in ("ack", "select", "sel"):
            voice = stem.rsplit("_", 1)[0] if "_" in stem else unit  # e.g. swordman
            spk = f"megaglest-{faction}-{voice}"
            yield item(pkg, x, p, rel, "speech", f"megaglest-{faction}", lang="en", speaker=spk)
        else:
            it = item(pkg, x, p, rel, "sfx", "megaglest")
            own = faction != "common"  # common sounds: arrow_hit, tower_hit, ...
            hurt = action == "die" or (own and action == "hit")
            it.family = "voice" if human and hurt else None
            yield it


def src_widelands(pkg: str, x: Path) -> Iterator[Item]:
    for base in ("sound", "world/critters"):
        for p, rel in walk(x, f"usr/share/games/widelands/data/{base}"):
            if sf.info(p).samplerate >= 16000:  # 20 files are 11 kHz (and 1 at 15 kHz)
                yield item(pkg, x, p, f"{base}/{rel}", "sfx", "widelands")


SOURCES: dict[str, tuple[str, Callable[[str, Path], Iterator[Item]]]] = {
    **{f"asterisk-core-sounds-{lg}-g722": ("", src_asterisk) for lg in "en es fr it ru".split()},
    "tuxpaint-stamps-default": ("GPL-2", src_tuxpaint),
    "hedgewars-data": ("GFDL-1.3", src_hedgewars),
    "klettres-data": ("GPL-2+", src_klettres),
    "0ad-data": ("CC-BY-SA-3.0", src_0ad),
    "wesnoth-1.16-data": ("GPL-2+", src_wesnoth),
    "openttd-opensfx": ("CC-BY-SA-3.0", src_opensfx),
    "sonic-pi-samples": (
        "CC0-1.0",  # samples/README.md: all from freesound.org, CC0
        lambda pkg, x: (
            item(pkg, x, *f, "sfx", "sonic-pi") for f in walk(x, "usr/share/sonic-pi/samples")
        ),
    ),
    "lmms-common": ("GPL-2+", src_lmms),
    "fillets-ng-data-cs": ("GPL-2", src_fillets_cs),
    "ktuberling-data": ("GPL-2+", src_ktuberling),
    "megaglest-data": ("CC-BY-SA-3.0", src_megaglest),
    "widelands-data": ("GPL-2+", src_widelands),
    "fillets-ng-data": ("GPL-2", src_fillets),
}
