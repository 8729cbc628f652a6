"""The ``diffsep`` Typer app: the root callback, every command registered, the entry point."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from .. import __version__
from ..core.host import reuse_freed_memory
from ..errors import EXIT_INTERRUPTED
from . import bench, classify, hub, separate, train
from .console import err, out

app = typer.Typer(
    name="diffsep",
    help="Unsupervised single-channel audio separation with diffusion source priors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
COMMANDS: dict[str, Callable[..., None]] = {
    "separate": separate.separate_cmd,
    "pull-priors": hub.pull_priors_cmd,
    "priors": hub.priors_cmd,
    "push-priors": hub.push_priors_cmd,
    "import-checkpoint": hub.import_checkpoint_cmd,
    "train": train.train_cmd,
    "train-classifier": classify.train_classifier_cmd,
    "bench": bench.bench_cmd,
    "make-mixtures": bench.make_mixtures_cmd,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


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
    reuse_freed_memory()  # every command runs networks: large CPU tensors come and go


def main() -> None:
    """Console entry point; a torchrun rank ends through :func:`end_process`."""
    from ..core.devices import end_process
    from ..core.parallel import release_workers

    try:
        try:
            app()
        finally:
            release_workers()
    except KeyboardInterrupt:  # raised outside a command body
        err.print("error: interrupted")
        end_process(EXIT_INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        code = exc.code
        end_process(code if isinstance(code, int) else 0 if code is None else 1)
        raise
