"""One markdown table of prior pairs evaluated by ``benchmarks/pair_eval.sh``, paired.

    python benchmarks/pair_table.py bundled cool30 cool30-speech [--config dirac:25::split::snr]

For every set (dev, split, mg) and task (speech_sfx, sfx_sfx, speech_speech) with a
``runs/eval/SET_TASK_TAG.json`` for the first tag (the reference), prints each tag's mean
SI-SDRi ± 95 % CI and, for the others, the paired difference to the reference ± its CI over
the mixtures both hold. Cells without a run are left empty.

``--by-family`` splits every row by the sound families of the mixtures' sound sources (from
each mixture's meta.json: devset classes mapped by benchmarks/devset_families.json, the split's
and MegaGlest's clips by their links in data/*/sfx-families): which kinds of sound a pair fails
on (with 36 mixtures a family holds a handful, so read its CI).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from compare_sweeps import rows
from solver_sweep import mean_ci

REPO = Path(__file__).parent.parent
FAMILIES = REPO / "benchmarks/devset_families.json"
SETS = ("dev", "split", "mg")
TASKS = ("speech_sfx", "sfx_sfx", "speech_speech")


def cell(values: list[float]) -> str:
    mean, half = mean_ci(values)
    return f"{mean:+.2f} ± {half:.2f}" if len(values) > 1 else f"{mean:+.2f}"


def _linked_families() -> dict[tuple[int, int], str]:
    """(device, inode) of every clip under data/*/sfx-families/FAMILY/ -> FAMILY: the split's
    and MegaGlest's mixture sources are hard links of those clips."""
    out = {}
    for clip in REPO.glob("data/*/sfx-families/*/*"):
        st = clip.stat()
        out[(st.st_dev, st.st_ino)] = clip.parent.name
    return out


def source_family(families: dict[str, str]) -> Callable[[dict[str, str]], str]:
    """A mixture source (an entry of meta.json's ``sources``) -> its sound family: by class
    name (the devset's, through ``families``), else by the built data's family links, else the
    class itself."""
    linked = _linked_families()

    def one(source: dict[str, str]) -> str:
        if source["class"] in families:
            return families[source["class"]]
        path = REPO / source["file"]
        st = path.stat() if path.exists() else None
        return linked.get((st.st_dev, st.st_ino), source["class"]) if st else source["class"]

    return one


def family_of(families: dict[str, str]) -> Callable[[str], str]:
    """Mixture key (FOLDER/MIXTURE, as compare_sweeps.rows gives) -> its sound sources'
    families (:func:`source_family`), sorted, joined by "+" ("speech" when it has none)."""
    one = source_family(families)

    def key(mixture: str) -> str:
        meta = json.loads((REPO / mixture / "meta.json").read_text())
        sounds = [one(s) for s in meta["sources"] if s["prior"] != "speech"]
        return "+".join(sorted(sounds)) or "speech"

    return key


def split_rows(values: dict[str, float], key: Callable[[str], str] | None) -> dict[str, list[str]]:
    """Mixture keys by group: one group "all", or one per family when ``key`` is given."""
    if key is None:
        return {"all": sorted(values)}
    groups: dict[str, list[str]] = defaultdict(list)
    for mixture in sorted(values):
        groups[key(mixture)].append(mixture)
    return dict(sorted(groups.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tags", nargs="+", help="pair tags; the first is the reference")
    ap.add_argument("--config", default="dirac:25::split::snr")
    ap.add_argument("--root", type=Path, default=REPO / "runs/eval")
    ap.add_argument("--by-family", action="store_true", help="one row per sound family")
    args = ap.parse_args()
    ref, *others = args.tags
    families = json.loads(FAMILIES.read_text())
    key = family_of(families) if args.by_family else None
    head = [ref] + [f"{t} | paired vs {ref}" for t in others]
    print("| set | task | group | n | " + " | ".join(head) + " |")
    print("|---|---|---|---|" + "---|" * (1 + 2 * len(others)))
    for set_ in SETS:
        for task in TASKS:
            path = args.root / f"{set_}_{task}_{ref}.json"
            if not path.exists():
                continue
            a = rows(f"{path}:{args.config}", "si_sdri")[1]
            theirs = {}
            for tag in others:
                other = args.root / f"{set_}_{task}_{tag}.json"
                if other.exists():
                    theirs[tag] = rows(f"{other}:{args.config}", "si_sdri")[1]
            for group, keys in split_rows(a, key).items():
                cells = [cell([a[k] for k in keys])]
                for tag in others:
                    if tag not in theirs:
                        cells += ["", ""]
                        continue
                    b = theirs[tag]
                    common = [k for k in keys if k in b]
                    cells += [cell([b[k] for k in common]), cell([b[k] - a[k] for k in common])]
                row = f"| {set_} | {task} | {group} | {len(keys)} | "
                print(row + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
