"""How the host's C allocator (glibc malloc) serves torch's CPU tensors (no tensors here).

glibc hands every block above its mmap threshold (at most 32 MiB) to ``mmap`` and gives it back
with ``munmap`` when freed, so each large activation of every network call is fresh memory the
kernel must fault in and zero, page by page: at the paper's size a 4 s forward ran 5.3 s that
way and 3.9-4.1 s with freed blocks kept for reuse; the guided step (forward + backward to the
input) 14.7 s against 9.4 s; the lite prior's guided step 0.15 s against 0.10 s (2 idle cores,
torch 2.13, ``benchmarks/bench_core.py --malloc system|reuse``). jemalloc or tcmalloc under
``LD_PRELOAD`` do the same; this is the no-install way. Peak memory is unchanged; freed memory
stays with the process until it exits instead of going back to the system.

glibc also gives every new thread its own arena, which keeps what the thread freed: memory then
grew with the input's length under :func:`.parallel.side_by_side` (+100 MB from 1 to 10
minutes of audio), so its worker threads share the existing arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8  # mallopt parameters
# Environment variables by which a user already chose how malloc behaves.
_USER_CHOICE = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 (absent outside glibc: musl, macOS)
    except (OSError, AttributeError):
        return None
    return libc


def _mallopt(param: int, value: int) -> bool:
    libc = _libc()
    return libc is not None and libc.mallopt(param, value) == 1


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks of every size for reuse: no ``mmap`` per block, no trimming
    of the heap's top, which grows 256 MiB at a time. Returns whether it is in effect; does
    nothing (False) without glibc, when ``MALLOC_*`` variables already set the policy, or when
    another allocator is preloaded (``LD_PRELOAD``). Once per process; call before the work."""
    preloaded = any(a in os.environ.get("LD_PRELOAD", "") for a in ("jemalloc", "tcmalloc"))
    if preloaded or any(v in os.environ for v in _USER_CHOICE):
        return False
    return (
        _mallopt(_M_MMAP_MAX, 0)
        and _mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        and _mallopt(_M_TOP_PAD, 256 << 20)
    )


def share_malloc_arenas() -> None:
    """Make threads created from now on share glibc's arenas (no-op without glibc)."""
    _mallopt(_M_ARENA_MAX, 1)
