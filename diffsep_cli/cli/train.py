"""``diffsep train``: the command, config resolution and a rich progress display."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import PRESETS, PriorConfig, TrainConfig
from ..errors import DiffsepError
from .console import err, user_errors
from .options import Precision, Quiet, Verbose, config_from, parse_ints


def train_cmd(
    data: Annotated[list[Path], typer.Argument(help="Folders/files of single-source audio.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Prior folder to write.")],
    name: Annotated[str, typer.Option(help="Prior name (default: the --out folder name).")] = "",
    config: Annotated[
        str, typer.Option(help="Preset (lite, small, base, paper, tiny) or a config.json.")
    ] = "lite",
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from this prior folder's architecture and weights (not --config)."
        ),
    ] = None,
    depths: Annotated[
        str,
        typer.Option(
            help="Blocks per level: enc1,enc2,latent,dec2,dec1 (default: the config's). With"
            " --init, deeper levels grow from its weights, new blocks starting as identity."
        ),
    ] = "",
    valid: Annotated[
        list[Path] | None, typer.Option(help="Held-out audio for a fixed validation loss.")
    ] = None,
    labels_from_folders: Annotated[
        bool, typer.Option(help="Class-conditional: the class is each file's subfolder.")
    ] = False,
    steps: Annotated[int, typer.Option(help="Total optimisation steps.")] = 100_000,
    batch: Annotated[int, typer.Option(help="Crops per step (per process).")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-4,
    min_snr: Annotated[
        float, typer.Option(help="Min-SNR-gamma loss weighting (0: plain eps-MSE).")
    ] = 5.0,
    step_balance: Annotated[
        float,
        typer.Option(
            help="Give every noise level an equal share of the loss (1), by running means of"
            " its loss; 0: the Min-SNR weights as they are."
        ),
    ] = 0.0,
    cooldown: Annotated[
        int, typer.Option(help="Decay the lr to 0 over the last N of --steps (0: constant).")
    ] = 0,
    augment: Annotated[
        str,
        typer.Option(
            help="Crop augmentation: none, speech (speed, EQ, rooms), voices (speech and other "
            "voices: formants and pitch moved apart, needs diffsep[train]), sfx (rooms)."
        ),
    ] = "none",
    level_low: Annotated[
        float, typer.Option(help="Crops are levelled to U[--level-low, --level-high] dBFS RMS.")
    ] = -25.0,
    level_high: Annotated[float, typer.Option(help="See --level-low.")] = -20.0,
    crops: Annotated[
        str,
        typer.Option(
            help="crop: level each crop as a whole; clip: on its clip's own span (a short clip"
            " keeps its level, quieter in the crop, as in mixtures); event: one non-silent span"
            " of a clip in silence, levelled on it (sound events as make-mixtures builds them)."
        ),
    ] = "crop",
    balance: Annotated[
        float, typer.Option(help="Draw group folders by length (0) .. equally often (1).")
    ] = 0.0,
    class_balance: Annotated[
        float, typer.Option(help="The same between classes (--labels-from-folders).")
    ] = 0.0,
    class_margin: Annotated[
        float,
        typer.Option(
            help="Class-conditional: ask the loss under a wrong class to exceed the own"
            " class's by the factor 1 + M at low noise, less with the signal (0: off)."
        ),
    ] = 0.0,
    margin_weight: Annotated[
        float, typer.Option(help="Weight of the --class-margin hinge in the loss.")
    ] = 0.02,
    rival: Annotated[
        Path | None,
        typer.Option(
            help="A prior of another class: on its audio (--rival-data) this prior's loss"
            " should exceed the rival's by the --class-margin factor."
        ),
    ] = None,
    rival_data: Annotated[
        list[Path] | None, typer.Option(help="Audio of the --rival prior's class.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of init, crops, steps and noise.")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    device: Annotated[
        str, typer.Option("-d", "--device", help="cpu, cuda[:N]; torchrun: a GPU per rank.")
    ] = "cpu",
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the loss (faster after warm-up).")
    ] = False,
    precision: Precision = "auto",
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Train a diffusion prior on single-source audio (also under torchrun for DDP)."""
    with user_errors(verbose):
        from ..core.devices import resolve_device
        from ..train.trainer import train

        tc = replace(config_from(TrainConfig, locals()), valid_every=checkpoint_every)
        if (rival is None) != (not rival_data):
            raise DiffsepError("--rival and --rival-data go together")
        prior_cfg = resolve_config(config, name or out_dir.name)
        with training_display(err, steps, quiet, out_dir) as callback:
            result = train(
                prior_cfg,
                tc,
                data,
                out_dir,
                valid=valid or [],
                labels_from_folders=labels_from_folders,
                resume=resume,
                device=str(resolve_device(device)),
                compile=compile,
                callback=callback,
                init=init,
                depths=parse_depths(depths) if depths else None,
                rival=(rival, rival_data) if rival is not None and rival_data else None,
            )
        if not quiet:
            err.print(
                f"trained {result.step} steps in {result.seconds / 60:.1f} min: "
                f"loss {result.loss:.4f}; prior in {result.out_dir}"
            )


def resolve_config(preset: str, name: str) -> PriorConfig:
    """A preset name or a config.json path -> PriorConfig named ``name``."""
    if preset in PRESETS:
        cfg = PRESETS[preset]
    elif Path(preset).is_file():
        cfg = PriorConfig.load(preset)
    else:
        raise DiffsepError(f"unknown config {preset!r}: use {', '.join(PRESETS)} or a JSON file")
    return replace(cfg, name=name)


def parse_depths(text: str) -> tuple[int, int, int, int, int]:
    """ "0,0,4,0,0" -> (0, 0, 4, 0, 0); anything else is a DiffsepError."""
    return parse_ints(text, "--depths", "0,0,4,0,0", count=5)  # type: ignore[return-value]


@contextmanager
def training_display(
    console: Console, steps: int, quiet: bool, out_dir: Path
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar fed by the trainer's log rows; SIGTERM and Ctrl-C checkpoint and say so."""
    from ..train.interrupt import TrainingInterrupted, sigterm_as_interrupt

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
            yield callback
    except TrainingInterrupted as stop:
        console.print(
            f"interrupted: checkpoint saved in {out_dir} at step {stop.step}"
            f"; continue with --resume"
        )
        raise
