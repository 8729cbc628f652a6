"""A labelled copy of an evaluation folder: each mixture's sources.json names a prior per
source and, for class-conditional priors, the class of that source, so that ``diffsep bench``
and ``benchmarks/solver_sweep.py`` (without ``-s``) run every mixture with its own classes.

  python benchmarks/label_mixtures.py runs/eval/dev/speech_sfx runs/eval/dev-named/speech_sfx \\
      --prior speech=models/speech --prior sfx=runs/sfx-cond \\
      --classes benchmarks/devset_families.json

A source's class is the ``class`` make-mixtures recorded in meta.json (its file's folder: a
speaker, a sound group or family) mapped through ``--classes`` (JSON {class: prior class}) when
it is there, else the family folder of data/*/sfx-families that links its file (the split's
sounds, whose recorded class is their package), else the recorded class itself. Audio files are
hard links; the copy is refused if OUT exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pair_table import source_family


def labelled_sources(
    meta: dict,
    priors: dict[str, str],
    labels: dict[str, list[str]],
    class_of: Callable[[dict[str, str]], str],
) -> dict[str, str]:
    """{reference file: PRIOR or PRIOR:CLASS} for one mixture's meta.json."""
    out = {}
    for src in meta["sources"]:
        kind = src["prior"]
        if kind not in priors:
            raise SystemExit(f"no --prior for {kind!r} (mixture {meta['index']})")
        spec = priors[kind]
        if labels[kind]:
            label = class_of(src)
            if label not in labels[kind]:
                raise SystemExit(f"{src['file']}: class {label!r} is not one of {labels[kind]}")
            spec = f"{spec}:{label}"
        out[src["ref"]] = spec
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--prior", action="append", required=True, help="KIND=PRIOR_FOLDER")
    ap.add_argument("--classes", type=Path, help="JSON {recorded class: prior class}")
    args = ap.parse_args()
    priors = dict(p.split("=", 1) for p in args.prior)
    labels = {
        k: json.loads((Path(v) / "config.json").read_text())["labels"] for k, v in priors.items()
    }
    class_of = source_family(json.loads(args.classes.read_text()) if args.classes else {})
    if args.out.exists():
        sys.exit(f"{args.out} exists")
    for mix in sorted(d for d in args.folder.iterdir() if (d / "meta.json").is_file()):
        meta = json.loads((mix / "meta.json").read_text())
        sources = labelled_sources(meta, priors, labels, class_of)
        (dest := args.out / mix.name).mkdir(parents=True)
        for f in mix.iterdir():
            if f.name != "sources.json":
                os.link(f, dest / f.name)
        (dest / "sources.json").write_text(json.dumps(sources))
    print(f"{args.out}: {len(list(args.out.iterdir()))} mixtures")


if __name__ == "__main__":
    main()
