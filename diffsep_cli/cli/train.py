"""Terminal side of ``diffsep train``: config resolution and a rich progress display."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .config import PRESETS, PriorConfig, TrainConfig
from .devices import resolve_device
from .errors import DiffsepError
from .train import TrainingInterrupted, sigterm_as_interrupt, train


def resolve_config(preset: str, name: str) -> PriorConfig:
    """A preset name or a config.json path -> PriorConfig named ``name``."""
    if preset in PRESETS:
        cfg = PRESETS[preset]
    elif Path(preset).is_file():
        cfg = PriorConfig.load(preset)
    else:
        raise DiffsepError(f"unknown config {preset!r}: use {', '.join(PRESETS)} or a JSON file")
    return replace(cfg, name=name)


def run_training(
    data: list[Path],
    out_dir: Path,
    *,
    name: str,
    preset: str,
    valid: list[Path],
    labels_from_folders: bool,
    steps: int,
    batch: int,
    lr: float,
    min_snr: float,
    cooldown: int,
    seed: int,
    checkpoint_every: int,
    resume: bool,
    device: str,
    compile: bool,
    quiet: bool,
    console: Console,
) -> None:
    tc = TrainConfig(
        steps=steps,
        batch=batch,
        lr=lr,
        min_snr=min_snr,
        cooldown=cooldown,
        seed=seed,
        checkpoint_every=checkpoint_every,
        valid_every=checkpoint_every,
    )
    progress = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )
    task = progress.add_task("train", total=steps, status="loading data")

    def callback(row: dict[str, Any]) -> None:
        rate = row["step"] / max(row["seconds"], 1e-9)
        valid_s = "" if row["valid_loss"] is None else f" valid {row['valid_loss']:.4f}"
        status = f"loss {row['loss']:.4f}{valid_s} {rate:.2f} steps/s"
        progress.update(task, completed=row["step"], status=status)

    try:
        with progress, sigterm_as_interrupt():
            result = train(
                resolve_config(preset, name),
                tc,
                data,
                out_dir,
                valid=valid,
                labels_from_folders=labels_from_folders,
                resume=resume,
                device=str(resolve_device(device)),
                compile=compile,
                callback=callback,
            )
    except TrainingInterrupted as stop:
        console.print(
            f"interrupted: checkpoint saved in {out_dir} at step {stop.step}"
            f"; continue with --resume"
        )
        raise
    if not quiet:
        console.print(
            f"trained {result.step} steps in {result.seconds / 60:.1f} min: "
            f"loss {result.loss:.4f}; prior in {result.out_dir}"
        )
