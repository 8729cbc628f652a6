"""Option types shared by several commands (same names, same help), and config building."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypeVar

import typer

from ..errors import DiffsepError

T = TypeVar("T")


def parse_ints(
    text: str, option: str, example: str, count: int = 0, least: int = 0
) -> tuple[int, ...]:
    """ "0,0,4,0,0" -> (0, 0, 4, 0, 0): ``count`` integers (0: any number, at least one), each
    >= ``least``; anything else is a DiffsepError naming ``option`` and an ``example``."""
    try:
        found = tuple(int(part) for part in text.split(","))
    except ValueError:
        found = ()
    if not found or (count and len(found) != count) or min(found) < least:
        many = f"{count} " if count else ""
        raise DiffsepError(f"{option} {text!r}: give {many}integers >= {least}, e.g. {example}")
    return found


Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="Show tracebacks.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress, no notices.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
# separation options of `separate` and `bench`: their names are SeparateConfig's fields
Classifier = Annotated[
    str,
    typer.Option(
        help="Class guidance: auto (the bundled classifier of the sources' priors), none,"
        " or a classifier folder (diffsep train-classifier)."
    ),
]
PerChannel = Annotated[bool, typer.Option(help="Separate each channel, not the mono downmix.")]
SkipExisting = Annotated[bool, typer.Option(help="Skip inputs whose outputs all exist.")]
ClassWeight = Annotated[float, typer.Option(help="Strength of the class guidance (0: off).")]
ClassMinStep = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Class guidance only at DDPM steps >= this (of 200; 0: every step). "
        "Default: 40 where eta is 0, else 0.",
        show_default=False,
    ),
]
Device = Annotated[str, typer.Option("-d", "--device", help="auto, cpu, cuda[:N], mps.")]
Steps = Annotated[int, typer.Option(help="Diffusion steps (200 = the paper's).")]
Solver = Annotated[
    str, typer.Option(help="dirac, projection (forward only) or hybrid, dsg, dps (guided).")
]
Init = Annotated[
    str, typer.Option(help="auto (per solver), noisy-mixture, split, noise or mixture.")
]
Eta = Annotated[
    float | None,
    typer.Option(help="Noise per step: 1 ancestral, 0 deterministic (default: per solver)."),
]
GuidedSteps = Annotated[
    int, typer.Option(help="dirac / projection: run the last N steps hybrid-guided.")
]
Samples = Annotated[
    int, typer.Option(help="Posterior draws averaged per segment (N times the cost; 1: one).")
]
Spacing = Annotated[
    str, typer.Option(help="Steps kept of the T: linear (even in t) or snr (even in log-SNR).")
]
Seed = Annotated[int, typer.Option(help="Random seed (same seed, same output).")]
Segment = Annotated[float | None, typer.Option(help="Segment seconds (default: the priors').")]
Overlap = Annotated[float, typer.Option(help="Overlap between segments (0-0.5).")]
BatchSize = Annotated[int, typer.Option(help="Segments separated at once.")]
Consistency = Annotated[
    str, typer.Option(help="Make the sources sum to the mixture: mask (soft masks), equal, none.")
]
Precision = Annotated[
    str,
    typer.Option(
        help="Network arithmetic: auto (bf16 where native: AMX or AVX512-BF16 CPUs, GPUs), "
        "fp32, bf16."
    ),
]
LowMemory = Annotated[
    bool,
    typer.Option(
        "--low-memory",
        help="Guided solvers (hybrid, dps, dsg, --guided-steps): recompute the networks' "
        "activations in the backward, about 1/3 of the memory at 1.3x the time.",
    ),
]


def config_from(cls: type[T], options: dict[str, Any]) -> T:
    """A frozen config dataclass from a command's options (its ``locals()``), by field name."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in options.items() if k in names})
