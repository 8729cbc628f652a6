import pytest
import torch

from diffsep_cli.core.stream import OverlapAdd, Segmenter, segment_count


def _run(x: torch.Tensor, seg: int, ov: int, block: int, fn=lambda s: s[:, None]):  # type: ignore[no-untyped-def]
    segmenter, ola, outs = Segmenter(seg, ov), OverlapAdd(seg, ov), []
    for start in range(0, x.shape[-1], block):
        for s in segmenter.push(x[:, start : start + block]):
            outs.append(ola.push(fn(s)))
    for s in segmenter.finish():
        outs.append(ola.push(fn(s)))
    outs.append(ola.finish())
    return torch.cat(outs, dim=-1), segmenter.count


@pytest.mark.parametrize("length", [1, 99, 100, 101, 175, 250, 1000, 1234])
@pytest.mark.parametrize("block", [7, 100, 5000])
def test_identity_model_passes_through(length: int, block: int) -> None:
    x = torch.randn(2, length)
    y, count = _run(x, 100, 25, block)
    assert count == segment_count(length, 100, 25)
    assert y.shape[-1] >= length
    assert torch.allclose(y[:, 0, :length], x, atol=1e-6)
    assert torch.all(y[:, 0, length:] == 0)


def test_sources_summing_to_segments_sum_to_signal() -> None:
    x = torch.randn(1, 777)

    def split(s: torch.Tensor) -> torch.Tensor:  # random split, exactly consistent per segment
        a = torch.randn_like(s)
        return torch.stack([a, s - a], dim=1)

    y, _ = _run(x, 100, 50, 64, split)
    assert torch.allclose(y.sum(1)[:, :777], x, atol=1e-5)


def test_same_class_sources_keep_identity_across_segments() -> None:
    t = torch.arange(1000).float()
    a, b = torch.sin(0.05 * t), torch.sign(torch.sin(0.013 * t))
    swap = {"n": 0}

    def model(s: torch.Tensor) -> torch.Tensor:  # returns the two true sources, order flipping
        start = swap["n"] * 75
        swap["n"] += 1
        seg = torch.stack([a, b])[:, start : start + 100]
        seg = torch.nn.functional.pad(seg, (0, 100 - seg.shape[-1]))
        return (seg if swap["n"] % 2 else seg.flip(0))[None]

    segmenter, ola, outs = Segmenter(100, 25), OverlapAdd(100, 25, groups=[[0, 1]]), []
    for s in segmenter.push(torch.zeros(1, 1000)):
        outs.append(ola.push(model(s)))
    for s in segmenter.finish():
        outs.append(ola.push(model(s)))
    y = torch.cat([*outs, ola.finish()], dim=-1)[0, :, :1000]
    assert torch.allclose(y[0], a, atol=1e-5) and torch.allclose(y[1], b, atol=1e-5)


def test_overlap_bounds() -> None:
    with pytest.raises(ValueError):
        Segmenter(100, 60)


@pytest.mark.parametrize(("length", "last"), [(30, 50), (60, 60), (200, 50), (210, 60), (250, 100)])
def test_last_segment_is_trimmed_to_the_samples_left(length: int, last: int) -> None:
    sizes: list[int] = []

    def model(s: torch.Tensor) -> torch.Tensor:
        sizes.append(s.shape[-1])
        return s[:, None]

    x = torch.randn(1, length)
    y, count = _run(x, 100, 25, 64, model)
    assert sizes == [100] * (count - 1) + [last]
    assert torch.allclose(y[0, 0, :length], x[0], atol=1e-6)
