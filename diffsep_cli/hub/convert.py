"""Import official unasdiff checkpoints (dict with "model" and "ema") into the prior format."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from ..config import NetConfig, PriorConfig
from ..core.prior import Prior

# FSDKaggle2018 classes of the official sound prior, by index (method.md section 6)
OFFICIAL_SOUND_LABELS = tuple(
    "Hi-hat Saxophone Trumpet Cello Clarinet Snare_drum Laughter Fart Flute Bass_drum Squeak "
    "Double_bass Shatter Fireworks Applause Acoustic_guitar Violin_or_fiddle Tearing Oboe Gong "
    "Knock Writing Cough Bark Tambourine Burping_or_eructation Cowbell Harmonica "
    "Drawer_open_or_close Meow Electric_piano Gunshot_or_gunfire Microwave_oven Keys_jangling "
    "Telephone Computer_keyboard Finger_snapping Chime Bus Scissors Glockenspiel".split()
)


def _count(state: dict[str, Tensor], level: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{level}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def infer_net_config(state: dict[str, Tensor], heads: int = 4, hop: int | None = None) -> NetConfig:
    """Read every size of the network from its tensor shapes (heads are not visible: default 4).

    The STFT size follows from the full-band attention: token = (bins / 4 / fold) * sup.
    The hop is not visible either; the official configs use hop = n_fft // 2.
    """
    hidden = state["conv_1.weight"].shape[0]
    emb, freq_dim = state["t_embedder_1.mlp.0.weight"].shape
    num_classes = state["y_embedder_1.embedding_table.weight"].shape[0] - 1
    levels = ("encoder_level_1", "encoder_level_2", "latent", "decoder_level_2", "decoder_level_1")
    depths = tuple(_count(state, lvl) for lvl in levels)
    n_fft, fold, sup = NetConfig.n_fft, NetConfig.latent_fold, NetConfig.latent_sup
    if "latent.0.fullatt.sup_conv.weight" in state:
        out_ch, in_ch = state["latent.0.fullatt.sup_conv.weight"].shape[:2]
        fold, sup = in_ch // (4 * hidden), out_ch // 2
        token = state["latent.0.fullatt.attn.to_out.weight"].shape[0]
        n_fft = 2 * (token // sup * fold * 4 - 1)
    return NetConfig(
        hidden=hidden,
        emb=emb,
        heads=heads,
        depths=depths,  # type: ignore[arg-type]
        num_classes=num_classes,
        n_fft=n_fft,
        hop=hop if hop is not None else n_fft // 2,
        latent_fold=fold,
        latent_sup=sup,
        freq_dim=freq_dim,
    )


def import_official(
    ckpt: str | Path,
    *,
    heads: int = 4,
    hop: int | None = None,
    labels: tuple[str, ...] = (),
    name: str = "",
    sample_rate: int = 16000,
    segment: int = 64000,
) -> Prior:
    """Build a :class:`Prior` from an official checkpoint's EMA weights (never unpickles code)."""
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or "ema" not in raw:
        raise ValueError(f"{ckpt}: not an official checkpoint (a dict with an 'ema' state_dict)")
    state = {k.removeprefix("module."): v for k, v in raw["ema"].items()}
    net_cfg = infer_net_config(state, heads=heads, hop=hop)
    if labels and len(labels) < net_cfg.num_classes:
        # official sound priors have spare rows (num_class 50, 41 used): name the rest
        spare = range(len(labels), net_cfg.num_classes)
        labels = tuple(labels) + tuple(f"class_{i}" for i in spare)
    config = PriorConfig(
        net=net_cfg, labels=tuple(labels), name=name, sample_rate=sample_rate, segment=segment
    )
    prior = Prior(config)
    prior.net.load_state_dict(state, strict=True)
    return prior.eval().requires_grad_(False)


def import_prior(
    ckpt: str | Path,
    out_dir: str | Path,
    *,
    labels: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
    **kwargs: object,
) -> Path:
    """Import ``ckpt`` and write a prior folder (config, safetensors weights, model card)."""
    from ..io.files import atomic_dir
    from .card import model_card
    from .folder import save_prior

    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"no such checkpoint: {ckpt}")
    names = OFFICIAL_SOUND_LABELS if list(labels) == ["fsd"] else tuple(labels)
    prior = import_official(ckpt, labels=names, **kwargs)  # type: ignore[arg-type]
    card = model_card(
        prior.config,
        summary=f"Imported from the official unasdiff checkpoint `{Path(ckpt).name}` (EMA "
        "weights) with `diffsep import-checkpoint`; see the original release for its data.",
        training={"source": "official unasdiff checkpoint (EMA weights)"},
    )
    with atomic_dir(out_dir, overwrite) as tmp:
        save_prior(prior, tmp, card)
    return Path(out_dir)
