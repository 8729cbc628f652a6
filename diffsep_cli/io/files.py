"""Atomic writes: outputs appear complete or not at all, and nothing is overwritten by mistake.

Work in progress lives beside its target as a hidden ``.NAME.XXXXXXXX.partial[.ext]`` file or
folder (left behind only by a killed process; never read as an input or an output, safe to
delete). Results get the permissions any new file would (the umask), and without
``overwrite`` they are linked into place, so a concurrent writer can never be clobbered.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DiffsepError

PARTIAL = ".partial"  # marker in the names of work in progress


def is_partial(path: Path) -> bool:
    """A leftover of an interrupted write (hidden, with the ``.partial`` marker)."""
    return path.name.startswith(".") and PARTIAL in path.name


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise DiffsepError(f"{path} exists (use --overwrite to replace it)")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move finished work onto ``out``: replace it (``overwrite``), else link without clobbering
    (a file that appeared meanwhile, e.g. from a concurrent run, is an error)."""
    if overwrite or tmp.is_dir():
        if tmp.is_dir() and out.exists():
            check_writable(out, overwrite)
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise DiffsepError(f"{out} appeared while writing it (use --overwrite)") from None
    except OSError:  # file systems without hard links: check, then rename
        check_writable(out, overwrite)
        os.replace(tmp, out)
    else:
        tmp.unlink()


@contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` in one rename."""
    out = Path(out)
    check_writable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=PARTIAL, dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())
        _publish(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` (same suffix); moved onto ``out`` on success."""
    out = Path(out)
    check_writable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{out.stem}.", suffix=f"{PARTIAL}{out.suffix}", dir=out.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())
        _publish(tmp, out, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
