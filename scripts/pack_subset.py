#!/usr/bin/env python3
"""Pack a training subset small enough to travel with the repository folder: 16 kHz mono
OGG/Opus, drawn evenly across the group folders, up to a size budget.

Usage: python scripts/pack_subset.py data/train/speech pack/speech --mib 30 [--seed 0]

The folder layout (``<group>/<clip>``) is kept, so training balances groups the same way. Clips
are taken round-robin over groups in a seeded order until the budget is spent.
"""

from __future__ import annotations

import argparse
import random
from itertools import zip_longest
from pathlib import Path

import numpy as np
import soundfile as sf

from diffsep_cli.io.audio import find_audio, load_mono

RATE = 16000


def pack(src: Path, out: Path, mib: float, seed: int = 0) -> tuple[int, float]:
    """Write Opus copies of clips under ``src`` into ``out``; returns (clips, MiB written)."""
    rng = random.Random(seed)
    groups: dict[Path, list[Path]] = {}
    for f in find_audio([src]):
        groups.setdefault(f.parent.relative_to(src), []).append(f)
    for files in groups.values():
        rng.shuffle(files)
    order = [f for row in zip_longest(*groups.values()) for f in row if f is not None]
    budget, used, count = mib * 2**20, 0, 0
    for f in order:
        dst = out / f.relative_to(src).with_suffix(".opus")
        dst.parent.mkdir(parents=True, exist_ok=True)
        x = load_mono(f, RATE)
        sf.write(dst, np.clip(x, -1, 1), RATE, format="OGG", subtype="OPUS")
        used += dst.stat().st_size
        count += 1
        if used >= budget:
            break
    return count, used / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--mib", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    count, used = pack(args.src, args.out, args.mib, args.seed)
    print(f"{count} clips, {used:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
