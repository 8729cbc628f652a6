"""Which torch device a command runs on: the ``-d`` option, checked, and one per DDP rank."""

from __future__ import annotations

import os

import torch

from ..errors import DiffsepError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if present, else cpu (MPS only when asked for); errors if unavailable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DiffsepError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and (
        not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()
    ):
        raise DiffsepError(f"device {name} is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DiffsepError("device mps is not available here")
    return device


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, a CUDA device without an index becomes this rank's GPU (LOCAL_RANK)."""
    if device.type != "cuda" or device.index is not None or "LOCAL_RANK" not in os.environ:
        return device
    return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
