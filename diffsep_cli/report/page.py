"""Rendering a report page from its Jinja2 template (autoescaped) and writing it atomically."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.files import atomic_file


def _number(value: Any, digits: int = 2, sign: bool = False) -> str:
    """A figure for a table cell; a dash for missing or non-finite values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:{'+' if sign else ''}.{digits}f}"


def render(template: str, **context: Any) -> str:
    """The page ``templates/<template>`` with every value HTML-escaped."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader(__package__, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return env.get_template(template).render(version=__version__, generated=stamp, **context)


def write_page(page: Path, html: str, overwrite: bool) -> Path:
    """Write the page in one rename: it appears complete or not at all."""
    with atomic_file(page, overwrite=overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return page
