"""Prior training: eps-prediction DDPM loss on random single-source crops (AdamW, EMA,
gradient clipping, bf16 autocast where native), checkpoints with resume, and DDP under ``torchrun``.

The output folder is a usable prior at every checkpoint (``config.json``, EMA weights in
``model.safetensors``, ``README.md``); ``train/`` beside them holds what resuming needs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import Tensor

from ..config import AUGMENTS, PriorConfig, TrainConfig
from ..core.devices import autocast, precision_used, process_group, rank_device
from ..core.diffusion import min_snr_weights
from ..core.prior import Prior
from ..errors import DiffsepError
from ..hub.folder import CONFIG_NAME, WEIGHTS_NAME, load_prior_dir
from .augment import praat
from .balance import StepBalance
from .checkpoint import run_card, save_run, truncate_log, warm_start
from .data import Clips, CropSampler, load_clips
from .interrupt import TrainingInterrupted
from .losses import class_margin_loss, margin_at, wrong_labels
from .rival import load_rival

Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    step: int
    loss: float
    valid_loss: float | None
    seconds: float
    out_dir: Path


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
    level = (tc.level_low, tc.level_high)
    sampler = CropSampler(clips, cfg.segment, level, seed=12345, style=tc.crops)
    x0, lab = sampler.batch(tc.valid_items)
    gen = torch.Generator().manual_seed(12345)
    t = torch.linspace(0, cfg.diffusion.steps - 1, tc.valid_items).long()
    lab = torch.full_like(lab, null) if null is not None else lab
    return x0, t, torch.randn(x0.shape, generator=gen), lab


def _check_sync(online: Prior, out: Path, rank: int) -> None:
    """Gather a checksum of every rank's weights; rank 0 records them in train/ranks.json."""
    total = torch.stack([p.detach().double().sum() for p in online.parameters()]).sum()
    sums = [total.new_zeros(1) for _ in range(dist.get_world_size())]
    dist.all_gather(sums, total.reshape(1))
    if rank == 0:
        (out / "train" / "ranks.json").write_text(json.dumps([float(s) for s in sums]))


@dataclass
class _State:
    """What one optimisation loop carries: models, optimiser, random streams, counters."""

    online: Prior
    ema: Prior
    model: torch.nn.Module  # ``online``, DDP-wrapped and/or compiled
    opt: torch.optim.Optimizer
    step: int
    elapsed: float  # seconds trained before this process (resume)
    init: str = ""  # the prior the run started from (kept across resumes for the card)
    balance: StepBalance | None = None  # per-noise-level loss balance (tc.step_balance)


def _run_config(cfg: PriorConfig, out: Path, resume: bool) -> PriorConfig:
    """The config of the run in ``out``: the saved one when resuming, else ``cfg``."""
    if resume:
        if not (out / "train" / "state.pt").exists():
            raise DiffsepError(f"nothing to resume in {out} (no train/state.pt)")
        return PriorConfig.load(out / CONFIG_NAME)
    if (out / "train" / "state.pt").exists():
        raise DiffsepError(f"{out} holds a training run: pass --resume, or another --out")
    return cfg


def _models(
    cfg: PriorConfig,
    tc: TrainConfig,
    out: Path,
    resume: bool,
    device: str,
    world: int,
    compile: bool,
    init: Prior | None = None,
) -> _State:
    """Online and EMA priors and AdamW, from the seed (or ``init``'s weights, see
    ``warm_start``) or from the run's resume state."""
    torch.manual_seed(tc.seed)
    online = Prior(cfg).to(device).train()
    if init is not None:  # train() passes none when resuming
        warm_start(online, init.to(device))
    ema = Prior(cfg).to(device).eval().requires_grad_(False)
    ema.net.load_state_dict(online.net.state_dict())
    fused = device.startswith("cuda")  # one kernel for the whole update on GPUs
    opt = torch.optim.AdamW(
        online.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=fused or None
    )
    step, elapsed, started = 0, 0.0, ""
    balance = StepBalance(cfg.diffusion.steps, tc.step_balance) if tc.step_balance else None
    if resume:
        online.net.load_state_dict(load_file(str(out / "train" / "online.safetensors")))
        ema.net.load_state_dict(load_file(str(out / WEIGHTS_NAME)))
        state = torch.load(out / "train" / "state.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        step, elapsed, started = state["step"], state["seconds"], state.get("init", "")
        if balance is not None and "step_balance" in state:
            balance.load_state_dict(state["step_balance"])
    model: torch.nn.Module = online
    if world > 1:  # levels of depth 0 leave their embedders unused
        unused = 0 in cfg.net.depths
        model = torch.nn.parallel.DistributedDataParallel(online, find_unused_parameters=unused)
    if compile:  # weights stay in ``online``; only the loss call is compiled
        model = torch.compile(model)  # type: ignore[assignment]
    return _State(online, ema, model, opt, step, elapsed, started, balance)


def _optimise(
    st: _State,
    tc: TrainConfig,
    batch: tuple[Tensor, Tensor, Tensor, Tensor],
    weights: Tensor,
    device: str,
    wrong: Tensor | None = None,
    rival: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> float:
    """One AdamW step on the weighted loss of a batch (x0, t, noise, label); EMA. ``weights``:
    per-step weights [T] (Min-SNR), balanced by ``st.balance`` when the run balances steps.
    ``wrong``: a wrong class per item (:func:`.losses.wrong_labels`): the same crops are also
    scored under it for the class margin (``tc.class_margin``). ``rival``: crops of another
    class and its prior's loss on them (:meth:`.rival.Rival.batch`) for the rival margin.
    All of it runs as one batch."""
    x0, t, noise, lab = (v.to(device) for v in batch)
    for group in st.opt.param_groups:
        group["lr"] = tc.lr * lr_factor(st.step, tc)
    parts = [(x0, t, noise, lab)]
    if wrong is not None:
        parts.append((x0, t, noise, wrong.to(device)))
    if rival is not None:
        rx, rt, rn = (v.to(device) for v in rival[:3])
        parts.append((rx, rt, rn, torch.full_like(rt, st.online.config.default_label)))
    abar = st.online.schedule.alphas_cumprod
    with autocast(torch.device(device), tc.precision):
        out = st.model(*(torch.cat(p) for p in zip(*parts, strict=True))).float()
        own = out[: len(x0)]
        if st.balance is not None:
            weights = st.balance.weights(weights)
            st.balance.observe(t, own)
        loss = (own * weights[t.cpu()].to(device)).mean()
        if wrong is not None:
            target = margin_at(abar[t.cpu()], tc.class_margin).to(device)
            other = out[len(x0) : 2 * len(x0)]
            loss = loss + tc.margin_weight * class_margin_loss(own, other, target, wrong != lab)
        if rival is not None:
            target = margin_at(abar[rival[1]], tc.class_margin).to(device)
            mine, everyone = out[-len(rx) :], torch.ones_like(rt, dtype=torch.bool)
            margin = class_margin_loss(rival[3].to(device), mine, target, everyone)
            loss = loss + tc.margin_weight * margin
    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(st.online.parameters(), tc.grad_clip)
    st.opt.step()
    st.step += 1
    _ema_update(st.ema, st.online, min(tc.ema_decay, (1 + st.step) / (10 + st.step)))
    return float(loss.detach())


def _noised_batch(
    sampler: CropSampler,
    gen: torch.Generator,
    cfg: PriorConfig,
    tc: TrainConfig,
    null: int | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Crops, their labels (dropped to the null class at ``label_dropout``), steps and noise."""
    x0, lab = sampler.batch(tc.batch)
    if null is not None:
        drop = torch.rand(tc.batch, generator=gen) < tc.label_dropout
        lab = torch.where(drop, torch.full_like(lab, null), lab)
    t = torch.randint(0, cfg.diffusion.steps, (tc.batch,), generator=gen)
    return x0, t, torch.randn(x0.shape, generator=gen), lab


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
    init: str | Path | None = None,
    depths: tuple[int, int, int, int, int] | None = None,
    rival: tuple[str | Path, Sequence[str | Path]] | None = None,
) -> TrainResult:
    """Train (or resume) a prior on single-source audio under ``data``; returns the summary.

    ``init``: a prior folder to start from (its architecture and weights replace ``cfg``'s;
    with ``labels_from_folders`` its label table grows to the folders' classes).
    ``depths``: blocks per level of a new run's net; with ``init``, levels deeper than its
    grow from its weights, the new blocks starting as the identity (see ``warm_start``).
    ``rival``: (prior folder, audio of its class) for the rival margin (:mod:`.rival`)."""
    # setup: this rank's device, the run's config, its data share
    out = Path(out_dir)
    if AUGMENTS[tc.augment].voice_prob:
        praat()  # fails before any work without it
    device = str(rank_device(torch.device(device)))
    rank, world = process_group(torch.device(device))
    # what auto means here, resolved once (not probed every step; train_config.json says it)
    tc = replace(tc, precision=precision_used(torch.device(device), tc.precision))
    start = load_prior_dir(init) if init is not None and not resume else None
    if start is not None:
        cfg = replace(start.config, name=cfg.name)
    if depths is not None:
        if resume:
            raise DiffsepError("--depths sets a new run's net: a resumed run keeps its own")
        cfg = replace(cfg, net=replace(cfg.net, depths=depths))
    cfg = _run_config(cfg, out, resume)
    clips = load_clips(
        data, cfg.sample_rate, labels_from_folders=labels_from_folders, shard=(rank, world)
    )
    if labels_from_folders and not resume:
        net = replace(cfg.net, num_classes=len(clips.names))
        cfg = replace(cfg, net=net, labels=clips.names, null_label=True)
    null = cfg.net.num_classes if cfg.null_label else None
    by_class = tc.class_margin > 0 and null is not None and cfg.net.num_classes >= 2
    if tc.class_margin > 0 and not by_class and rival is None:
        raise DiffsepError(
            "--class-margin needs a class-conditional prior with 2 or more classes, or --rival"
        )
    if rival is not None and tc.class_margin <= 0:
        raise DiffsepError("--rival needs a --class-margin above 0")
    st = _models(cfg, tc, out, resume, device, world, compile, start)
    # random streams are seeded by (seed, rank, step): deterministic, also across resumes
    stream = tc.seed * 1_000_003 + rank * 10_007 + st.step
    aug = AUGMENTS[tc.augment] if tc.augment != "none" else None
    level = (tc.level_low, tc.level_high)
    crops: dict[str, Any] = {
        "level": level,
        "style": tc.crops,
        "balance": tc.balance,
        "augment": aug,
        "rate": cfg.sample_rate,
    }
    sampler = CropSampler(clips, cfg.segment, seed=stream, class_balance=tc.class_balance, **crops)
    gen = torch.Generator().manual_seed(stream)
    opponent = load_rival(*rival, cfg.segment, {**crops, "seed": stream + 1}) if rival else None
    valid_clips = load_clips(valid, cfg.sample_rate) if valid and rank == 0 else None
    valid_batch = _fixed_valid(valid_clips, cfg, tc, null)
    weights = min_snr_weights(st.online.schedule.alphas_cumprod, tc.min_snr)
    log = out / "train" / "log.jsonl"
    if rank == 0:
        log.parent.mkdir(parents=True, exist_ok=True)
        truncate_log(log, st.step)
        (out / "train" / "train_config.json").write_text(json.dumps(asdict(tc), indent=2))
    info: dict[str, Any] = {"world": world, "device": device, "loss": math.nan, "valid": None}
    info["precision"] = tc.precision
    info["data_note"] = data_note
    info["init"] = str(init) if start is not None else st.init
    info["rival"] = str(rival[0]) if rival else ""
    if start is not None and start.config.net.depths != cfg.net.depths:
        info["init"] += f" (grown: depths {start.config.net.depths} -> {cfg.net.depths})"
    hours = clips.seconds * world / cfg.sample_rate / 3600
    losses: list[float] = []
    tick = time.perf_counter()

    def checkpoint() -> None:
        info.update(step=st.step, seconds=st.elapsed + time.perf_counter() - tick)
        if world > 1:
            _check_sync(st.online, out, rank)
        if rank == 0:
            state = {"step": st.step, "seconds": info["seconds"], "init": info["init"]}
            if st.balance is not None:
                state["step_balance"] = st.balance.state_dict()
            card = run_card(cfg, tc, info, f"{hours:.2f} h of audio")
            save_run(out, st.online, st.ema, st.opt, state, card)

    # loop: optimise; log (and validate) every log_every steps; checkpoint
    try:
        while st.step < tc.steps:
            batch = _noised_batch(sampler, gen, cfg, tc, null)
            wrong = None
            if by_class and null is not None:
                wrong = wrong_labels(batch[3], cfg.net.num_classes, null, gen)
            extra = opponent.batch(tc.batch, cfg.diffusion.steps, gen, device) if opponent else None
            losses.append(_optimise(st, tc, batch, weights, device, wrong, extra))
            last = st.step == tc.steps
            if st.step % tc.log_every == 0 or last:
                info["loss"] = sum(losses) / len(losses)
                losses.clear()
                if st.step % tc.valid_every == 0 or last:
                    info["valid"] = _valid_loss(st.ema, valid_batch)
                row = {
                    "step": st.step,
                    "loss": info["loss"],
                    "valid_loss": info["valid"],
                    "lr": st.opt.param_groups[0]["lr"],
                    "seconds": round(st.elapsed + time.perf_counter() - tick, 1),
                }
                if rank == 0:
                    with log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                if callback is not None:
                    callback(row)
            if st.step % tc.checkpoint_every == 0 or last:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise TrainingInterrupted(st.step) from None
    seconds = st.elapsed + time.perf_counter() - tick
    return TrainResult(st.step, info["loss"], info["valid"], seconds, out)
