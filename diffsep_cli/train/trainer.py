"""Prior training: eps-prediction DDPM loss on random single-source crops (AdamW, EMA,
gradient clipping, AMP on CUDA), checkpoints with resume, and DDP under ``torchrun``.

The output folder is a usable prior at every checkpoint (``config.json``, EMA weights in
``model.safetensors``, ``README.md``); ``train/`` beside them holds what resuming needs.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor

from .card import model_card
from .config import PriorConfig, TrainConfig
from .data import Clips, CropSampler, load_clips
from .devices import rank_device
from .diffusion import min_snr_weights
from .errors import DiffsepError
from .prior import CONFIG_NAME, WEIGHTS_NAME, Prior, save_prior

Callback = Callable[[dict[str, Any]], None]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training, after the checkpoint of ``step`` was written."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, job schedulers) like Ctrl-C, so that training ends in a checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class TrainResult:
    step: int
    loss: float
    valid_loss: float | None
    seconds: float
    out_dir: Path


def _dist(device: str) -> tuple[int, int]:
    """(rank, world size); starts the process group (NCCL on CUDA, gloo on CPU) under
    torchrun. ``device`` is this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _truncate_log(log: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from (they are re-run)."""
    if not log.exists():
        return
    rows = [line for line in log.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    if len(kept) < len(rows):
        log.write_text("".join(line + "\n" for line in kept))


def lr_factor(step: int, tc: TrainConfig) -> float:
    """Warmup-stable-decay: a linear warmup, a constant lr, then a 1-sqrt cooldown to 0 over
    the last ``tc.cooldown`` steps (Hägele et al. 2024). Since the decay is tied to the end
    only, a run resumed with more ``steps`` goes on from its stable-lr checkpoint."""
    warm = min(1.0, (step + 1) / max(tc.warmup, 1))
    into = step - (tc.steps - tc.cooldown)
    return warm * (1.0 - math.sqrt(into / tc.cooldown)) if tc.cooldown and into >= 0 else warm


def _ema_update(ema: Prior, online: Prior, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.net.parameters(), online.net.parameters(), strict=True):
            e.lerp_(p, 1 - decay)


def _valid_loss(prior: Prior, batch: tuple[Tensor, Tensor, Tensor, Tensor] | None) -> float | None:
    """Mean loss on fixed crops, steps and noise (comparable across checkpoints)."""
    if batch is None:
        return None
    x0, t, noise, lab = batch
    with torch.no_grad():
        return float(prior(x0, t, noise, lab).mean())


def _fixed_valid(
    clips: Clips | None, cfg: PriorConfig, tc: TrainConfig, null: int | None
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    if clips is None:
        return None
    sampler = CropSampler(clips, cfg.segment, (tc.level_low, tc.level_high), seed=12345)
    x0, lab = sampler.batch(tc.valid_items)
    gen = torch.Generator().manual_seed(12345)
    t = torch.linspace(0, cfg.diffusion.steps - 1, tc.valid_items).long()
    lab = torch.full_like(lab, null) if null is not None else lab
    return x0, t, torch.randn(x0.shape, generator=gen), lab


def _card(cfg: PriorConfig, tc: TrainConfig, info: dict[str, Any], data: str) -> str:
    training = {
        "steps": info["step"],
        "batch": f"{tc.batch} x {cfg.segment / cfg.sample_rate:g} s crops x {info['world']} ranks",
        "optimiser": f"AdamW lr {tc.lr:g}, wd {tc.weight_decay:g}, clip {tc.grad_clip:g}"
        + (f", lr cooled to 0 over the last {tc.cooldown} steps" if tc.cooldown else ""),
        "loss": "eps-MSE"
        + (f", Min-SNR-{tc.min_snr:g} weighted" if tc.min_snr > 0 else "")
        + " (valid loss unweighted)",
        "EMA decay": tc.ema_decay,
        "wall time": f"{info['seconds'] / 3600:.2f} h on {info['device']}",
        "train loss (last interval)": f"{info['loss']:.4f}",
        "valid loss (EMA)": "-" if info["valid"] is None else f"{info['valid']:.4f}",
    }
    return model_card(
        cfg,
        summary=f"Trained with `diffsep train` on {data}.",
        training=training,
        data=info.get("data_note", ""),
        datasets=info.get("datasets", ()),
    )


def _save(
    out: Path,
    online: Prior,
    ema: Prior,
    opt: torch.optim.Optimizer,
    state: dict[str, Any],
    card: str,
) -> None:
    """Write the prior (EMA) and the resume state; each file replaced atomically."""
    train_dir = out / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    save_prior(ema, out / ".tmp-prior", card)
    for name in (CONFIG_NAME, WEIGHTS_NAME, "README.md"):
        os.replace(out / ".tmp-prior" / name, out / name)
    (out / ".tmp-prior").rmdir()
    weights = {k: v.detach().cpu().contiguous() for k, v in online.net.state_dict().items()}
    save_file(weights, str(train_dir / "online.safetensors.tmp"))
    os.replace(train_dir / "online.safetensors.tmp", train_dir / "online.safetensors")
    torch.save({**state, "optimizer": opt.state_dict()}, train_dir / "state.pt.tmp")
    os.replace(train_dir / "state.pt.tmp", train_dir / "state.pt")


def _check_sync(online: Prior, out: Path, rank: int) -> None:
    """Gather a checksum of every rank's weights; rank 0 records them in train/ranks.json."""
    total = torch.stack([p.detach().double().sum() for p in online.parameters()]).sum()
    sums = [total.new_zeros(1) for _ in range(dist.get_world_size())]
    dist.all_gather(sums, total.reshape(1))
    if rank == 0:
        (out / "train" / "ranks.json").write_text(json.dumps([float(s) for s in sums]))


def train(
    cfg: PriorConfig,
    tc: TrainConfig,
    data: Sequence[str | Path],
    out_dir: str | Path,
    *,
    valid: Sequence[str | Path] = (),
    labels_from_folders: bool = False,
    resume: bool = False,
    device: str = "cpu",
    compile: bool = False,
    callback: Callback | None = None,
    data_note: str = "",
) -> TrainResult:
    """Train (or resume) a prior on single-source audio under ``data``; returns the summary."""
    out = Path(out_dir)
    device = str(rank_device(torch.device(device)))
    rank, world = _dist(device)
    if resume:
        if not (out / "train" / "state.pt").exists():
            raise DiffsepError(f"nothing to resume in {out} (no train/state.pt)")
        cfg = PriorConfig.load(out / CONFIG_NAME)
    elif (out / "train" / "state.pt").exists():
        raise DiffsepError(f"{out} holds a training run: pass --resume, or another --out")
    clips = load_clips(
        data, cfg.sample_rate, labels_from_folders=labels_from_folders, shard=(rank, world)
    )
    if labels_from_folders and not resume:
        net = replace(cfg.net, num_classes=len(clips.names))
        cfg = replace(cfg, net=net, labels=clips.names, null_label=True)
    null = cfg.net.num_classes if cfg.null_label else None
    torch.manual_seed(tc.seed)
    online = Prior(cfg).to(device).train()
    ema = Prior(cfg).to(device).eval().requires_grad_(False)
    ema.net.load_state_dict(online.net.state_dict())
    opt = torch.optim.AdamW(online.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    step, elapsed = 0, 0.0
    if resume:
        online.net.load_state_dict(load_file(str(out / "train" / "online.safetensors")))
        ema.net.load_state_dict(load_file(str(out / WEIGHTS_NAME)))
        state = torch.load(out / "train" / "state.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["seconds"]
    # random streams are seeded by (seed, rank, step): deterministic, also across resumes
    stream = tc.seed * 1_000_003 + rank * 10_007 + step
    sampler = CropSampler(clips, cfg.segment, (tc.level_low, tc.level_high), seed=stream)
    gen = torch.Generator().manual_seed(stream)
    model: torch.nn.Module = online
    if world > 1:
        # levels of depth 0 leave their embedders unused
        unused = 0 in cfg.net.depths
        model = torch.nn.parallel.DistributedDataParallel(online, find_unused_parameters=unused)
    if compile:  # weights stay in ``online``; only the loss call is compiled
        model = torch.compile(model)  # type: ignore[assignment]
    valid_clips = load_clips(valid, cfg.sample_rate) if valid and rank == 0 else None
    valid_batch = _fixed_valid(valid_clips, cfg, tc, null)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    )
    weights = min_snr_weights(online.schedule.alphas_cumprod, tc.min_snr)
    log = out / "train" / "log.jsonl"
    if rank == 0:
        log.parent.mkdir(parents=True, exist_ok=True)
        _truncate_log(log, step)
        (out / "train" / "train_config.json").write_text(json.dumps(asdict(tc), indent=2))
    info: dict[str, Any] = {
        "world": world,
        "device": device,
        "loss": math.nan,
        "valid": None,
        "data_note": data_note,
    }
    losses: list[float] = []
    tick = time.perf_counter()

    hours = clips.seconds * world / cfg.sample_rate / 3600

    def checkpoint() -> None:
        info.update(step=step, seconds=elapsed + time.perf_counter() - tick)
        if world > 1:
            _check_sync(online, out, rank)
        if rank == 0:
            state = {"step": step, "seconds": info["seconds"]}
            _save(out, online, ema, opt, state, _card(cfg, tc, info, f"{hours:.2f} h of audio"))

    try:
        while step < tc.steps:
            x0, lab = sampler.batch(tc.batch)
            if null is not None:
                drop = torch.rand(tc.batch, generator=gen) < tc.label_dropout
                lab = torch.where(drop, torch.full_like(lab, null), lab)
            t = torch.randint(0, cfg.diffusion.steps, (tc.batch,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            for group in opt.param_groups:
                group["lr"] = tc.lr * lr_factor(step, tc)
            with amp:
                per_item = model(x0.to(device), t.to(device), noise.to(device), lab.to(device))
                loss = (per_item * weights[t].to(device)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(online.parameters(), tc.grad_clip)
            opt.step()
            step += 1
            _ema_update(ema, online, min(tc.ema_decay, (1 + step) / (10 + step)))
            losses.append(float(loss.detach()))
            if step % tc.log_every == 0 or step == tc.steps:
                now = elapsed + time.perf_counter() - tick
                info["loss"] = sum(losses) / len(losses)
                if step % tc.valid_every == 0 or step == tc.steps:
                    info["valid"] = _valid_loss(ema, valid_batch)
                row = {
                    "step": step,
                    "loss": info["loss"],
                    "valid_loss": info["valid"],
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": round(now, 1),
                }
                losses.clear()
                if rank == 0:
                    with log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                if callback is not None:
                    callback(row)
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise TrainingInterrupted(step) from None
    seconds = elapsed + time.perf_counter() - tick
    return TrainResult(step, info["loss"], info["valid"], seconds, out)
