"""Model cards (README.md: Hub metadata plus a Markdown body) for prior folders and Hub repos."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources

from ..config import PEAK_LIMIT, PriorConfig

TAGS = ("audio", "source-separation", "diffusion", "diffsep")
TEMPLATE = "templates/model_card.md.j2"


def card_properties(config: PriorConfig) -> dict[str, str]:
    """The property table: rate, segment, level, classes, network and diffusion."""
    net, diff = config.net, config.diffusion
    classes = ", ".join(config.labels) if config.labels else f"{net.num_classes} unnamed"
    null = "trained (label dropout)" if config.null_label else "untrained"
    return {
        "sample rate": f"{config.sample_rate} Hz",
        "segment": f"{config.segment} samples ({config.segment / config.sample_rate:g} s)",
        "source level": f"{config.level_dbfs:g} dBFS RMS, peaks <= {PEAK_LIMIT:g}",
        "classes": f"{classes} (null class: {null})",
        "network": f"hidden {net.hidden}, emb {net.emb}, heads {net.heads}, "
        f"depths {'-'.join(map(str, net.depths))}, STFT {net.n_fft}/{net.hop}",
        "diffusion": f"DDPM, T = {diff.steps}, linear beta "
        f"{diff.beta_start:g}..{diff.beta_end:g}, eps-prediction",
    }


def model_card(
    config: PriorConfig,
    *,
    summary: str,
    license: str = "other",
    datasets: Sequence[str] = (),
    data: str = "",
    training: Mapping[str, object] | None = None,
    quality: Mapping[str, object] | None = None,
) -> str:
    """A model card stating rate, segment, classes, data and licences, training and quality."""
    from huggingface_hub import ModelCard, ModelCardData

    meta = ModelCardData(
        license=license,
        library_name="diffsep",
        tags=list(TAGS),
        pipeline_tag="audio-to-audio",
        datasets=list(datasets) or None,
    )
    tables = {"Training": training, "Measured quality": quality}
    card = ModelCard.from_template(
        meta,
        template_str=resources.files(__package__).joinpath(TEMPLATE).read_text(),
        title=config.name or "diffsep prior",
        summary=summary.strip(),
        source=config.name or "PATH",
        properties=card_properties(config),
        tables={k: dict(v) for k, v in tables.items() if v},
        data=data.strip(),
    )
    return str(card.content).rstrip("\n") + "\n"
