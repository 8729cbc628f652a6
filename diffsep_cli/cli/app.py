"""The ``diffsep`` command line: thin Typer commands over the library (torch imported lazily)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, DiffsepError

app = typer.Typer(
    name="diffsep",
    help="Unsupervised single-channel audio separation with diffusion source priors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="Show tracebacks.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress, no notices.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
# separation options shared by `separate` and `bench` (same names, same help)
Device = Annotated[str, typer.Option("-d", "--device", help="auto, cpu, cuda[:N], mps.")]
Steps = Annotated[int, typer.Option(help="Diffusion steps (200 = the paper's).")]
Solver = Annotated[str, typer.Option(help="hybrid, dsg or dps.")]
Init = Annotated[str, typer.Option(help="noisy-mixture, noise or mixture.")]
Seed = Annotated[int, typer.Option(help="Random seed (same seed, same output).")]
Segment = Annotated[float | None, typer.Option(help="Segment seconds (default: the priors').")]
Overlap = Annotated[float, typer.Option(help="Overlap between segments (0-0.5).")]
BatchSize = Annotated[int, typer.Option(help="Segments separated at once.")]
Consistency = Annotated[
    str, typer.Option(help="Make the sources sum to the mixture: mask (soft masks), equal, none.")
]


def make_progress(console: Console, enabled: bool) -> Progress:
    """The progress display of every command: stderr, off when not wanted or not a terminal."""
    return Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    err.print(f"[bold red]error:[/] {' '.join(message.split())}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors(verbose: int = 0) -> Iterator[None]:
    """Turn mistakes a user can fix into one line and an exit code (tracebacks with -v)."""
    try:
        yield
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except (DiffsepError, ValueError, OSError) as exc:
        if verbose:
            err.print_exception()
        code = exc.exit_code if isinstance(exc, DiffsepError) else EXIT_ERROR
        fail(escape(str(exc).strip() or type(exc).__name__), code)


def _version(value: bool) -> None:
    if value:
        out.print(f"diffsep {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Separate a mixture into sources with one diffusion prior per source class."""


@app.command("separate")
def separate_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders (recursive).")],
    sources: Annotated[
        str,
        typer.Option(
            "--sources",
            "-s",
            help="One prior per source: speech,sfx | speech,speech | sfx:Bark,sfx:Gong | "
            "a prior folder | org/name[@rev].",
        ),
    ],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path(
        "separated"
    ),
    filename: Annotated[
        str, typer.Option(help="Output path template: {track}, {source}, {ext}.")
    ] = "{track}/{source}.{ext}",
    fmt: Annotated[
        str | None, typer.Option("--format", help="Output format (default: the input's).")
    ] = None,
    subtype: Annotated[
        str | None, typer.Option(help="PCM_16, PCM_24, FLOAT, ... (default: the input's).")
    ] = None,
    device: Device = "auto",
    steps: Steps = 50,
    solver: Solver = "hybrid",
    init: Init = "noisy-mixture",
    seed: Seed = 0,
    segment: Segment = None,
    overlap: Overlap = 0.25,
    batch_size: BatchSize = 4,
    consistency: Consistency = "mask",
    per_channel: Annotated[
        bool, typer.Option(help="Separate each channel instead of the mono downmix.")
    ] = False,
    overwrite: Overwrite = False,
    skip_existing: Annotated[
        bool, typer.Option(help="Skip inputs whose outputs all exist.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Separate audio files into one file per source."""
    with user_errors(verbose):
        from .config import SeparateConfig
        from .separate_cli import run_separate

        cfg = SeparateConfig(
            steps=steps,
            solver=solver,
            init=init,
            seed=seed,
            segment=segment,
            overlap=overlap,
            batch_size=batch_size,
            consistency=consistency,
            per_channel=per_channel,
        )
        run_separate(
            inputs,
            sources,
            out_dir,
            filename,
            cfg,
            fmt=fmt,
            subtype=subtype,
            device=device,
            overwrite=overwrite,
            skip_existing=skip_existing,
            as_json=as_json,
            quiet=quiet,
            console=err,
            out=out,
        )


@app.command("import-checkpoint")
def import_checkpoint_cmd(
    ckpt: Annotated[Path, typer.Argument(help="Official checkpoint (.pt with 'model', 'ema').")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Prior folder to write.")],
    heads: Annotated[int, typer.Option(help="Attention heads (not visible in shapes).")] = 4,
    hop: Annotated[int | None, typer.Option(help="STFT hop (default n_fft // 2).")] = None,
    labels: Annotated[
        str, typer.Option(help="Class names, comma-separated, or 'fsd' (official sound prior).")
    ] = "",
    name: Annotated[str, typer.Option(help="Prior name for its config and card.")] = "",
    overwrite: Overwrite = False,
    verbose: Verbose = 0,
) -> None:
    """Convert an official unasdiff checkpoint (EMA weights) into a diffsep prior folder."""
    with user_errors(verbose):
        from .convert import import_prior

        names = labels.split(",") if labels else []
        path = import_prior(
            ckpt,
            out_dir,
            heads=heads,
            hop=hop,
            labels=names,
            name=name or out_dir.name,
            overwrite=overwrite,
        )
        out.print(f"wrote {path}")


@app.command("train")
def train_cmd(
    data: Annotated[list[Path], typer.Argument(help="Folders/files of single-source audio.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Prior folder to write.")],
    name: Annotated[str, typer.Option(help="Prior name (default: the --out folder name).")] = "",
    config: Annotated[
        str, typer.Option(help="Preset (small, lite, tiny, paper) or a config.json to start from.")
    ] = "lite",
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
    cooldown: Annotated[
        int, typer.Option(help="Decay the lr to 0 over the last N of --steps (0: constant).")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of init, crops, steps and noise.")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    device: Annotated[
        str, typer.Option("-d", "--device", help="cpu, cuda[:N]; torchrun: a GPU per rank.")
    ] = "cpu",
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the loss (faster after warm-up).")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Train a diffusion prior on single-source audio (also under torchrun for DDP)."""
    with user_errors(verbose):
        from .training_cli import run_training

        run_training(
            data,
            out_dir,
            name=name or out_dir.name,
            preset=config,
            valid=valid or [],
            labels_from_folders=labels_from_folders,
            steps=steps,
            batch=batch,
            lr=lr,
            min_snr=min_snr,
            cooldown=cooldown,
            seed=seed,
            checkpoint_every=checkpoint_every,
            resume=resume,
            device=device,
            compile=compile,
            quiet=quiet,
            console=err,
        )


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:  # raised outside a command body
        err.print("error: interrupted")
        sys.exit(EXIT_INTERRUPTED)


# commands defined in their own modules register themselves on ``app``
from . import cli_bench, cli_hub  # noqa: E402, F401
