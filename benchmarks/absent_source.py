"""How much of a lone source the other sources take.

Each input holds one source only, drawn as ``diffsep make-mixtures`` draws it (speech: a random
crop of an utterance; a sound: one non-silent span of a file, in silence; levelled to U[-25, -20]
dBFS on its own span), 4 s long. It is separated into every prior's source with ``diffsep
separate``'s defaults; a perfect separation leaves the other sources silent. Reported per kind:
the share of the input's energy that lands in the other sources, in dB (mean and 95 % CI over
inputs; -inf would be perfect, 0 dB everything), and the SI-SDR of the own source's estimate.

    python benchmarks/absent_source.py -s speech,sfx speech=../shared/devset/speech \\
        sfx=../shared/devset/sfx -n 24 --out runs/absent_bundled.json

A prior that always expects its source at one level (the training crops' level range) takes a
share of any input, whether its source is there or not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from diffsep_cli.config import SeparateConfig
from diffsep_cli.core.metrics import si_sdr, summarize
from diffsep_cli.core.sources import parse_sources, resolve_sources
from diffsep_cli.hub.api import load_prior
from diffsep_cli.hub.classifiers import guide
from diffsep_cli.io.audio import load_mono, save_audio
from diffsep_cli.io.mixtures import MixRecipe, build_mixture, pools
from diffsep_cli.io.pipeline import separate_file


def lone_inputs(folder: Path, kind: str, n: int, seed: int) -> list[np.ndarray]:
    """``n`` single-source inputs [L] of ``kind`` (a prior spec) drawn from ``folder``."""
    recipe = MixRecipe()
    dirs, by_dir = pools([folder], [kind], recipe)
    return [
        build_mixture(dirs, by_dir, [kind], np.random.default_rng([seed, i]), recipe)[0]
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kinds", nargs="+", help="KIND=FOLDER: a prior of -s and its audio")
    ap.add_argument("-s", "--sources", default="speech,sfx", help="priors, as diffsep separate")
    ap.add_argument("-n", type=int, default=24, help="inputs per kind")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--classifier", default="auto", help="auto, none or a classifier folder")
    ap.add_argument("--out", type=Path, help="per-input results as JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    src = resolve_sources(parse_sources(args.sources), load_prior)
    src = guide(src, args.classifier)
    cfg = SeparateConfig(classifier=args.classifier)
    rate = src.priors[0].config.sample_rate
    report: dict[str, dict[str, object]] = {}
    for spec in args.kinds:
        kind, folder = spec.split("=", 1)
        if kind not in src.names:
            raise SystemExit(f"{kind!r} is none of the sources {', '.join(src.names)}")
        shares, own = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i, x in enumerate(lone_inputs(Path(folder), kind, args.n, args.seed)):
                path = Path(tmp) / f"{i:04d}.wav"
                save_audio(path, x.astype(np.float32), rate)
                outs = {name: Path(tmp) / f"{i:04d}_{name}.wav" for name in src.names}
                separate_file(path, outs, src, cfg)
                est = {name: load_mono(p, rate).astype(np.float64) for name, p in outs.items()}
                other = sum(float(np.sum(e**2)) for name, e in est.items() if name != kind)
                shares.append(10 * np.log10(other / float(np.sum(x**2)) + 1e-12))
                own.append(float(si_sdr(torch.from_numpy(est[kind]), torch.from_numpy(x))))
        report[kind] = {"folder": folder, "other_share_db": shares, "own_si_sdr": own}
        s, o = summarize(shares), summarize(own)
        print(
            f"{kind:>8s} alone ({folder}, n={len(shares)}): the other sources take "
            f"{s.mean:+.1f} dB [{s.lo:+.1f}, {s.hi:+.1f}] of it; own estimate SI-SDR "
            f"{o.mean:+.1f} dB [{o.lo:+.1f}, {o.hi:+.1f}]"
        )
    if args.out:
        args.out.write_text(json.dumps({"sources": args.sources, "kinds": report}, indent=1))


if __name__ == "__main__":
    main()
