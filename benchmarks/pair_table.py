"""One markdown table of prior pairs evaluated by ``benchmarks/pair_eval.sh``, paired.

    python benchmarks/pair_table.py bundled cool30 cool30-speech [--config dirac:25::split::snr]

For every set (dev, split, mg) and task (speech_sfx, sfx_sfx, speech_speech) with a
``runs/eval/SET_TASK_TAG.json`` for the first tag (the reference), prints each tag's mean
SI-SDRi ± 95 % CI and, for the others, the paired difference to the reference ± its CI over
the mixtures both hold. Cells without a run are left empty.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compare_sweeps import rows
from solver_sweep import mean_ci

SETS = ("dev", "split", "mg")
TASKS = ("speech_sfx", "sfx_sfx", "speech_speech")


def cell(values: list[float]) -> str:
    mean, half = mean_ci(values)
    return f"{mean:+.2f} ± {half:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tags", nargs="+", help="pair tags; the first is the reference")
    ap.add_argument("--config", default="dirac:25::split::snr")
    ap.add_argument("--root", type=Path, default=Path(__file__).parent.parent / "runs/eval")
    args = ap.parse_args()
    ref, *others = args.tags
    head = [ref] + [f"{t} | paired vs {ref}" for t in others]
    print("| set | task | n | " + " | ".join(head) + " |")
    print("|---|---|---|" + "---|" * (1 + 2 * len(others)))
    for set_ in SETS:
        for task in TASKS:
            path = args.root / f"{set_}_{task}_{ref}.json"
            if not path.exists():
                continue
            a = rows(f"{path}:{args.config}", "si_sdri")[1]
            cells = [cell(list(a.values()))]
            for tag in others:
                other = args.root / f"{set_}_{task}_{tag}.json"
                if not other.exists():
                    cells += ["", ""]
                    continue
                b = rows(f"{other}:{args.config}", "si_sdri")[1]
                common = sorted(set(a) & set(b))
                cells += [cell([b[k] for k in common]), cell([b[k] - a[k] for k in common])]
            print(f"| {set_} | {task} | {len(a)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
