"""Test-time adaptation of the priors to one recording: how much could it give?

For each mixture of an evaluation folder, copies of the priors are fine-tuned for a few steps
on audio of that recording, then the mixture is separated with the copies at the default
solver (``diffsep bench``'s own path, the same seeds), and the result is paired against the
unadapted priors. ``--target oracle`` fine-tunes each prior on its true source (the upper
bound of any adaptation: the clean voice and sound of this very recording); ``--target
estimate`` on the source as the unadapted priors separated it (what a user could run: no
truth involved), ``--rounds`` times; ``--target masked`` on the estimate too, its loss counted
only on the 32 ms frames where that estimate is ``--gate-db`` above every other (where the
recording holds that source alone); ``gated`` silences the other frames instead, and
``oracle-gated`` the true source so (a control). docs/research.md has the figures.

Crops are cut at the positions and levels the separation sees them (each 2 s window of the
source at its mixture segment's calibration gain), steps drawn uniformly, Min-SNR-5 weighted.

  python benchmarks/tta_oracle.py runs/eval/split/speech_sfx -s models/speech,models/sfx \\
      --adapt speech,sfx --target oracle --steps 40 --out runs/tta/split_oracle.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from solver_sweep import mean_ci, parse_config

from diffsep_cli.bench.options import SYSTEM, BenchOptions
from diffsep_cli.bench.run import benchmark
from diffsep_cli.core.diffusion import min_snr_weights
from diffsep_cli.core.prior import Prior
from diffsep_cli.hub.api import load_prior
from diffsep_cli.io.mixtures import discover, load_estimates, load_item_audio

PEAK = 0.95


def crops(
    srcs: list[torch.Tensor],
    mix: torch.Tensor,
    seg: int,
    target: float,
    n: int,
    gen: torch.Generator,
) -> list[torch.Tensor]:
    """n random windows [n, seg] of each of ``srcs`` (the same windows) at the calibration gain
    of the mixture's window (the first of ``srcs``; the others, masks, as they are)."""
    out: list[list[torch.Tensor]] = [[] for _ in srcs]
    for _ in range(n):
        start = int(torch.randint(0, max(1, mix.shape[-1] - seg + 1), (1,), generator=gen))
        m = mix[start : start + seg]
        rms = float(m.square().mean().sqrt())
        gain = min(target / max(rms, 1e-5), PEAK / max(float(m.abs().max()), 1e-5))
        for i, src in enumerate(srcs):
            s = torch.nn.functional.pad(src[start : start + seg], (0, seg - m.shape[-1]))
            out[i].append(s * gain if i == 0 else s)
    return [torch.stack(o) for o in out]


def adapt(
    prior: Prior,
    src: torch.Tensor,
    mix: torch.Tensor,
    k: int,
    args: argparse.Namespace,
    seed: int,
    mask: torch.Tensor | None = None,
) -> Prior:
    """A copy of ``prior`` fine-tuned on windows of ``src`` [L] (k sources in the mixture);
    with ``mask`` [L] the loss counts only where it is 1."""
    tuned = copy.deepcopy(prior).train().requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    target = 10 ** ((prior.config.level_dbfs + 10 * math.log10(k)) / 20)
    abar = tuned.schedule.alphas_cumprod
    weights = min_snr_weights(abar, 5.0)
    opt = torch.optim.AdamW(tuned.parameters(), lr=args.lr, weight_decay=0.0)
    for _ in range(args.steps):
        seg = prior.config.segment
        x0, m = crops(
            [src, torch.ones_like(src) if mask is None else mask], mix, seg, target, args.batch, gen
        )
        t = torch.randint(args.t_low, args.t_high, (args.batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t][:, None]
        err = (tuned.eps(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - noise).square()
        per_item = (err * m).sum(-1) / m.sum(-1).clamp_min(1.0)
        loss = (per_item * weights[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tuned.parameters(), 1.0)
        opt.step()
    return tuned.eval().requires_grad_(False)


def gates(est: torch.Tensor, db: float, frame: int = 512) -> torch.Tensor:
    """Per-sample 0/1 gates [K, L]: the 32 ms frames where source k's estimate is ``db`` dB
    louder than every other estimate (where the recording holds that source alone)."""
    k, length = est.shape
    pad = torch.nn.functional.pad(est, (0, -length % frame))
    energy = 10 * torch.log10(pad.reshape(k, -1, frame).square().mean(-1) + 1e-10)  # [K, F]
    out = []
    for i in range(k):
        others = torch.cat([energy[:i], energy[i + 1 :]]).amax(0)
        out.append((energy[i] - others >= db).float().repeat_interleave(frame)[:length])
    return torch.stack(out)


def one(
    folder: Path, name: str, opts: BenchOptions, cfg: Any, load: Any, length: int
) -> tuple[float, torch.Tensor]:
    """Bench one mixture folder (hard-linked alone into a temporary folder): its SI-SDRi and
    the estimates [K, L] the bench run kept (one file per source, named by its prior)."""
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "in" / name
        dest.mkdir(parents=True)
        for f in (folder / name).iterdir():
            if f.is_file():
                os.link(f, dest / f.name)
        keep = Path(tmp) / "keep"
        kept_opts = dataclasses.replace(opts, keep=keep)
        res = benchmark(dest.parent, kept_opts, cfg, torch.device("cpu"), load=load)
        kept = [keep / SYSTEM / name / f"{Path(n).name}.wav" for n in opts.sources or []]
        est = torch.from_numpy(load_estimates(kept, 16000, length)).float()
    return float(res.rows[0]["si_sdri"]), est


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("-s", "--sources", required=True)
    ap.add_argument("--config", default="dirac:25::split::snr::::8:40")
    ap.add_argument("--adapt", default="speech,sfx", help="which priors (by name) to adapt")
    ap.add_argument(
        "--target",
        choices=("oracle", "estimate", "gated", "oracle-gated", "masked"),
        default="oracle",
    )
    ap.add_argument("--gate-db", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--t-low", type=int, default=0)
    ap.add_argument("--t-high", type=int, default=200)
    ap.add_argument("--limit", type=int, default=36)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    names = args.sources.split(",")
    base = {n: load_prior(n) for n in names}
    cfg = dataclasses.replace(parse_config(args.config), seed=0, classifier="auto")
    opts = BenchOptions(sources=names, baselines=[], limit=1, keep=None)
    items = discover(args.folder, sources=names, limit=args.limit)
    doc: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    doc["args"] = {k: str(v) for k, v in vars(args).items()}
    done = {r["mixture"] for r in doc["rows"]}
    adapt_set = set(args.adapt.split(","))
    for i, item in enumerate(items):
        if item.name in done:
            continue
        _, mix_np, refs_np = load_item_audio(item)
        mix, refs = torch.from_numpy(mix_np).float(), torch.from_numpy(refs_np).float()
        row: dict[str, Any] = {"mixture": item.name}
        length = mix.shape[-1]
        row["base"], est = one(args.folder, item.name, opts, cfg, base.__getitem__, length)
        for r in range(args.rounds):
            masks = None
            if args.target == "oracle":
                targets = refs
            else:  # the separation by the last priors (unadapted, then the last round's)
                targets = est
                if args.target != "estimate":
                    masks = gates(targets, args.gate_db)
                    row[f"gated{r + 1}"] = masks.mean(-1).tolist()
                if args.target == "gated":  # the estimate, silenced where it does not gate
                    targets = targets * masks
                elif args.target == "oracle-gated":  # the truth, silenced so
                    targets = refs * masks
                if args.target != "masked":  # masked: the estimate, scored where it gates
                    masks = None
            current = dict(base)
            for k, n in enumerate(names):
                if Path(n).name in adapt_set:
                    mask = None if masks is None else masks[k]
                    current[n] = adapt(
                        base[n], targets[k], mix, len(names), args, 1000 * i + k, mask
                    )
            row[f"round{r + 1}"], est = one(
                args.folder, item.name, opts, cfg, current.__getitem__, length
            )
        doc["rows"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
        last = f"round{args.rounds}"
        print(f"{item.name}: base {row['base']:+.2f} adapted {row[last]:+.2f}", flush=True)
    last = f"round{args.rounds}"
    diffs = [r[last] - r["base"] for r in doc["rows"]]
    m, h = mean_ci(diffs)
    b = mean_ci([r["base"] for r in doc["rows"]])
    a = mean_ci([r[last] for r in doc["rows"]])
    print(
        f"n={len(diffs)} base {b[0]:+.2f} ± {b[1]:.2f} adapted {a[0]:+.2f} ± {a[1]:.2f}",
        f"paired {m:+.2f} ± {h:.2f}",
    )


if __name__ == "__main__":
    main()
