"""diffsep: unsupervised single-channel audio separation with diffusion source priors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .core.prior import Prior
    from .core.separation import separate_tensor
    from .hub.api import load_prior

__all__ = ["Prior", "__version__", "load_prior", "separate_tensor"]

_LAZY = {"Prior": "core.prior", "separate_tensor": "core.separation", "load_prior": "hub.api"}


def __getattr__(name: str) -> Any:
    """Import torch-heavy parts on first use, so ``diffsep --help`` stays instant."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
