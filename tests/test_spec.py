import pytest
import torch

from diffsep_cli.core.spec import from_channels, istft, pad_to_frames, stft, to_channels


@pytest.mark.parametrize("n_fft,hop", [(510, 255), (62, 31), (256, 64)])
def test_stft_round_trip(n_fft: int, hop: int) -> None:
    x = torch.randn(3, 2, 5000)
    spec = stft(x, n_fft, hop)
    assert spec.shape == (3, 2, n_fft // 2 + 1, 5000 // hop + 1)
    assert torch.allclose(istft(spec, n_fft, hop, 5000), x, atol=1e-5)


def test_channels_round_trip() -> None:
    spec = stft(torch.randn(2, 1000), 62, 31)
    chans = to_channels(spec)
    assert chans.shape == (2, 2, 32, 1000 // 31 + 1)
    assert torch.equal(from_channels(chans), spec)


@pytest.mark.parametrize("length", [64000, 64255, 1, 254, 255, 1000])
def test_pad_to_frames(length: int) -> None:
    x = torch.randn(1, length)
    y = pad_to_frames(x, 255, 4)
    assert (y.shape[-1] // 255 + 1) % 4 == 0
    assert 0 <= y.shape[-1] - length < 4 * 255
    assert torch.equal(y[:, :length], x)
