"""A training run on disk: the prior (EMA) with its card, and the resume state in ``train/``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..config import AUGMENTS, PriorConfig, TrainConfig
from ..core.prior import Prior
from ..errors import DiffsepError
from ..hub.card import model_card
from ..hub.folder import CONFIG_NAME, WEIGHTS_NAME, save_prior


def truncate_log(log: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from (they are re-run)."""
    if not log.exists():
        return
    rows = [line for line in log.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    if len(kept) < len(rows):
        log.write_text("".join(line + "\n" for line in kept))


def run_card(cfg: PriorConfig, tc: TrainConfig, info: dict[str, Any], data: str) -> str:
    training = {
        "steps": info["step"],
        "batch": f"{tc.batch} x {cfg.segment / cfg.sample_rate:g} s crops x {info['world']} ranks",
        "optimiser": f"AdamW lr {tc.lr:g}, wd {tc.weight_decay:g}, clip {tc.grad_clip:g}"
        + (f", lr cooled to 0 over the last {tc.cooldown} steps" if tc.cooldown else ""),
        "loss": "eps-MSE"
        + (f", Min-SNR-{tc.min_snr:g} weighted" if tc.min_snr > 0 else "")
        + (f", noise levels balanced {tc.step_balance:g}" if tc.step_balance > 0 else "")
        + (
            f", class margin {tc.class_margin:g} (weight {tc.margin_weight:g})"
            if tc.class_margin > 0
            else ""
        )
        + (f" against the rival prior {info['rival']}" if info.get("rival") else "")
        + " (valid loss unweighted)",
        "EMA decay": tc.ema_decay,
        "initialised from": info.get("init") or f"random (seed {tc.seed})",
        "augmentation": tc.augment + (f" ({AUGMENTS[tc.augment]})" if tc.augment != "none" else ""),
        "sampling": f"group folders balanced {tc.balance:g}, classes {tc.class_balance:g} "
        "(0: by length, 1: equal)",
        "wall time": f"{info['seconds'] / 3600:.2f} h on {info['device']}",
        "arithmetic": f"{info['precision']} (networks; optimiser and EMA fp32)",
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


def save_run(
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


# the U-Net's block lists; a key "latent.3.freatt..." belongs to block "latent.3"
LEVELS = ("encoder_level_1", "encoder_level_2", "latent", "decoder_level_2", "decoder_level_1")


def _block(key: str) -> str | None:
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] in LEVELS else None


def warm_start(prior: Prior, source: Prior) -> None:
    """Copy ``source``'s weights into ``prior`` (same architecture, maybe other classes or
    deeper levels).

    Tensors of equal shape are copied; a label-embedding table of another size (a
    class-conditional prior grown from an unconditional one, or other classes) gets the
    source's default row in every row: its null class if it has one, else class 0, so every
    new class starts as the prior it was grown from. Blocks ``source`` lacks (a level made
    deeper) start as the identity: their adaLN modulations are zero (adaLN-Zero, all gates
    closed), so the grown net computes what ``source`` does. Any other mismatch, or a level
    made shallower, is a DiffsepError.
    """
    old = source.net.state_dict()
    new = prior.net.state_dict()
    default = source.config.net.num_classes if source.config.null_label else 0
    old_blocks = {_block(key) for key in old}
    grown: set[str] = set()
    for key, value in new.items():
        have = old.get(key)
        block = _block(key)
        if have is not None and have.shape == value.shape:
            value.copy_(have)
        elif have is not None and key.endswith("embedding_table.weight"):
            value.copy_(have[default].expand_as(value))
        elif have is None and block is not None and block not in old_blocks:
            grown.add(block)
        else:
            got = "missing" if have is None else f"shape {tuple(have.shape)}"
            raise DiffsepError(
                f"--init: {source.config.name} does not match the architecture ({key}: {got},"
                f" needs {tuple(value.shape)})"
            )
    lost = sorted({_block(key) or key for key in old if key not in new})
    if lost:
        raise DiffsepError(
            f"--init: {source.config.name} has blocks this architecture lacks ({lost[0]}):"
            " levels can only grow deeper"
        )
    for block in grown:
        for name, module in prior.net.get_submodule(block).named_modules():
            if "adaLN_modulation" in name and isinstance(module, torch.nn.Linear):
                torch.nn.init.zeros_(module.weight)
                torch.nn.init.zeros_(module.bias)
