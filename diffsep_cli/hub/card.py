"""Model cards (README.md with YAML front matter) for prior folders and Hub repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import PEAK_LIMIT, PriorConfig


def _yaml_list(key: str, values: Sequence[str]) -> list[str]:
    return [f"{key}:"] + [f"- {v}" for v in values] if values else []


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
    net = config.net
    front = [
        "---",
        f"license: {license}",
        "library_name: diffsep",
        *_yaml_list("tags", ["audio", "source-separation", "diffusion", "diffsep"]),
        "pipeline_tag: audio-to-audio",
        *_yaml_list("datasets", list(datasets)),
        "---",
    ]
    classes = ", ".join(config.labels) if config.labels else f"{net.num_classes} unnamed"
    null = "trained (label dropout)" if config.null_label else "untrained"
    body = [
        f"# {config.name or 'diffsep prior'}",
        "",
        summary.strip(),
        "",
        "A diffusion source prior for [diffsep](https://github.com/diffsep/diffsep): use it with",
        f"`diffsep separate mix.wav --sources {config.name or 'PATH'},...`.",
        "",
        "| property | value |",
        "|---|---|",
        f"| sample rate | {config.sample_rate} Hz |",
        f"| segment | {config.segment} samples ({config.segment / config.sample_rate:g} s) |",
        f"| source level | {config.level_dbfs:g} dBFS RMS, peaks <= {PEAK_LIMIT:g} |",
        f"| classes | {classes} (null class: {null}) |",
        f"| network | hidden {net.hidden}, emb {net.emb}, heads {net.heads}, "
        f"depths {'-'.join(map(str, net.depths))}, STFT {net.n_fft}/{net.hop} |",
        f"| diffusion | DDPM, T = {config.diffusion.steps}, linear beta "
        f"{config.diffusion.beta_start:g}..{config.diffusion.beta_end:g}, eps-prediction |",
    ]
    for title, table in (("Training", training), ("Measured quality", quality)):
        if table:
            body += ["", f"## {title}", "", "| | |", "|---|---|"]
            body += [f"| {k} | {v} |" for k, v in table.items()]
    if data:
        body += ["", "## Training data and licences", "", data.strip()]
    return "\n".join(front + body) + "\n"
