"""``diffsep train-classifier``: a noise-conditional source classifier for class guidance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from ..config import AUGMENTS
from ..errors import DiffsepError
from .console import err, user_errors
from .options import Overwrite, Precision, Quiet, Verbose, parse_ints

ClassFolders = Annotated[
    list[str],
    typer.Argument(help="NAME=FOLDER per class, NAME a prior's name (speech=data/train/speech)."),
]


def parse_class_folders(items: list[str]) -> dict[str, list[Path]]:
    """["speech=a", "sfx=b", "sfx=c"] -> {"speech": [a], "sfx": [b, c]} (folders must exist)."""
    found: dict[str, list[Path]] = defaultdict(list)
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise DiffsepError(f"{item!r}: give NAME=FOLDER, e.g. speech=data/train/speech")
        if not Path(folder).exists():
            raise DiffsepError(f"{folder}: no such file or folder")
        found[name].append(Path(folder))
    return dict(found)


def parse_presets(items: list[str], classes: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """["speech=voices"] -> (("speech", "voices"),): augmentation presets of named classes
    (``ClassifierRecipe`` checks the presets)."""
    out = []
    for item in items:
        name, sep, preset = item.partition("=")
        if not sep or name not in classes:
            raise DiffsepError(f"--augment {item!r}: give NAME=PRESET, NAME one of the classes")
        out.append((name, preset))
    return tuple(out)


def train_classifier_cmd(
    classes: ClassFolders,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Classifier folder to write.")],
    valid: Annotated[
        list[str] | None, typer.Option(help="NAME=FOLDER of held-out audio (accuracy).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 3000,
    batch: Annotated[int, typer.Option(help="Crops per step, shared by the classes.")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of init, crops and noise.")] = 0,
    channels: Annotated[
        str, typer.Option(help="Widths of the conv stages (one 2x2 pooling between each).")
    ] = "32,64,96,128",
    leak: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of crops with another class's crop beneath; targets become energy "
            "shares, so guidance pushes leaks out of a source.",
        ),
    ] = 0.0,
    leak_db: Annotated[
        tuple[float, float], typer.Option(help="Level range (dB) of that crop against its own.")
    ] = (-25.0, 0.0),
    augment: Annotated[
        list[str] | None,
        typer.Option(
            help=f"NAME=PRESET: another augmentation for a class ({', '.join(AUGMENTS)}; "
            "default: the preset of the class's name, else none)."
        ),
    ] = None,
    precision: Precision = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Train a classifier that tells the priors' classes apart in noisy audio (class guidance:
    `separate --classifier`)."""
    with user_errors(verbose):
        from ..config import ClassifierConfig
        from ..hub.classifiers import save_classifier
        from ..train.classify import ClassifierRecipe, classifier_card, train_classifier

        folders = parse_class_folders(classes)
        held = parse_class_folders(valid or [])
        if held and set(held) != set(folders):
            raise DiffsepError("--valid needs a folder for every class and no other")
        if out_dir.exists() and not overwrite:
            raise DiffsepError(f"{out_dir} exists (use --overwrite to replace it)")
        widths = parse_ints(channels, "--channels", "32,64,96,128", least=1)
        cfg = ClassifierConfig(labels=tuple(folders), channels=widths)
        if leak_db[0] > leak_db[1]:
            raise DiffsepError(f"--leak-db {leak_db[0]:g} {leak_db[1]:g}: give LOW HIGH")
        presets = parse_presets(augment or [], folders)
        recipe = ClassifierRecipe(
            steps=steps,
            batch=batch,
            lr=lr,
            seed=seed,
            leak=leak,
            leak_db=leak_db,
            augment=presets,
            precision=precision,
        )

        def log(row: dict[str, float]) -> None:
            if not quiet and row["step"] % 500 == 0:
                err.print(f"step {row['step']:.0f}: loss {row['loss']:.4f}", highlight=False)

        run = train_classifier(folders, cfg, recipe, held or None, log)
        save_classifier(run.classifier, out_dir, classifier_card(run, folders, recipe))
        if not quiet:
            acc = ", ".join(f"t{t} {a:.2f}" for t, a in run.accuracy.items())
            note = f"; held-out accuracy {acc}" if acc else ""
            err.print(f"{run.steps} steps; classifier in {out_dir}{note}", highlight=False)
