"""``diffsep pull-priors``, ``priors`` and ``push-priors`` (registered on the main app)."""

from __future__ import annotations
