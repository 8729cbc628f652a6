#!/usr/bin/env python3
"""Build the diffsep speech / sound-effects corpora from offline Debian packages.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` under
``<out>/_cache``. Each clip is downmixed, resampled to 16 kHz (soxr HQ), trimmed of end frames
more than 50 dB below its peak, dropped if silent or under 0.3 s, and written as FLAC PCM_16 to
``<out>/<split>/<kind>/<group>/<name>.flac``. Honest splits: speech test = asterisk-it (male) +
asterisk-ru (female), valid = tuxpaint-ca + tuxpaint-da, and these languages are dropped from
all other speech; sfx go 80/10/10 by a hash of (package, family = first word of the file stem),
so takes/variants of a recording never straddle splits; exact duplicates are removed. Also writes
manifest.jsonl, summary.json, LICENCES.md. Re-runs skip unpacked packages and written files.

Usage: python scripts/build_data.py [--out data] [--packages PKG ...] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from debian_sources import AUDIO_EXT, SOURCES, Item

SR, MIN_DUR, TRIM_DB, FRAME = 16000, 0.3, 50.0, 320
TEST_GROUPS, VALID_GROUPS = {"asterisk-it", "asterisk-ru"}, {"tuxpaint-ca", "tuxpaint-da"}
HELD_OUT_LANGS = {"it", "ru", "ca", "da"}  # languages of the test / valid speakers
SAME_SPEAKER = {"asterisk-en": "asterisk-allison", "asterisk-es": "asterisk-allison"}
QUICK = [f"asterisk-core-sounds-{lang}-g722" for lang in ("en", "it")]
QUICK += ["sonic-pi-samples", "openttd-opensfx"]
Stanzas = list[tuple[list[str], str, str]]  # (file patterns, licence, stanza text)


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
    ver = ["dpkg-deb", "-f", str(deb), "Version"]
    version = subprocess.run(ver, check=True, capture_output=True, text=True).stdout.strip()
    if pkg == "0ad-data":  # pull only the audio out of the 3.3 GB zip, then drop the rest
        with zipfile.ZipFile(xdir / "usr/share/games/0ad/mods/public/public.zip") as z:
            for n in z.namelist():
                skip = n.startswith(("audio/music/", "audio/voice/"))
                if n.startswith("audio/") and n.lower().endswith(AUDIO_EXT) and not skip:
                    z.extract(n, xdir)
        shutil.rmtree(xdir / "usr/share/games")
        deb.unlink()
    (xdir / ".extracted").write_text(version + "\n")
    return xdir


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


def family(name: str) -> str:
    """Family of a clip: first word of its stem, digits stripped (``Footstep_Grass_2``,
    ``footstep3`` -> ``footstep``); two words if the first is short (``bd_808``)."""
    stem = name.split("__")[-1].lower()  # drop the flattened folder part
    words = [w.rstrip("0123456789") or w for w in re.split(r"[^a-z0-9]+", stem) if w]
    return words[0] if len(words[0]) >= 3 or len(words) == 1 else "_".join(words[:2])


def split_of(it: Item) -> str | None:
    """Assign a split, or None when the clip must be dropped to keep the splits honest."""
    if it.kind == "speech":
        if it.group in TEST_GROUPS | VALID_GROUPS:
            return "test" if it.group in TEST_GROUPS else "valid"
        return None if it.lang in HELD_OUT_LANGS else "train"
    key = f"{it.pkg}:{family(it.name)}"
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 80 else "valid" if h < 90 else "test"


def clean(x: np.ndarray, sr: int) -> np.ndarray | None:
    """Resample to 16 kHz, trim quiet frames at both ends; None if silent or too short."""
    y = soxr.resample(x.astype(np.float32), sr, SR, quality="HQ") if sr != SR else x
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if not np.isfinite(peak) or peak < 1e-4:
        return None
    nfr = -(-len(y) // FRAME)
    rms = np.sqrt(np.mean(np.pad(y, (0, nfr * FRAME - len(y))).reshape(nfr, FRAME) ** 2, 1))
    active = np.flatnonzero(rms > peak * 10 ** (-TRIM_DB / 20))
    y = y[active[0] * FRAME : (active[-1] + 1) * FRAME]
    if len(y) < MIN_DUR * SR:
        return None
    return y * (0.99 / peak) if peak > 0.99 else y  # rescale only where it would clip


def build(out: Path, pkgs: list[str]) -> None:
    """Process ``pkgs``, merge with manifest rows of other packages, write the reports."""
    man = out / "manifest.jsonl"
    old = [json.loads(r) for r in man.read_text().splitlines()] if man.exists() else []
    rows = [r for r in old if r["package"] not in pkgs and (out / r["path"]).exists()]
    seen = {r["sha1"] for r in rows}
    for pkg in pkgs:
        try:
            x = ensure_package(pkg, out / "_cache")
        except (subprocess.CalledProcessError, OSError) as e:
            print(f"[skip] {pkg}: {e}")
            continue
        default_lic, source = SOURCES[pkg]
        used: set[Path] = set()
        n = dict.fromkeys(["written", "kept", "held_out", "bad_audio", "duplicate"], 0)
        for it in source(pkg, x):
            if (split := split_of(it)) is None:
                n["held_out"] += 1
                continue
            dst = out / split / it.kind / it.group / f"{it.name}.flac"
            if dst in used:  # same stem, other extension (e.g. mace.ogg / mace.wav)
                dst = dst.with_name(f"{it.name}_{Path(it.src).suffix[1:]}.flac")
            used.add(dst)
            tmp = dst.with_suffix(".part")
            if not dst.exists():
                try:
                    y = clean(*it.load())
                except Exception as e:  # undecodable (e.g. Vorbis-in-WAV): report, drop
                    print(f"[warn] {pkg}: {it.src}: {type(e).__name__}: {e}")
                    y = None
                if y is None:
                    n["bad_audio"] += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                sf.write(tmp, y, SR, format="FLAC", subtype="PCM_16")
            sha1 = hashlib.sha1((dst if dst.exists() else tmp).read_bytes()).hexdigest()
            if sha1 in seen:  # byte-identical to a clip already kept
                tmp.unlink(missing_ok=True)
                dst.unlink(missing_ok=True)
                n["duplicate"] += 1
                continue
            n["kept" if dst.exists() else "written"] += 1
            if tmp.exists():
                tmp.rename(dst)
            seen.add(sha1)
            lic = it.licence or default_lic
            rows.append(
                {"path": str(dst.relative_to(out)), "split": split, "kind": it.kind,
                 "group": it.group, "package": pkg, "source": it.src, "licence": lic,
                 "duration": round(sf.info(dst).duration, 3), "lang": it.lang,
                 "speaker": SAME_SPEAKER.get(it.group, it.group) if it.lang else None,
                 "split_key": f"{pkg}:{family(it.name)}", "sha1": sha1}
            )  # fmt: skip
        print(f"[done] {pkg}: {n}", flush=True)
    rows.sort(key=lambda r: r["path"])
    man.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_reports(out, rows)
    check(rows)


def write_reports(out: Path, rows: list[dict]) -> None:
    """summary.json (minutes per split x kind x group) and LICENCES.md (per package)."""
    mins: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for r in rows:
        mins[r["split"]][r["kind"]][r["group"]] += r["duration"] / 60
    summary = {
        s: {k: {"minutes": round(sum(g.values()), 2),
                "files": sum(r["split"] == s and r["kind"] == k for r in rows),
                "groups": {n: round(v, 2) for n, v in sorted(g.items())}}
            for k, g in sorted(kinds.items())}
        for s, kinds in sorted(mins.items())
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for s, kinds in summary.items():
        for k, v in kinds.items():
            m, f, g = v["minutes"], v["files"], len(v["groups"])
            print(f"{s:5} {k:6} {m:6.1f} min {f:5} files {g:3} groups")
    lines = [
        "# Licences of the audio in this directory\n",
        "Clips were decoded, downmixed, resampled and trimmed from Debian bookworm packages; the "
        "per-file licence and source path are in manifest.jsonl. Stanzas below are quoted from "
        "each package's /usr/share/doc/<package>/copyright (which has the full licence texts).\n",
    ]
    keep = re.compile(r"^\*$|-\*$|sound|sample|audio|\.(wav|ogg|flac)|wav/", re.I)
    for pkg in sorted({r["package"] for r in rows}):
        x = out / "_cache/x" / pkg
        marker, stanzas = x / ".extracted", dep5(x, pkg)
        ver = marker.read_text().strip() if marker.exists() else "?"
        lics = ", ".join(sorted({r["licence"] for r in rows if r["package"] == pkg}))
        lines += [f"## {pkg} {ver}\n", f"Licence(s) of the clips used: {lics}\n", "```"]
        if not stanzas:  # free-form copyright file: quote its head
            cr = x / f"usr/share/doc/{pkg}/copyright"
            lines += cr.read_text(errors="replace").splitlines()[:40] if cr.exists() else []
        for pats, _, text in stanzas:
            if len(stanzas) <= 8 or any(keep.search(p) for p in pats):
                lines += [*text.strip("\n").splitlines()[:30], ""]
        lines += ["```", ""]
    (out / "LICENCES.md").write_text("\n".join(lines))


def check(rows: list[dict]) -> None:
    """Assert that no speaker, language, group, source, variant or content spans two splits."""
    fields = {"speech": ("group", "speaker", "lang", "source"), "sfx": ("split_key", "source")}
    for kind, keys in fields.items():
        for key in (*keys, "sha1"):
            where: dict = defaultdict(set)
            for r in rows:
                if r["kind"] == kind:
                    where[r[key]].add(r["split"])
            bad = [(v, s) for v, s in where.items() if len(s) > 1]
            assert not bad, f"{kind}: {key} shared between splits: {bad[:5]}"
    assert len({r["sha1"] for r in rows}) == len(rows), "duplicate audio in the corpus"
    assert not {r["lang"] for r in rows if r["split"] == "train"} & HELD_OUT_LANGS
    print(f"[check] OK: {len(rows)} files; no speaker/language/group/source/content overlap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data"), help="output dir (default: data)")
    ap.add_argument(
        "--packages", nargs="+", choices=sorted(SOURCES), default=list(SOURCES), metavar="PKG"
    )
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args = ap.parse_args()
    build(args.out.resolve(), QUICK if args.quick else args.packages)


if __name__ == "__main__":
    main()
