"""Does each prior know its own class? Denoising loss of every prior on held-out crops of
every class, per noise level: a cheap predictor of separability (a prior that denoises the
other class as well as its own cannot tell the sources of a mixture apart).

    python benchmarks/prior_contrast.py speech=models/speech sfx=models/sfx \
        --data speech=data/test/speech sfx=data/test/sfx [--crops 32] [--json]
    python benchmarks/prior_contrast.py speech=runs/joint:speech sfx=runs/joint:sfx ...
        (PRIOR:CLASS: one class of a class-conditional prior, as in --sources)

Prints, per DDPM step t, the loss of prior P on class D and, per class D, the contrast:
loss(the other priors on D) / loss(D's own prior on D) - 1 (0: no class knowledge; the
higher, the better the priors tell D apart). A class named OWNER:NAME belongs to prior OWNER,
e.g. ``--data sfx:instrument=FOLDER sfx:household=FOLDER``: the contrast per kind of sound
(which sounds the other prior would claim in a mixture).
Crops, levels, steps and noise are seeded, so runs are comparable across checkpoints.
"""

from __future__ import annotations

import argparse
import json

import torch

from diffsep_cli.core.prior import Prior
from diffsep_cli.core.sources import SourceSpec, resolve_sources
from diffsep_cli.hub.folder import load_prior_dir
from diffsep_cli.train.data import CropSampler, load_clips

STEPS = (20, 60, 100, 150, 199)


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


class _Scored:
    """A prior with a fixed class: ``(x0, t, noise) -> per-item loss``."""

    def __init__(self, spec: str) -> None:
        src = resolve_sources([SourceSpec.parse(spec)], load_prior_dir)
        self.prior: Prior = src.priors[0]
        self.label = src.labels[0]
        self.config = self.prior.config

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.prior(x0, t, noise, self.label)


def contrast(
    priors: dict[str, str], data: dict[str, str], crops: int, seed: int
) -> dict[str, object]:
    models = {name: _Scored(path) for name, path in priors.items()}
    first = next(iter(models.values())).config
    batches = {
        name: CropSampler(
            load_clips([path], first.sample_rate), first.segment, (-25, -20), seed
        ).batch(crops)[0]
        for name, path in data.items()
    }
    losses: dict[str, dict[str, dict[int, float]]] = {p: {d: {} for d in data} for p in models}
    for t in STEPS:
        for d, x0 in batches.items():
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + t))
            steps = torch.full((crops,), t)
            for p, model in models.items():
                with torch.no_grad():
                    losses[p][d][t] = float(model(x0, steps, noise).mean())
    result: dict[str, object] = {"steps": STEPS, "loss": losses}
    owner = {d: d.split(":", 1)[0] for d in data}
    others = {d: [p for p in models if p != owner[d]] for d in data if owner[d] in models}
    result["contrast"] = {
        d: {
            t: sum(losses[p][d][t] for p in ps) / len(ps) / losses[owner[d]][d][t] - 1
            for t in STEPS
        }
        for d, ps in others.items()
        if ps
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "priors", nargs="+", help="NAME=PRIOR_DIR[:CLASS] (NAME matches a --data class)"
    )
    ap.add_argument("--data", nargs="+", required=True, help="CLASS=FOLDER of held-out audio")
    ap.add_argument("--crops", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = contrast(_pairs(args.priors), _pairs(args.data), args.crops, args.seed)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    loss, con = res["loss"], res["contrast"]
    assert isinstance(loss, dict) and isinstance(con, dict)
    print("t     " + "  ".join(f"{p}/{d}".rjust(14) for p in loss for d in loss[p]) + "  contrast")
    for t in STEPS:
        cells = "  ".join(f"{loss[p][d][t]:14.5f}" for p in loss for d in loss[p])
        print(f"{t:<5} {cells}  " + " ".join(f"{p} {con[p][t]:+.3f}" for p in con))


if __name__ == "__main__":
    main()
