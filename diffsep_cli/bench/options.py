"""What ``diffsep bench`` is asked to run: systems, baselines, NMF dictionaries, estimates."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core import baselines as bl

SYSTEM = "diffsep"
BASELINES = ("mixture", "oracle-irm", "nmf")


@dataclass
class BenchOptions:
    sources: list[str] | None = None  # one list for every mixture (overrides sources.json)
    refs: str | None = None  # reference glob (None: s[0-9]*.wav, else real_*.wav)
    estimates: dict[str, str] = field(default_factory=dict)  # system name -> glob
    separate: bool = True  # run diffsep (only where no estimates are given)
    baselines: list[str] = field(default_factory=lambda: ["mixture", "oracle-irm"])
    nmf_train: dict[str, Path] = field(default_factory=dict)  # class -> single-source folder
    nmf: bl.NMFConfig = field(default_factory=bl.NMFConfig)
    keep: Path | None = None  # write every system's estimates here
    overwrite: bool = False
    limit: int | None = None
