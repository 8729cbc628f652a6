"""Paired comparison of two solver-sweep runs on the same mixtures (other priors or configs).

    python benchmarks/compare_sweeps.py runs/sweep/dev_speech_sfx.json:dirac:50:0:split \\
        runs/sweep/dev_speech_sfx_cand1.json:dirac:50:0:split

Prints each run's SI-SDRi (mean ± 95 % CI) and the paired difference B - A with its CI, over
the mixtures both hold (sweeps run with the same seed draw the same noise per mixture). Runs
on several mixture folders pool: FILE1.json,FILE2.json:CONFIG (mixtures keyed by folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from solver_sweep import mean_ci


def rows(spec: str, metric: str) -> tuple[str, dict[str, float]]:
    """FILE[,FILE...]:CONFIG -> (sources, {folder/mixture: metric})."""
    paths, _, config = spec.partition(":")
    sources, out = [], {}
    for path in paths.split(","):
        doc = json.loads(Path(path).read_text())
        if config not in doc["runs"]:
            raise SystemExit(f"{path} has no run {config!r}: {', '.join(doc['runs'])}")
        sources.append(doc["sources"])
        out |= {f"{doc['folder']}/{r['mixture']}": r[metric] for r in doc["runs"][config]}
    return ",".join(dict.fromkeys(sources)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="FILE.json:CONFIG (the reference)")
    ap.add_argument("b", help="FILE.json:CONFIG")
    ap.add_argument("--metric", default="si_sdri")
    args = ap.parse_args()
    (src_a, a), (src_b, b) = rows(args.a, args.metric), rows(args.b, args.metric)
    common = sorted(set(a) & set(b))
    if not common:
        raise SystemExit("no mixtures in common")
    for name, src, vals in (("A", src_a, a), ("B", src_b, b)):
        m, h = mean_ci([vals[k] for k in common])
        print(f"{name} {src} {args.a if name == 'A' else args.b}: {m:+.2f} ± {h:.2f} dB")
    d, h = mean_ci([b[k] - a[k] for k in common])
    print(f"B - A, paired over {len(common)} mixtures: {d:+.2f} ± {h:.2f} dB")


if __name__ == "__main__":
    main()
