"""``diffsep bench`` and ``make-mixtures`` (registered on the main app)."""

from __future__ import annotations
