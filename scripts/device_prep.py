#!/usr/bin/env python3
"""Prepare a GPU run on a machine lent by the `device` tool, so the lease goes to training.

  python scripts/device_prep.py [--limit-mib 62] [--valid-mib 0.5] [--no-wheels]

What travels to that machine is the repository's working tree plus the ignored paths a call
names in ``carry``, 64 MiB in all. This packs the speech and sound training subsets
(``scripts/pack_subset.py``: 16 kHz Opus, groups round-robin) into ``pack/`` at the size that
is left after the tree and the wheels, fetches into ``.whl/`` the wheels the device image lacks
(soundfile and its cffi, soxr; torch and the rest are there), and prints the call:
``carry: ["pack", ".whl"]``, command ``bash scripts/device_train.sh MINUTES``. Both folders
are ignored by git. Needs data/ (``scripts/build_data.py``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_subset import pack

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("speech", "sfx")
# Missing from the device image (KINDS.md of the device tool), with what they need.
WHEELS = ("soundfile", "cffi", "pycparser", "soxr")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
MIB = 2**20


def travelling_bytes(root: Path = ROOT) -> int:
    """Bytes of the tracked and the untracked-but-not-ignored files: what always travels."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    files = (root / f for f in out.decode().split("\0") if f)
    return sum(f.stat().st_size for f in files if f.is_file())


def pack_budget(limit_mib: float, tree: int, wheels: int, valid_mib: float) -> float:
    """MiB for each training pack: the limit less the tree, the wheels, the valid packs and a
    1 MiB margin (Opus pages overshoot a budget by up to one clip), shared by the kinds."""
    left = limit_mib - (tree + wheels) / MIB - len(KINDS) * valid_mib - 1.0
    if left < len(KINDS):
        raise SystemExit(f"only {left:.1f} MiB left for the packs: the tree is too large")
    return left / len(KINDS)


def fetch_wheels(dest: Path) -> int:
    """Download the device's missing wheels (CPython 3.12, manylinux) at the local versions
    into a fresh ``dest`` (two versions of one package would stop the install there)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    pins = [f"{n}=={importlib.metadata.version(n)}" for n in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run([*cmd, *pins], check=True)
    return sum(f.stat().st_size for f in dest.glob("*.whl"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit-mib", type=float, default=62.0, help="of the 64 MiB that may travel")
    ap.add_argument("--valid-mib", type=float, default=0.5)
    ap.add_argument("--minutes", type=float, default=3.0, help="per prior; one call: <= 10 min")
    ap.add_argument("--no-wheels", action="store_true", help="pack only")
    args = ap.parse_args()
    for kind in KINDS:
        if not (ROOT / "data" / "train" / kind).is_dir():
            raise SystemExit(f"no data/train/{kind}: run scripts/build_data.py first")
    shutil.rmtree(ROOT / "pack", ignore_errors=True)
    wheels = 0 if args.no_wheels else fetch_wheels(ROOT / ".whl")
    tree = travelling_bytes()  # pack/ and .whl/ are ignored: they never count here
    mib = pack_budget(args.limit_mib, tree, wheels, args.valid_mib)
    sizes = {}
    for kind in KINDS:
        jobs = (("train", kind, mib), ("valid", f"valid-{kind}", args.valid_mib))
        for split, name, budget in jobs:
            clips, used = pack(ROOT / "data" / split / kind, ROOT / "pack" / name, budget)
            sizes[name] = {"clips": clips, "mib": round(used, 1)}
    carried = sum(f.stat().st_size for f in (ROOT / "pack").rglob("*") if f.is_file())
    total = (tree + wheels + carried) / MIB
    print(json.dumps({"packs": sizes, "wheels_mib": round(wheels / MIB, 1), "total_mib": total}))
    carry = ["pack"] + ([] if args.no_wheels else [".whl"])
    print(
        f'device run: carry={json.dumps(carry)} command="bash scripts/device_train.sh '
        f'{args.minutes:g}" (timeout_s: 2 x {args.minutes:g} min + ~3 min)'
    )


if __name__ == "__main__":
    main()
