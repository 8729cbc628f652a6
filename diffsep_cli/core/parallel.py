"""Independent network calls side by side on the CPU's cores (tensors only).

Small networks use two cores poorly within one call (their operators are short, so much of a
step is per-operator overhead), but well as two one-thread calls at once: two lite priors on a
batch of four 2 s segments take 0.38 s side by side against 0.45 s one after the other with two
threads each (2 idle cores, torch 2.13). Torch operators release the GIL, so plain threads do.

Before the first workers start, new threads are made to share glibc's existing malloc arena
(:func:`.host.share_malloc_arenas`): with an arena per worker, memory grew with the input's
length; no speed was lost (RTF 1.33-1.49 against 1.38-1.49, alternating runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import TypeVar

import torch

from .host import share_malloc_arenas

T = TypeVar("T")
AUTOCAST = ("cpu", "cuda")  # autocast states carried into the worker threads


_POOLS: dict[int, ThreadPoolExecutor] = {}  # by worker count, kept for the process's work


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        share_malloc_arenas()
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="diffsep-side-by-side")
    return _POOLS[workers]


def release_workers() -> None:
    """End the worker threads (call when the work ends; the next side_by_side starts new
    ones). Interpreter exit joins such threads: a CLI run interrupted by Ctrl-C once hung
    there with a worker never released (issue 17's CI, session 24)."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True, cancel_futures=True)


def side_by_side(calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of ``calls``, in order.

    With at least two of torch's intra-op threads, the calls run in rounds of as many as there
    are threads, at once in worker threads, each on an equal share of the threads, under the
    caller's grad and inference modes and CPU / CUDA autocast (all thread-local); the calls
    left over (fewer than a round) then run here one after another with all threads, and
    torch's thread count is restored. The calls must be independent and record no autograd
    graph (backward passes would run on one thread each). On one thread they all run here,
    one after another. An exception here (Ctrl-C) returns only once the round's calls ended.
    """
    threads = torch.get_num_threads()
    workers = min(len(calls), threads)
    if workers < 2:
        return [call() for call in calls]
    rounds = len(calls) // workers * workers
    share = threads // workers
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    amp = [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in AUTOCAST]

    def run(call: Callable[[], T]) -> T:
        torch.set_num_threads(share)
        with ExitStack() as stack:
            stack.enter_context(torch.inference_mode(inference))
            stack.enter_context(torch.set_grad_enabled(grad))
            for device, enabled, dtype in amp:
                stack.enter_context(torch.autocast(device, dtype=dtype, enabled=enabled))
            return call()

    futures = [_pool(workers).submit(run, call) for call in calls[:rounds]]
    try:
        results = [future.result() for future in futures]
    finally:  # also on Ctrl-C here: no worker may still run when the caller goes on or exits
        wait(futures)
        torch.set_num_threads(threads)
    return results + [call() for call in calls[rounds:]]
