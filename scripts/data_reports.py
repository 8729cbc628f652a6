"""Reports on a built corpus: summary.json, LICENCES.md, per-package sanity stats, the sfx class
tree of hard links, and the honesty checks. Used by ``build_data.py``."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from debian_sources import dep5
from more_sources import NOTES

SPLITS = ("train", "valid", "test")


def clip_stats(x: np.ndarray, sr: int, y: np.ndarray) -> dict:
    """Sanity numbers of one clip: source rate, peak, active fraction, clipped source samples."""
    frame = 320
    nfr = max(1, len(y) // frame)
    rms = np.sqrt(np.mean(y[: nfr * frame].reshape(nfr, -1) ** 2, 1) + 1e-20)
    peak = float(np.max(np.abs(y)))
    return {"src_rate": sr, "peak": round(peak, 4),
            "active": round(float(np.mean(rms > peak * 10 ** (-35 / 20))), 3),
            "clipped": int(np.sum(np.abs(x) >= 0.999))}  # fmt: skip


def _tally(rows: list[dict]) -> dict:
    """Minutes and clips of ``rows`` by group (and by family for sfx)."""
    out: dict = {"minutes": round(sum(r["duration"] for r in rows) / 60, 2), "clips": len(rows)}
    for key, name in (("group", "groups"), ("family", "families")):
        by: dict = defaultdict(list)
        for r in rows:
            if r.get(key):
                by[r[key]].append(r["duration"])
        if by:
            out[name] = {k: {"minutes": round(sum(v) / 60, 2), "clips": len(v)}
                              for k, v in sorted(by.items())}  # fmt: skip
    return out


def package_stats(rows: list[dict]) -> dict:
    """Per package: clips, minutes, source rates, median length, quiet and clipped clips."""
    out = {}
    for pkg in sorted({r["package"] for r in rows}):
        rs = [r for r in rows if r["package"] == pkg]
        dur = np.array([r["duration"] for r in rs])
        rates = Counter(r.get("src_rate") for r in rs)
        out[pkg] = {
            "splits": sorted({r["split"] for r in rs}), "clips": len(rs),
            "minutes": round(float(dur.sum()) / 60, 2),
            "median_s": round(float(np.median(dur)), 2), "max_s": round(float(dur.max()), 1),
            "src_rates": {str(k): v for k, v in sorted(rates.items(), key=lambda kv: -kv[1])},
            "mostly_quiet": sum(r.get("active", 1) < 0.3 for r in rs),
            "low_peak": sum(r.get("peak", 1) < 0.05 for r in rs),
            "clipped_src": sum(r.get("clipped", 0) > 10 for r in rs),
        }  # fmt: skip
    return out


def write_summary(out: Path, rows: list[dict]) -> dict:
    """summary.json: minutes / clips per split x kind (x group, x family), and package stats."""
    summary: dict = {}
    for s in SPLITS:
        for k in ("speech", "sfx"):
            rs = [r for r in rows if r["split"] == s and r["kind"] == k]
            if rs:
                summary.setdefault(s, {})[k] = _tally(rs)
    summary["packages"] = package_stats(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for s in SPLITS:
        for k, v in summary.get(s, {}).items():
            m, f, g = v["minutes"], v["clips"], len(v["groups"])
            print(f"{s:5} {k:6} {m:6.1f} min {f:5} clips {g:3} groups")
    for s in SPLITS:
        fams = summary.get(s, {}).get("sfx", {}).get("families", {})
        print(f"{s:5} sfx families:", ", ".join(f"{f} {v['minutes']:.1f}" for f, v in fams.items()))
    print(f"{'package':28} {'splits':16} {'clips':>5} {'min':>6} {'med s':>5} {'max s':>5} "
          "quiet lowpk clip  source rates")  # fmt: skip
    for pkg, p in summary["packages"].items():
        rates = " ".join(f"{k}:{v}" for k, v in list(p["src_rates"].items())[:4])
        print(f"{pkg:28} {','.join(p['splits']):16} {p['clips']:5} {p['minutes']:6.1f} "
              f"{p['median_s']:5.1f} {p['max_s']:5.1f} {p['mostly_quiet']:5} {p['low_peak']:5} "
              f"{p['clipped_src']:4}  {rates}")  # fmt: skip
    return summary


def write_licences(out: Path, rows: list[dict]) -> None:
    """LICENCES.md: per package its version, the clips' licences and the quoted copyright."""
    lines = [
        "# Licences of the audio in this directory\n",
        "Clips were decoded (or rendered), downmixed, resampled and trimmed from Debian bookworm "
        "packages and one PyPI wheel; the per-file licence and source path are in manifest.jsonl. "
        "Stanzas below are quoted from each package's /usr/share/doc/<package>/copyright (which "
        "has the full licence texts), plus the package's own per-file credits where it has any.\n",
    ]
    keep = re.compile(r"^\*$|-\*$|sound|sample|audio|drumkit|\.(wav|ogg|flac|sf2)|wav/", re.I)
    for pkg in sorted({r["package"] for r in rows}):
        x = out / "_cache/x" / pkg
        marker, stanzas = x / ".extracted", dep5(x, pkg)
        ver = marker.read_text().strip() if marker.exists() else "?"
        lics = Counter(r["licence"] for r in rows if r["package"] == pkg)
        used = ", ".join(f"{lic} ({n} clips)" for lic, n in sorted(lics.items()))
        lines += [f"## {pkg} {ver}\n", f"Licence(s) of the clips used: {used}\n", "```"]
        if not stanzas:  # free-form copyright file: quote its head
            cr = x / f"usr/share/doc/{pkg}/copyright"
            lines += cr.read_text(errors="replace").splitlines()[:60] if cr.exists() else []
        for pats, _, text in stanzas:
            if len(stanzas) <= 8 or any(keep.search(p) for p in pats):
                lines += [*text.strip("\n").splitlines()[:30], ""]
        if (x / NOTES).exists():
            lines += ["", *(x / NOTES).read_text().strip("\n").splitlines()]
        lines += ["```", ""]
    (out / "LICENCES.md").write_text("\n".join(lines))


def link_families(out: Path, rows: list[dict]) -> None:
    """Hard-link every sfx clip to ``<split>/sfx-families/<family>/<group>__<clip>.flac``."""
    for s in SPLITS:
        shutil.rmtree(out / s / "sfx-families", ignore_errors=True)
    for r in rows:
        if r["kind"] == "sfx":
            src = out / r["path"]
            dst = out / r["split"] / "sfx-families" / r["family"] / f"{r['group']}__{src.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)


def drop_orphans(out: Path, rows: list[dict]) -> int:
    """Delete clips under the split folders that the manifest does not list (old rules)."""
    listed, n = {r["path"] for r in rows}, 0
    for s in SPLITS:
        for kind in ("speech", "sfx"):
            for p in (out / s / kind).rglob("*") if (out / s / kind).exists() else []:
                if p.is_file() and str(p.relative_to(out)) not in listed:
                    p.unlink()
                    n += 1
    return n
