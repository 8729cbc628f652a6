import threading
from collections.abc import Iterator

import pytest
import torch

from diffsep_cli.core.diffusion import respace
from diffsep_cli.core.parallel import side_by_side
from diffsep_cli.core.separation import joint_denoiser

from .conftest import tiny_prior


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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
        out = side_by_side([lambda v=v: _probe(v, seen) for v in range(3)])
    assert out == [0, 1, 2]  # in order
    assert threading.get_ident() not in {s[0] for s in seen}  # not on the caller's thread
    assert {s[1:] for s in seen} == {(1, False, True)}  # one thread each, caller's modes
    assert torch.get_num_threads() == 2  # restored


def test_side_by_side_runs_here_when_not_concurrent(two_threads) -> None:
    seen: list[tuple[int, int, bool, bool]] = []
    assert side_by_side([lambda: _probe(1, seen)] * 2, concurrent=False) == [1, 1]
    torch.set_num_threads(1)
    assert side_by_side([lambda: _probe(2, seen)] * 2) == [2, 2]  # one thread: nothing to share
    assert {s[0] for s in seen} == {threading.get_ident()}


def test_side_by_side_raises_the_callers_error(two_threads) -> None:
    def fail() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        side_by_side([lambda: 1, fail])
    assert torch.get_num_threads() == 2


def test_joint_denoiser_runs_distinct_priors_side_by_side(two_threads, monkeypatch) -> None:
    """Forward-only steps of priors with equal work run on worker threads, with the outputs of
    one-by-one calls; unequal work (two sources of one prior and one of another) or a step that
    records a graph (guidance) runs on the caller's thread."""
    a, b = tiny_prior(0), tiny_prior(1)
    sched = respace(a.schedule, 5)
    x = 0.2 * torch.randn(2, 2, 1500)
    threads: list[int] = []
    for prior in (a, b):
        orig = prior.denoise
        monkeypatch.setattr(
            prior,
            "denoise",
            lambda *args, o=orig: threads.append(threading.get_ident()) or o(*args),
        )
    denoise = joint_denoiser([a, b], [None, None], sched)
    out = denoise(x, 3)
    assert len(threads) == 2 and threading.get_ident() not in threads
    torch.set_num_threads(1)
    t = int(sched.timesteps[3])
    assert torch.equal(out[:, 0], a.denoise(x[:, 0], t))  # one thread each, as side by side
    assert torch.equal(out[:, 1], b.denoise(x[:, 1], t))
    torch.set_num_threads(2)
    threads.clear()
    denoise(x.clone().requires_grad_(True), 3)
    joint_denoiser([a, b, a], [None, None, None], sched)(torch.cat([x, x[:, :1]], dim=1), 3)
    assert threads == [threading.get_ident()] * 4
