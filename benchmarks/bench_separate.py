"""Real-time factor of ``diffsep separate`` with the bundled priors, per solver.

    python benchmarks/bench_separate.py [--seconds 4 60] [--sources speech,sfx]
        [--solvers hybrid dirac projection] [-- EXTRA ARGS]

Builds a mixture of the wanted length by tiling ``examples/mix.wav`` (real speech + sound),
runs the real command in a subprocess and reports the process wall time (torch import
included) and the separation's own RTF from ``--json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[4.0, 60.0])
    ap.add_argument("--sources", default="speech,sfx")
    ap.add_argument("--solvers", nargs="+", default=["hybrid", "dirac", "projection"])
    ap.add_argument("extra", nargs="*", help="more `diffsep separate` options")
    args = ap.parse_args()
    mix, sr = sf.read(ROOT / "examples" / "mix.wav", dtype="float32")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, sources {args.sources}")
    print(
        f"{'solver':>10} {'audio s':>8} {'process s':>10} {'separate s':>11} {'RTF':>6} "
        f"{'RTF (process)':>14}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for solver, seconds in ((s, t) for s in args.solvers for t in args.seconds):
            n = int(seconds * sr)
            path = Path(tmp) / f"mix{seconds:g}.wav"
            sf.write(path, np.tile(mix, n // len(mix) + 1)[:n], sr)
            cmd = [
                sys.executable,
                "-m",
                "diffsep_cli",
                "separate",
                str(path),
                "-s",
                args.sources,
                "-o",
                str(Path(tmp) / "out"),
                "--overwrite",
                "--json",
                "--solver",
                solver,
                *args.extra,
            ]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            row = json.loads(proc.stdout)["files"][0]
            print(
                f"{solver:>10} {seconds:8.1f} {wall:10.2f} {row['wall_s']:11.2f} {row['rtf']:6.2f} "
                f"{wall / seconds:14.2f}"
            )


if __name__ == "__main__":
    main()
