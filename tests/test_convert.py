import numpy as np
import pytest
import torch

from diffsep_cli.config import PriorConfig
from diffsep_cli.hub.convert import import_official, infer_net_config
from diffsep_cli.hub.folder import load_prior_dir, save_prior

from .conftest import FIXTURES, needs_shared, tiny_prior

CKPT = FIXTURES / "official_sound_h8.pt"
IO = FIXTURES / "official_sound_h8_io.npz"


@needs_shared(CKPT)
def test_import_matches_official_outputs(tmp_path) -> None:
    prior = import_official(CKPT)
    cfg = prior.config.net
    assert (cfg.hidden, cfg.emb, cfg.heads, cfg.num_classes, cfg.n_fft, cfg.hop) == (
        8,
        16,
        4,
        50,
        510,
        255,
    )
    io = np.load(IO)
    # the fixture's t is the network timestep (5t): 995, 250 -> DDPM steps 199, 50
    steps = torch.from_numpy(io["t"]) // 5
    with torch.no_grad():
        eps = prior.eps(torch.from_numpy(io["x"]), steps, torch.from_numpy(io["label"]))
    ref = torch.from_numpy(io["eps"])
    assert (eps - ref).norm() / ref.norm() < 1e-4
    # and the saved prior folder reproduces it too
    loaded = load_prior_dir(save_prior(prior, tmp_path / "p"))
    with torch.no_grad():
        again = loaded.eps(torch.from_numpy(io["x"]), steps, torch.from_numpy(io["label"]))
    assert torch.equal(again, eps)


def test_infer_config_round_trip() -> None:
    prior = tiny_prior(num_classes=3)
    state = prior.net.state_dict()
    assert infer_net_config(state, heads=2, hop=31) == prior.config.net


def test_import_rejects_non_checkpoint(tmp_path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an official checkpoint"):
        import_official(path)


def test_import_never_unpickles_code(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"ema": {}, "obj": PriorConfig()}, path)
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported global"):
        import_official(path)


def test_labels_padded_to_class_count(tmp_path) -> None:
    prior = tiny_prior(num_classes=3)
    path = tmp_path / "ck.pt"
    torch.save({"model": prior.net.state_dict(), "ema": prior.net.state_dict()}, path)
    imported = import_official(path, heads=2, hop=31, labels=("Bark", "Gong"))
    assert imported.labels == ("Bark", "Gong", "class_2")
