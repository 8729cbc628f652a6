"""Typed, frozen configurations, saved as ``config.json`` beside ``model.safetensors``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the TF triple-path attention U-Net (defaults: the paper's network)."""

    hidden: int = 72  # channels C of level 1; levels 2 and 3 have 2C and 4C
    emb: int = 128  # width of the time/class embeddings
    heads: int = 4
    depths: tuple[int, int, int, int, int] = (2, 4, 8, 4, 2)  # enc1, enc2, latent, dec2, dec1
    num_classes: int = 1  # class rows; the table has one more (the null class)
    n_fft: int = 510
    hop: int = 255
    latent_fold: int = 4  # adjacent latent bins folded into one full-band token
    latent_sup: int = 16  # channels per folded bin in the full-band time attention
    freq_dim: int = 256  # sinusoidal timestep features

    def __post_init__(self) -> None:
        if len(self.depths) != 5:
            raise ValueError("depths needs 5 entries (enc1, enc2, latent, dec2, dec1)")
        if self.hidden % 2 or (self.hidden * 4) % self.heads or self.hidden % self.heads:
            raise ValueError("hidden must be even and divisible by heads")
        if self.bins % (4 * self.latent_fold):
            raise ValueError(f"n_fft//2+1 = {self.bins} must be divisible by 4*latent_fold")
        if ((self.bins // 4 // self.latent_fold) * self.latent_sup) % self.heads:
            raise ValueError("the full-band token width must be divisible by heads")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclass(frozen=True)
class DiffusionConfig:
    """Discrete DDPM with a linear beta schedule (Ho et al. 2020); network sees t*1000/T."""

    steps: int = 200
    beta_start: float = 1e-4
    beta_end: float = 0.02
    timestep_scale: float = 1000.0  # the network receives floor(t * timestep_scale / steps)


class JsonConfig:
    """A dataclass config saved as ``config.json``: ``to_dict`` / ``save`` / ``load`` over the
    subclass's ``from_dict``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class PriorConfig(JsonConfig):
    """Everything needed to rebuild a prior from its weights."""

    net: NetConfig = field(default_factory=NetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sample_rate: int = 16000
    segment: int = 64000  # training crop length in samples
    labels: tuple[str, ...] = ()  # class names, index = class id (empty: unnamed classes)
    null_label: bool = False  # True when the null class row was trained (label dropout)
    level_dbfs: float = -22.5  # RMS level of one source the prior was trained at
    name: str = ""

    def __post_init__(self) -> None:
        if self.labels and len(self.labels) != self.net.num_classes:
            raise ValueError(f"{len(self.labels)} label names for {self.net.num_classes} classes")

    @property
    def default_label(self) -> int:
        """Class used when a source names none: the null class if trained, else class 0."""
        return self.net.num_classes if self.null_label else 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriorConfig:
        net = dict(d.get("net", {}))
        if "depths" in net:
            net["depths"] = tuple(net["depths"])
        known_net = {f.name for f in dataclasses.fields(NetConfig)}
        known_diff = {f.name for f in dataclasses.fields(DiffusionConfig)}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = (set(net) - known_net) | (set(d.get("diffusion", {})) - known_diff)
        unknown |= set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        rest = {k: v for k, v in d.items() if k not in ("net", "diffusion")}
        if "labels" in rest:
            rest["labels"] = tuple(rest["labels"])
        return cls(
            net=NetConfig(**net), diffusion=DiffusionConfig(**d.get("diffusion", {})), **rest
        )


@dataclass(frozen=True)
class ClassifierConfig(JsonConfig):
    """A noise-conditional source classifier (``core.classifier``): which of ``labels`` (the
    names of the priors it tells apart) a noisy waveform x_t at DDPM step t holds. Its
    gradient steers separation towards sources each prior's class owns (class guidance)."""

    labels: tuple[str, ...] = ("speech", "sfx")
    channels: tuple[int, ...] = (32, 64, 96, 128)  # 3x3 conv stages on the log-mel image
    emb: int = 64  # timestep embedding width (FiLM of every stage)
    n_fft: int = 512
    hop: int = 256
    mels: int = 64
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sample_rate: int = 16000
    segment: int = 32000  # training crop length in samples

    def __post_init__(self) -> None:
        if len(set(self.labels)) < 2 or not self.channels:
            raise ValueError("a classifier needs two or more distinct labels and one stage")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        rest: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        rest["diffusion"] = DiffusionConfig(**d.get("diffusion", {}))
        return cls(**rest)


# Highest peak of a training crop and of a level-calibrated mixture segment: louder ones are
# turned down to it rather than clipped (the Tweedie estimate is clamped to [-1, 1]).
PEAK_LIMIT = 0.95
# training crops: levelled as a whole; levelled on the clip's own span in them; or one
# non-silent span of a clip in silence, levelled on it (sound events as io.mixtures builds them)
CROP_STYLES = ("crop", "clip", "event")
SOLVERS = ("hybrid", "dsg", "dps", "dirac", "projection")
FORWARD_ONLY = ("dirac", "projection")  # solvers that take no gradient through the networks
CLASS_MIN_STEP_ODE = 40  # class guidance's lowest DDPM step at eta 0 (GuidanceConfig)
# Which of the T steps a run of fewer steps keeps: even in t, or even in log-SNR (core.diffusion)
SPACINGS = ("linear", "snr")
# noisy-mixture: the official start (every source the same noised mixture); split: y / K
# each plus zero-sum noise at the first step's level; noise: N(0, I); mixture: y each;
# auto: noisy-mixture for the guided solvers, split for the forward-only ones
INITS = ("auto", "noisy-mixture", "split", "noise", "mixture")
# How separated sources are made to sum to the mixture: "mask" splits the mixture with soft
# masks |S_k| / sum_j |S_j| of the estimates (their residual shared by time-frequency bin),
# "equal" adds an equal share of the residual to each, "none" leaves the estimates as sampled.
CONSISTENCY = ("mask", "equal", "none")
# arithmetic of the networks in separation: auto = bf16 where the hardware multiplies bf16
# natively (CPUs with AMX or AVX512-BF16, bf16 GPUs), else fp32; see core.devices.autocast
PRECISIONS = ("auto", "fp32", "bf16")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming the choices unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")


@dataclass(frozen=True)
class GuidanceConfig:
    """How the mixture steers sampling: reconstruction guidance (method.md 1.3c-e; defaults
    are the official constants) or a forward-only solver (see ``core.solvers``)."""

    solver: str = "hybrid"  # SOLVERS
    ratio: float = 0.09  # step RMS as a fraction of the posterior std (hybrid, dsg)
    floor: float = 0.002  # smooth floor of the hybrid step RMS
    sharpness: float = 1000.0  # k of the smooth max
    dps_scale: float = 1.5  # un-normalised DPS step size
    segments: int = 512  # number of chunks of the segmental residual norm
    segment_weight: float = 0.05
    stft_weight: float = 0.1
    stft_fft: int = 512
    stft_hop: int = 256
    # DDIM noise of every step: 1 ancestral DDPM (the paper's), 0 the deterministic ODE;
    # None: 1 for the guided solvers, and for forward-only ones 0 unless two sources share a
    # prior (the ODE keeps such sources equal: measured, they collapse to y / K), then 1
    eta: float | None = None
    guided_steps: int = 0  # dirac / projection: the last N steps use the hybrid rule
    pinned: int | None = None  # dirac: the source pinned to y - sum(others); None: rotates
    rho: float = 0.0  # projection: rho_t = rho / sigma_t^2 (0: exact projection onto the sum)
    class_weight: float = 8.0  # class guidance by a source classifier, where one is given
    # class guidance only at DDPM steps >= this (of T; 0: every step). None: 40 where eta is 0
    # (the ODE keeps the assignment made at high noise; speech + sound: 0.89x the time for
    # -0.08 / -0.04 dB devset / split), else 0 (fresh noise every step: speech + 2 sounds at
    # eta 1 lost -0.42 / -0.17 dB when guided from 40 only; issue 17)
    class_min_step: int | None = None

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, SOLVERS)
        knobs = (self.guided_steps, self.rho, self.class_weight, self.class_min_step or 0)
        if not 0 <= (self.eta or 0) <= 1 or min(knobs) < 0:
            raise ValueError("eta must be in [0, 1]; guided steps, rho and class knobs >= 0")

    def for_sources(self, shared_prior: bool) -> GuidanceConfig:
        """This config with ``eta`` and ``class_min_step`` decided (see the fields) for sources
        of which two or more share a prior (``shared_prior``) or not."""
        eta = self.eta
        if eta is None:
            eta = 1.0 if self.solver not in FORWARD_ONLY or shared_prior else 0.0
        lowest = self.class_min_step
        if lowest is None:
            lowest = CLASS_MIN_STEP_ODE if eta == 0 else 0
        return replace(self, eta=eta, class_min_step=lowest)


@dataclass(frozen=True)
class SeparateConfig:
    """How files are separated (the CLI's ``separate`` options)."""

    steps: int = 25  # DDPM steps kept of T (see spacing); 200 is the paper's
    solver: str = "dirac"  # forward only: 2-3x cheaper than hybrid and better (issue 17 notes)
    init: str = "auto"
    seed: int = 0
    segment: float | None = None  # seconds; None: the priors' training segment
    overlap: float = 0.25  # fraction of a segment shared with the next
    batch_size: int = 4  # segments separated together
    consistency: str = "mask"  # how written sources are made to sum to the input (CONSISTENCY)
    per_channel: bool = False  # separate each channel instead of the downmix
    eta: float | None = None  # DDIM noise per step (GuidanceConfig.eta; None: per solver)
    guided_steps: int = 0  # forward-only solvers: the last N steps hybrid-guided
    # which steps of T are kept (SPACINGS): snr at 25 steps matched linear at 50 (issue 17)
    spacing: str = "snr"
    precision: str = "auto"  # PRECISIONS: bf16 where native, 1.4-1.6x faster, same quality
    samples: int = 1  # posterior draws averaged per segment (core.separation.posterior_mean)
    low_memory: bool = False  # guided steps recompute activations in the backward (~1/3 memory)
    classifier: str = "auto"  # class guidance: auto (bundled, by the priors' names), none, a folder
    class_weight: float = 8.0  # its strength (GuidanceConfig.class_weight; 0: off)
    class_min_step: int | None = None  # guided from this DDPM step (GuidanceConfig's; None: auto)

    def __post_init__(self) -> None:
        self.guidance()
        check_choice("spacing", self.spacing, SPACINGS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("init", self.init, INITS)
        check_choice("consistency", self.consistency, CONSISTENCY)
        if not 0 <= self.overlap <= 0.5:
            raise ValueError("overlap must be a fraction in [0, 0.5]")
        if self.steps < 1 or self.batch_size < 1 or self.samples < 1:
            raise ValueError("steps, batch size and samples must be at least 1")

    def guidance(self) -> GuidanceConfig:
        """The solver and its knobs (the official constants for the rest)."""
        return GuidanceConfig(
            solver=self.solver,
            eta=self.eta,
            guided_steps=self.guided_steps,
            class_weight=self.class_weight,
            class_min_step=self.class_min_step,
        )


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of training crops (``train.augment``); the defaults are off."""

    speed: float = 0.0  # speed / pitch factor within [1/(1+s), 1+s] (resampling)
    speed_prob: float = 0.8
    eq_prob: float = 0.0  # a random EQ, tilt and band limit
    eq_bands: int = 3
    eq_db: float = 6.0  # peak gain of each EQ band, +-
    tilt_db: float = 6.0  # spectral tilt over 4 octaves, +-
    band_prob: float = 0.3  # of the EQ'd crops, how many also get band limits
    reverb_prob: float = 0.0
    rt60: tuple[float, float] = (0.1, 0.6)  # seconds
    wet_db: tuple[float, float] = (-20.0, -6.0)  # reverberant tail against the direct path
    voice_prob: float = 0.0  # another voice: formants and pitch moved apart (train.augment.voice)
    formant: float = 0.2  # formant shift ratio within [1/(1+f), 1+f]
    pitch: float = 0.5  # median f0 ratio within [1/(1+p), 1+p]
    pitch_range: float = 0.5  # f0 excursion ratio within [1/(1+r), 1+r]


# what `diffsep train --augment` names: voices and rooms for speech, rooms for sounds
_SPEECH = AugmentConfig(speed=0.15, eq_prob=0.6, reverb_prob=0.3)
AUGMENTS = {
    "none": AugmentConfig(),
    "speech": _SPEECH,
    "voices": replace(_SPEECH, voice_prob=0.8),  # speech, and other speakers
    "sfx": AugmentConfig(speed=0.1, speed_prob=0.5, eq_prob=0.5, reverb_prob=0.2),
}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe (the official repo gives lr 1e-4, batch 12, AMP, EMA)."""

    steps: int = 100_000
    batch: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup: int = 200
    cooldown: int = 0  # the last N steps decay the lr to 0 (1-sqrt; warmup-stable-decay)
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    min_snr: float = 5.0  # Min-SNR-gamma loss weight min(SNR, gamma)/SNR; 0: plain eps-MSE
    # 0: the Min-SNR weights; 1: every noise level's expected weighted loss equal (running
    # means per level, train.balance); between: geometric interpolation
    step_balance: float = 0.0
    label_dropout: float = 0.1  # only for class-conditional priors
    level_low: float = -25.0  # crops are RMS-normalised to U[level_low, level_high] dBFS
    level_high: float = -20.0
    crops: str = "crop"  # CROP_STYLES
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25
    valid_every: int = 500
    valid_items: int = 32
    augment: str = "none"  # AUGMENTS
    balance: float = 0.0  # 0: clips drawn by length; 1: every group folder equally often
    class_balance: float = 0.0  # the same between classes (--labels-from-folders)
    # class-conditional: the loss under a wrong class should exceed the own class's by the
    # factor 1 + class_margin at low noise, less with the signal (train.losses.margin_at); a
    # hinge on the log ratio, weighted margin_weight; 0: off
    class_margin: float = 0.0
    margin_weight: float = 0.02
    # the networks' arithmetic (PRECISIONS): auto is bf16 autocast where native (bf16 GPUs; AMX
    # CPUs: 1.7x faster steps for lite), the optimiser, loss and EMA stay fp32
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_choice("augment", self.augment, tuple(AUGMENTS))
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("crops", self.crops, CROP_STYLES)
        if self.level_low > self.level_high:
            raise ValueError("level_low must not exceed level_high")
        if not (0 <= self.balance <= 1 and 0 <= self.class_balance <= 1):
            raise ValueError("balance and class_balance must be in [0, 1]")
        if not 0 <= self.step_balance <= 1:
            raise ValueError("step_balance must be in [0, 1]")
        if self.class_margin < 0 or self.margin_weight < 0:
            raise ValueError("class_margin and margin_weight must be >= 0")
        if not 0 <= self.cooldown <= self.steps:
            raise ValueError(f"cooldown must be between 0 and steps ({self.steps})")


# CPU-sized member of the family: no attention at full resolution (depth 0 at level 1)
SMALL_NET = NetConfig(
    hidden=16, emb=64, heads=2, depths=(0, 1, 2, 1, 0), n_fft=510, hop=255, latent_sup=8
)
# attention only in the latent level: 2.4x cheaper than small per guided step on CPU
LITE_NET = replace(SMALL_NET, depths=(0, 0, 2, 0, 0))
# GPU-sized member under 20 MB (3.7 M parameters): attention at every level, 4 s crops
BASE_NET = NetConfig(hidden=24, emb=64, heads=4, depths=(1, 2, 4, 2, 1), latent_sup=16)
PRESETS = {
    "paper": PriorConfig(),
    "base": PriorConfig(net=BASE_NET, segment=64000),
    "small": PriorConfig(net=SMALL_NET, segment=32000),
    "lite": PriorConfig(net=LITE_NET, segment=32000),
    "tiny": PriorConfig(
        net=NetConfig(hidden=8, emb=16, heads=2, depths=(0, 1, 1, 1, 0), latent_sup=4),
        segment=16000,
    ),
}
