"""Where does separation go wrong: in the priors or in the sampler's early, noisy steps?

Runs the default forward-only solver (dirac, 25 snr-spaced steps, eta 0) on mixtures made by
``diffsep make-mixtures`` (mix.wav, s1.wav, s2.wav, ...; sources in the order of --priors)
from three kinds of starting points, same noise, per 2 s segment (no overlap) brought to the
priors' level by its RMS alone (``separate`` also caps the gain and the peak, so its figures
differ a little), and prints SI-SDRi (mean ± 95 % CI, and paired against the cold start):

- ``cold``: the solver as it runs (y / K each, diffused to the last step, zero-sum noise);
- ``S`` (an int): an *oracle* start, the true sources diffused to sampling step S of 25
  (24 = the noisiest) with zero-sum noise, then the solver from there: what the priors can
  hold once the sources are in the right basin;
- ``rS``: a restart, the cold result diffused back to step S and solved again.

``--likelihood`` adds the priors' joint denoising loss (eps-MSE summed over sources and 8
steps t, common random numbers; lower = more likely under the priors) of the true sources
and of every start's result, and counts the mixtures where each beats the cold result. A
search over that likelihood could only help where truth scores lower *and* the loss ranks the
results by quality (for the bundled pair it does not: README, "Where it goes wrong").
Run with OMP_NUM_THREADS=1 to measure two sets side by side.

    python benchmarks/oracle_start.py runs/eval/dev/speech_sfx --starts 18,15,r18 --likelihood
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffsep_cli.core.diffusion import Schedule, q_sample, respace
from diffsep_cli.core.metrics import si_sdr, summarize
from diffsep_cli.core.prior import Prior
from diffsep_cli.core.sampling import RandnLike, sample_ddim, zero_sum
from diffsep_cli.core.separation import init_state, joint_denoiser
from diffsep_cli.core.solvers import dirac
from diffsep_cli.hub.api import load_prior
from diffsep_cli.io.audio import load_mono

LOSS_STEPS = torch.linspace(0, 199, 8).round().long()


def _first(schedule: Schedule, steps: int) -> Schedule:
    """The schedule's first ``steps`` sampling steps (sampling then starts at step steps - 1)."""
    return Schedule(**{f.name: getattr(schedule, f.name)[:steps] for f in fields(Schedule)})


def _randn(gen: torch.Generator) -> RandnLike:
    return lambda x: torch.randn(x.shape, generator=gen)


def joint_loss(priors: list[Prior], sources: Tensor) -> float:
    """Summed eps-MSE of sources [N, K, L] under their priors (seeded noise per prior)."""
    total = 0.0
    for k, prior in enumerate(priors):
        gen = torch.Generator().manual_seed(99 + k)
        abar = prior.schedule.alphas_cumprod.float()
        for t in LOSS_STEPS:
            noise = torch.randn(sources[:, k].shape, generator=gen)
            xt = abar[t].sqrt() * sources[:, k] + (1 - abar[t]).sqrt() * noise
            eps = prior.eps(xt, t.repeat(xt.shape[0]))
            total += float((eps - noise).square().mean(-1).sum())
    return total


def run_item(folder: Path, priors: list[Prior], starts: list[str], likelihood: bool) -> dict:
    """SI-SDRi of every start (and the losses) for one mixture folder."""
    k, seg = len(priors), priors[0].config.segment
    rate = priors[0].config.sample_rate
    mix = torch.from_numpy(load_mono(folder / "mix.wav", rate))
    n = mix.shape[0] // seg
    refs = torch.stack(
        [torch.from_numpy(load_mono(folder / f"s{j + 1}.wav", rate))[: n * seg] for j in range(k)]
    )
    mix = mix[: n * seg]
    segs, true = mix.reshape(n, seg), refs.reshape(k, n, seg).transpose(0, 1)  # [n, K, seg]
    level = float(np.mean([p.config.level_dbfs for p in priors]))
    rms = segs.square().mean(-1, keepdim=True).sqrt()
    gain = torch.where(rms > 1e-4, 10 ** ((level + 10 * math.log10(k)) / 20) / rms, 0.0)
    schedule = respace(priors[0].schedule, 25, "snr")
    denoise = dirac(joint_denoiser(priors, [None] * k, schedule), segs * gain, schedule)
    base = si_sdr(mix.expand_as(refs), refs)
    out: dict = {"item": folder.name}
    cold = torch.zeros(0)
    for start in ["cold", *starts]:
        randn = _randn(torch.Generator().manual_seed(1234 + sum(map(ord, folder.name))))
        if start == "cold":
            top = len(schedule) - 1
            x = init_state(segs * gain, k, "split", priors[0].schedule, randn)
        else:
            top = int(start.lstrip("r"))
            x0 = cold if start.startswith("r") else true * gain[..., None]
            x = q_sample(x0, float(schedule.alphas_cumprod[top]), zero_sum(randn)(x0))
        x = sample_ddim(denoise, x, _first(schedule, top + 1), eta=0.0)
        if start == "cold":
            cold = x
        if likelihood:
            out[f"loss_{start}"] = joint_loss(priors, x)
        est = torch.where(gain[..., None] > 0, x / gain.clamp_min(1e-12)[..., None], 0.0)
        out[start] = float((si_sdr(est.transpose(0, 1).reshape(k, -1), refs) - base).mean())
    if likelihood:
        out["loss_true"] = joint_loss(priors, true * gain[..., None])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a make-mixtures folder (one subfolder each)")
    ap.add_argument("--priors", nargs="+", default=["models/speech", "models/sfx"])
    ap.add_argument("--starts", default="18,15", help="oracle steps S and restarts rS")
    ap.add_argument("--likelihood", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="first N mixtures only (0: all)")
    ap.add_argument("--json", type=Path, help="write the per-mixture rows here")
    args = ap.parse_args()
    priors = [load_prior(p) for p in args.priors]
    starts = [s for s in args.starts.split(",") if s]
    items = sorted(p for p in args.folder.iterdir() if (p / "mix.wav").exists())
    rows = []
    with torch.inference_mode():
        for folder in items[: args.limit or None]:
            rows.append(run_item(folder, priors, starts, args.likelihood))
            print(
                json.dumps(
                    {k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}
                ),
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    for start in ["cold", *starts]:
        s = summarize([r[start] for r in rows])
        d = summarize([r[start] - r["cold"] for r in rows])
        print(
            f"{start:>5}: {s.mean:+.2f} ± {(s.hi - s.lo) / 2:.2f} dB   paired vs cold "
            f"{d.mean:+.2f} ± {(d.hi - d.lo) / 2:.2f}  (n={s.n})"
        )
    for other in ["true", *starts] if args.likelihood else []:
        wins = [r[f"loss_{other}"] < r["loss_cold"] for r in rows]
        print(
            f"{other:>5}: more likely than the cold result (lower joint loss) in "
            f"{sum(wins)} of {len(wins)} mixtures"
        )


if __name__ == "__main__":
    main()
