"""``diffsep pull-priors``, ``priors``, ``push-priors`` and ``import-checkpoint``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ..errors import DiffsepError
from .console import err, out, user_errors
from .options import AsJson, Overwrite, Quiet, Verbose

if TYPE_CHECKING:
    from ..hub.registry import HubPrior

CacheDir = Annotated[
    Path | None,
    typer.Option(help="Hub cache (default: HF_HUB_CACHE, else HF_HOME/hub; separate reads those)."),
]


def pull_priors_cmd(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Registry names or ORG/NAME[@REV] (default: every registry prior)."),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Commit, branch or tag instead of the pinned commit.")
    ] = None,
    cache_dir: CacheDir = None,
    local_dir: Annotated[
        Path | None, typer.Option(help="Write the files into this prior folder instead.")
    ] = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Download priors from the Hugging Face Hub once (verified), then work offline.

    Exit status 3: a prior is not cached and the Hub is unreachable or HF_HUB_OFFLINE is set.
    """
    with user_errors(verbose):
        run_pull(names or [], revision, cache_dir, local_dir, as_json, quiet, verbose)


def priors_cmd(cache_dir: CacheDir = None, as_json: AsJson = False, verbose: Verbose = 0) -> None:
    """List bundled, registry and cached priors: source, revision, rate, classes, presence."""
    with user_errors(verbose):
        from ..hub.api import list_priors

        show_priors(list_priors(cache_dir), as_json)


def push_priors_cmd(
    folder: Annotated[Path, typer.Argument(help="Prior folder: config, weights, model card.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repository ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    verbose: Verbose = 0,
) -> None:
    """Validate a prior folder and upload it to a Hub model repository (created if needed)."""
    with user_errors(verbose):
        run_push(folder, repo_id, private, verbose)


def _refs(names: list[str], revision: str | None, quiet: bool) -> list[HubPrior]:
    from ..hub.registry import hub_prior, load_registry

    if not names:
        registry = load_registry()
        names = [n for n, e in registry.items() if e.revision or revision]
        for name in sorted(set(registry) - set(names)):
            if not quiet:
                err.print(f"skipping {name}: bundled with diffsep, not published on the Hub yet")
    refs = []
    for name in names:
        ref = hub_prior(name, revision)
        if ref is None:
            raise DiffsepError(f"unknown prior {name!r}: not in the registry, not ORG/NAME[@REV]")
        refs.append(ref)
    return refs


def run_pull(
    names: list[str],
    revision: str | None,
    cache_dir: Path | None,
    local_dir: Path | None,
    as_json: bool,
    quiet: bool,
    verbose: int,
) -> None:
    """Pull each prior with a progress bar; one line (or a JSON list) saying where it went."""
    from huggingface_hub.utils import logging as hf_logging

    from ..hub.api import pull_prior

    if not verbose:  # its retry warnings would break the one-line errors; -v shows them
        hf_logging.set_verbosity_error()
    refs = _refs(names, revision, quiet or as_json)
    if local_dir is not None and len(refs) != 1:
        raise DiffsepError("--local-dir takes exactly one prior")
    done = []
    with _progress(quiet or as_json) as progress:
        for ref in refs:
            bar = partial(_bar, progress, ref.name)
            pulled = pull_prior(ref, cache_dir=cache_dir, local_dir=local_dir, bar=bar)
            done.append({**pulled.__dict__, "path": str(pulled.path)})
            state = "downloaded" if pulled.downloaded else "already present"
            if not as_json:
                out.print(
                    f"{escape(ref.name)}: {pulled.repo_id}@{pulled.revision} {state} in "
                    f"{escape(str(pulled.path))}"
                )
    if as_json:
        out.print_json(json.dumps(done))


@contextmanager
def _progress(disable: bool) -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    more = (TransferSpeedColumn(), TimeRemainingColumn())
    progress = Progress(*columns, *more, console=err, disable=disable or not err.is_terminal)
    with progress:
        yield progress


def _bar(progress: Progress, label: str, file: str) -> type:
    """A tqdm stand-in for ``hf_hub_download`` that drives one rich task for ``file``."""

    class Bar:
        def __init__(self, *_: Any, total: float | None = None, initial: float = 0, **__: Any):
            desc = escape(f"{label}: {file}")
            self.task = progress.add_task(desc, total=total, completed=int(initial))

        def update(self, n: float = 1) -> None:
            progress.advance(self.task, n)

        def close(self) -> None:
            pass

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *_: object) -> None:
            self.close()

    return Bar


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def show_priors(rows: list[dict[str, Any]], as_json: bool) -> None:
    """A table on stdout (or the rows as JSON)."""
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "source", "revision", "rate", "segment", "classes", "size", "present"):
        table.add_column(col, overflow="fold", no_wrap=col != "classes", min_width=len(col))
    for r in rows:
        rate, seg = r["sample_rate"], r["segment"]
        table.add_row(
            escape(r["repo_id"] if r["source"] == "cache" else r["name"]),
            r["source"],
            (r["revision"] or "")[:7] or ("unpublished" if r["repo_id"] else "-"),
            f"{rate / 1000:g} kHz" if rate else "-",
            f"{seg / rate:g} s" if rate and seg else "-",
            escape(", ".join(r["classes"])) or "-",
            _size(r["size"]),
            "yes" if r["present"] else "no",
        )
    out.print(table)


def run_push(folder: Path, repo_id: str, private: bool, verbose: int) -> None:
    """Validate, upload, and print the commit to pin."""
    from huggingface_hub.utils import logging as hf_logging

    from ..hub.api import push_prior

    if not verbose:
        hf_logging.set_verbosity_error()
    commit, wrote_card = push_prior(folder, repo_id, private=private)
    if wrote_card:
        err.print(f"wrote a model card {escape(str(folder / 'README.md'))}: review it")
    out.print(f"pushed {escape(str(folder))} to {repo_id}: commit {commit}")
    err.print(
        f"pin it: `diffsep pull-priors {repo_id}@{commit}`, or in the registry "
        f"(python scripts/update_registry.py --pin NAME={commit})"
    )


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
        from ..hub.convert import import_prior

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
