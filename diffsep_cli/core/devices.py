"""Which torch device a command runs on (the ``-d`` option, checked), and the process group
under torchrun: one device per rank, work shared by rank, results gathered on rank 0."""

from __future__ import annotations

import atexit
import os
import sys
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import torch

from ..config import PRECISIONS, check_choice
from ..errors import DiffsepError

T = TypeVar("T")


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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware: a CUDA GPU with bf16 support, or a CPU
    with AMX tiles (bf16 matmuls measured ~10x fp32's; the lite priors separated at RTF 0.50-0.52
    against 0.79-0.85 in fp32, 2 threads) or AVX512-BF16 (~2.4x; RTF 0.70 against 0.93-1.04).
    Without either, slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private; absent: not
    native = (bool(getattr(torch.cpu, n, lambda: False)()) for n in probes)
    return device.type == "cpu" and any(native)


def precision_used(device: torch.device, precision: str) -> str:
    """What ``precision`` (PRECISIONS) means on ``device``: ``bf16`` or ``fp32`` (``auto`` is
    bf16 where :func:`native_bf16`)."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The context the networks run in at ``precision`` (PRECISIONS): bf16 autocast (matmuls
    and convolutions in bf16, reductions, norms and the STFT in fp32) where
    :func:`precision_used` says bf16; otherwise plain fp32."""
    bf16 = precision_used(device, precision) == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, a CUDA device without an index becomes this rank's GPU (LOCAL_RANK)."""
    if device.type != "cuda" or device.index is not None or "LOCAL_RANK" not in os.environ:
        return device
    return torch.device("cuda", int(os.environ["LOCAL_RANK"]))


def process_group(device: torch.device) -> tuple[int, int]:
    """(rank, world size); under torchrun (WORLD_SIZE > 1) starts the process group once:
    NCCL on CUDA (this rank's GPU made current), gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        # A group left alive at interpreter exit can abort the rank (gloo's worker threads are
        # torn down after Python: "terminate called without an active exception").
        atexit.register(_close_group)
    return dist.get_rank(), world


def _close_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def end_process(code: int) -> None:
    """End a torchrun rank with exit status ``code`` once its command is done; returns at once
    when no process group was started. All ranks meet at a barrier (on success: a failed rank
    is stopped by torchrun instead), tear the group down together, flush their output, and
    leave by ``os._exit``: gloo's threads outliving the interpreter's finalisation abort a
    rank ("terminate called without an active exception", SIGABRT) even after an
    ``atexit`` teardown, and skipping finalisation removes that path. Files are closed by now."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return
    if code == 0:
        dist.barrier()
    dist.destroy_process_group()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def gather_to_first(obj: T, world: int) -> list[T]:
    """Every rank's ``obj`` on rank 0 (in rank order); other ranks get []."""
    if world <= 1:
        return [obj]
    import torch.distributed as dist

    found: list[Any] | None = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(obj, found, dst=0)
    return found or []
