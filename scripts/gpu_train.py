#!/usr/bin/env python3
"""Train a prior on a CUDA GPU for a given number of minutes, in one command.

  python scripts/gpu_train.py pack/speech --valid pack/valid-speech --minutes 8 \\
      --out $OUT/speech --preset base [--augment speech --balance 0.5] [--resume]

On a CUDA device it trains in bf16 autocast with the fused AdamW, at the largest batch that
fits (doubling from ``--min-batch`` until out of memory, or ``--max-batch``), for as many
steps as ``--minutes`` allow (measured on warm-up steps), the last ``--cooldown`` fraction with
the learning rate cooled to 0. ``--out`` becomes a prior folder (config.json,
model.safetensors = the EMA weights, README.md) with the resume state in ``--out/train``.
The same command runs on CPU (``--device cpu``, a few steps) so that it is known to work.
Data: any folders of single-source audio, e.g. made by ``scripts/pack_subset.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from diffsep_cli.config import PRESETS, TrainConfig
from diffsep_cli.core.prior import Prior
from diffsep_cli.train.trainer import train


def fits(preset: str, batch: int, device: str) -> float | None:
    """Seconds of one bf16 training step at ``batch`` (None: out of memory)."""
    cfg = PRESETS[preset]
    prior = Prior(cfg).to(device).train()
    opt = torch.optim.AdamW(prior.parameters(), fused=device.startswith("cuda") or None)
    x = torch.randn(batch, cfg.segment, device=device) * 0.05
    t = torch.randint(0, cfg.diffusion.steps, (batch,), device=device)
    try:
        for i in range(3):  # the first steps warm up kernels and the allocator
            if i == 2:
                torch.cuda.synchronize(device) if device.startswith("cuda") else None
                start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                loss = prior(x, t, torch.randn_like(x)).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        return time.perf_counter() - start
    except torch.OutOfMemoryError:
        return None
    finally:
        del prior, opt
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def largest_batch(preset: str, device: str, low: int, high: int) -> tuple[int, float]:
    """The largest power-of-two multiple of ``low`` up to ``high`` that fits, and its step time."""
    best: tuple[int, float] | None = None
    batch = low
    while batch <= high:
        seconds = fits(preset, batch, device)
        if seconds is None:
            break
        best = (batch, seconds)
        batch *= 2
    if best is None:
        raise SystemExit(f"even a batch of {low} does not fit on {device}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--valid", type=Path, nargs="*", default=[])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="base", choices=sorted(PRESETS))
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--steps", type=int, help="fixed step count instead of --minutes")
    ap.add_argument("--cooldown", type=float, default=0.2, help="fraction of steps cooled")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--augment", default="none")
    ap.add_argument("--balance", type=float, default=0.5)
    ap.add_argument(  # README: +0.81 dB devset against an unbalanced 3000-step cooldown
        "--step-balance", type=float, default=1.0, help="equal loss share per noise level"
    )
    ap.add_argument("--min-batch", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    batch, seconds = largest_batch(args.preset, args.device, args.min_batch, args.max_batch)
    steps = args.steps or max(1, int(args.minutes * 60 / (seconds * 1.15)))  # 15 % overhead
    tc = TrainConfig(
        steps=steps,
        batch=batch,
        lr=args.lr,
        cooldown=int(args.cooldown * steps),
        checkpoint_every=max(1, steps // 10),
        valid_every=max(1, steps // 10),
        augment=args.augment,
        balance=args.balance,
        step_balance=args.step_balance,
    )
    plan = {
        "device": args.device,
        "preset": args.preset,
        "batch": batch,
        "step_s": seconds,
        "steps": steps,
        "cooldown": tc.cooldown,
    }
    print(json.dumps(plan), flush=True)
    cfg = replace(PRESETS[args.preset], name=args.out.name)
    result = train(
        cfg,
        tc,
        args.data,
        args.out,
        valid=args.valid,
        resume=args.resume,
        device=args.device,
        data_note=f"packed subset {', '.join(map(str, args.data))}",
    )
    print(
        json.dumps(
            {
                **plan,
                "loss": result.loss,
                "valid_loss": result.valid_loss,
                "minutes": result.seconds / 60,
                "out": str(result.out_dir),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
