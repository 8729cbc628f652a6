import threading
import time

import pytest
import torch

from diffsep_cli.core.diffusion import respace
from diffsep_cli.core.parallel import release_workers, side_by_side
from diffsep_cli.core.separation import joint_denoiser

from .conftest import tiny_prior


def _probe(value: int, seen: list[tuple[int, int, bool, bool]]) -> int:
    seen.append(
        (
            threading.get_ident(),
            torch.get_num_threads(),
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
        )
    )
    return value


def test_side_by_side_runs_on_workers_with_a_share_of_the_threads(two_threads) -> None:
    seen: list[tuple[int, int, bool, bool]] = []
    with torch.inference_mode():
        out = side_by_side([lambda v=v: _probe(v, seen) for v in range(5)])
    assert out == [0, 1, 2, 3, 4]  # in order
    here = threading.get_ident()
    # two rounds of two on the workers, one thread each, the caller's modes ...
    assert here not in {s[0] for s in seen[:4]}
    assert {s[1:] for s in seen[:4]} == {(1, False, True)}
    # ... and the one left over here with both threads
    assert seen[4] == (here, 2, False, True)
    assert torch.get_num_threads() == 2  # restored


def test_side_by_side_runs_here_on_one_thread(one_thread) -> None:
    seen: list[tuple[int, int, bool, bool]] = []
    assert side_by_side([lambda: _probe(2, seen)] * 2) == [2, 2]  # one thread: nothing to share
    assert {s[0] for s in seen} == {threading.get_ident()}


def test_side_by_side_raises_the_callers_error(two_threads) -> None:
    def fail() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        side_by_side([lambda: 1, fail])
    assert torch.get_num_threads() == 2


def test_side_by_side_returns_from_an_error_only_once_the_round_ended(two_threads) -> None:
    """An error (or Ctrl-C) while a round runs must not leave a worker running on behind the
    caller's back: the caller then resets the thread count, cleans up or exits."""
    done = threading.Event()

    def fail() -> int:
        raise KeyboardInterrupt

    def slow() -> int:
        time.sleep(0.5)
        done.set()
        return 1

    with pytest.raises(KeyboardInterrupt):
        side_by_side([fail, slow])
    assert done.is_set()
    assert torch.get_num_threads() == 2


def test_release_workers_ends_the_worker_threads(two_threads) -> None:
    """Nothing of side_by_side is left for interpreter exit to join; work can start again."""

    def workers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("diffsep-side-by-side")]

    assert side_by_side([lambda: 1, lambda: 2]) == [1, 2]
    assert workers()
    release_workers()
    assert not workers()
    assert side_by_side([lambda: 3, lambda: 4]) == [3, 4]
    release_workers()


def test_joint_denoiser_runs_sources_side_by_side(two_threads, monkeypatch) -> None:
    """Forward-only steps on CPU run one call per source on worker threads (two of one prior
    and one of another: a round of two, then one here), with the outputs of one-by-one calls;
    a step that records a graph (guidance) batches by prior on the caller's thread."""
    a, b = tiny_prior(0), tiny_prior(1)
    sched = respace(a.schedule, 5)
    x = 0.2 * torch.randn(2, 3, 1500)
    threads: list[int] = []
    for prior in (a, b):
        orig = prior.denoise
        monkeypatch.setattr(
            prior,
            "denoise",
            lambda *args, o=orig: threads.append(threading.get_ident()) or o(*args),
        )
    denoise = joint_denoiser([a, b, a], [None, None, None], sched)
    out = denoise(x, 3)
    here = threading.get_ident()
    assert len(threads) == 3 and here not in threads[:2] and threads[2] == here
    t = int(sched.timesteps[3])
    torch.set_num_threads(1)
    assert torch.equal(out[:, 0], a.denoise(x[:, 0], t))  # one thread each, as side by side
    assert torch.equal(out[:, 1], b.denoise(x[:, 1], t))
    torch.set_num_threads(2)
    assert torch.equal(out[:, 2], a.denoise(x[:, 2], t))  # the one left over: both threads
    threads.clear()
    guided = denoise(x.clone().requires_grad_(True), 3)
    assert threads == [here] * 2  # one call per distinct prior
    assert torch.allclose(guided, out, atol=1e-5)
