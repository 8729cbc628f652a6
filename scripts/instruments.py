"""Sampled real instruments: seeded MIDI notes, phrases, chords and drum hits rendered with
FluidSynth from the FluidR3 GM SoundFont (Debian fluid-soundfont-gm, MIT).

Every GM program gets a single note, a phrase and a chord (varied pitch, length and velocity);
the drum channel gets single hits and short patterns on the eight GM kits. Clips are rendered
in batches, each one MIDI file with ``GAP`` seconds of silence between clips, and cut apart again.
Needs the ``fluidsynth`` program (``apt-get install fluidsynth``) and ``mido`` (``pip install
mido``). Deterministic: the plan depends only on ``SEED``.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import soundfile as sf
from debian_sources import Item

SF2, SEED, RATE, GAP, BATCH = "usr/share/sounds/sf2/FluidR3_GM.sf2", 0, 16000, 2.0, 48
TPS = 960  # MIDI ticks per second: 480 per beat at the default 120 bpm
KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # GM drum kits of FluidR3 (bank 128)
# Lowest / highest note per group of 8 GM programs (piano, chromatic percussion, organ, ...).
RANGES = [
    (36, 96),
    (60, 96),
    (36, 84),
    (40, 76),
    (28, 55),
    (40, 84),
    (40, 84),
    (45, 77),
    (45, 84),
    (60, 96),
    (48, 84),
    (40, 76),
    (40, 76),
    (48, 84),
    (48, 84),
    (48, 72),
]
RANGE_OF = {40: (55, 96), 41: (48, 84), 42: (36, 72), 43: (28, 55), 46: (36, 90), 47: (40, 55),
            56: (55, 82), 57: (40, 72), 58: (28, 55), 70: (34, 72), 71: (50, 91)}  # fmt: skip
FAMILY_OF = {47: "drum", 113: "drum", 115: "drum", 116: "drum", 117: "drum", 118: "drum",
             119: "drum", 122: "water", 123: "animal", 124: "household", 125: "vehicle",
             127: "impact"}  # fmt: skip
SKIP = {121, 126}  # breath noise, applause: human sounds
CHORDS = [(0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 5, 7), (0, 4, 7, 12), (0, 7)]
SCALES = [(0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9)]


@dataclass
class Clip:
    """One clip to render: notes as (start s, length s, pitch, velocity) on one channel."""

    name: str
    family: str
    channel: int
    program: int
    notes: list[tuple[float, float, int, int]] = field(default_factory=list)

    @property
    def length(self) -> float:
        return max(t + d for t, d, _, _ in self.notes)


def preset_names(sf2: Path) -> dict[tuple[int, int], str]:
    """(bank, program) -> preset name, from the SoundFont's ``phdr`` chunk."""
    d = sf2.read_bytes()
    i = d.index(b"phdr")
    out = {}
    for k in range(struct.unpack_from("<I", d, i + 4)[0] // 38):
        rec = d[i + 8 + 38 * k : i + 8 + 38 * (k + 1)]
        prog, bank = struct.unpack_from("<HH", rec, 20)
        if rec[:3] != b"EOP":  # the terminal record
            name = rec[:20].split(b"\0")[0].decode("latin-1").lower()
            out[(bank, prog)] = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return out


def melodic(rng: random.Random, prog: int, kind: str) -> list[tuple[float, float, int, int]]:
    """A single note, a phrase (scale walk) or a chord (maybe strummed) for ``prog``."""
    lo, hi = RANGE_OF.get(prog, RANGES[prog // 8])
    vel = rng.randint(35, 127)
    if kind == "note":
        return [(0.0, rng.uniform(0.3, 2.5), rng.randint(lo, hi), vel)]
    if kind == "chord":
        root, dur, strum = rng.randint(lo, max(lo, hi - 12)), rng.uniform(0.6, 3.0), 0.0
        spread = rng.choice([0.0, 0.0, 0.02, 0.04])
        notes = []
        for iv in rng.choice(CHORDS):
            v = max(1, vel - rng.randint(0, 15))
            notes.append((strum, dur - strum, min(root + iv, 127), v))
            strum += spread
        return notes
    scale, step, t, notes = rng.choice(SCALES), rng.choice([0.12, 0.18, 0.25, 0.35]), 0.0, []
    deg = rng.randint(0, 6)
    base = rng.randint(lo, max(lo, hi - 14))
    for _ in range(rng.randint(3, 9)):
        pitch = base + 12 * (deg // len(scale)) + scale[deg % len(scale)]
        dur = step * rng.choice([1, 1, 2]) * rng.uniform(0.5, 1.0)
        notes.append((t, dur, min(pitch, hi), min(127, max(1, vel + rng.randint(-20, 20)))))
        t += step * rng.choice([1, 1, 2])
        deg = max(0, deg + rng.choice([-2, -1, -1, 1, 1, 2, 3]))
    return notes


def drums(rng: random.Random, kind: str) -> list[tuple[float, float, int, int]]:
    """One drum hit, or a 1-3 s groove (kick, snare, hats and a random extra) on the GM map."""
    if kind == "hit":
        return [(0.0, 0.5, rng.randint(35, 81), rng.randint(40, 127))]
    beat, bars = 60 / rng.uniform(80, 170), rng.choice([1, 1, 2])
    sub = rng.choice([2, 4])
    extra = rng.choice([39, 45, 48, 50, 54, 56, 60, 61, 63, 64, 69, 70, 75, 76])
    notes = []
    for s in range(4 * bars * sub):
        t, pos = s * beat / sub, s % (4 * sub)
        hits = [(42, 70)] if rng.random() < 0.9 else [(46, 80)]
        hits += [(36, 110)] if pos in (0, 2 * sub) or rng.random() < 0.08 else []
        hits += [(38, 105)] if pos in (sub, 3 * sub) else []
        hits += [(extra, 90)] if rng.random() < 0.12 else []
        hits += [(49, 100)] if s == 0 and rng.random() < 0.5 else []
        notes += [(t, 0.1, n, max(1, min(127, v + rng.randint(-25, 15)))) for n, v in hits]
    return notes


def plan(names: dict[tuple[int, int], str], seed: int = SEED) -> list[Clip]:
    """All clips: three per GM program (minus ``SKIP``), 96 on the drum channel."""
    rng, clips = random.Random(seed), []
    for prog in range(128):
        if prog not in SKIP:
            fam = FAMILY_OF.get(prog, "instrument")
            for kind in ("note", "phrase", "chord"):
                name = f"p{prog:03d}_{names.get((0, prog), 'x')}_{kind}"
                clips.append(Clip(name, fam, 0, prog, melodic(rng, prog, kind)))
    for k in range(96):
        kit, kind = KITS[(k // 2) % len(KITS)], "hit" if k % 2 == 0 else "groove"
        name = f"drums_{names.get((128, kit), kit)}_{kind}{k // 16}"
        clips.append(Clip(name, "drum", 9, kit, drums(rng, kind)))
    return clips


def write_midi(clips: list[Clip], path: Path) -> list[float]:
    """One MIDI file holding ``clips`` one after another; returns each clip's start (s)."""
    import mido  # pip install mido

    events, starts, t0 = [], [], 0.5
    for c in clips:
        starts.append(t0)
        events.append((t0 - 0.2, 0, mido.Message("program_change", channel=c.channel,
                                                  program=c.program)))  # fmt: skip
        ch = c.channel
        for t, d, n, v in c.notes:
            events.append((t0 + t, 2, mido.Message("note_on", channel=ch, note=n, velocity=v)))
            events.append((t0 + t + d, 1, mido.Message("note_off", channel=ch, note=n)))
        t0 += c.length + GAP
    events.append((t0, 3, mido.Message("control_change", channel=0, control=123)))  # all off
    track, now = mido.MidiTrack(), 0
    for t, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        tick = round(t * TPS)
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(ticks_per_beat=TPS // 2)
    mid.tracks.append(track)
    mid.save(path)
    return starts


@lru_cache(maxsize=2)
def _read(wav: str) -> np.ndarray:
    x, _ = sf.read(wav, dtype="float32")
    return x.mean(axis=1) if x.ndim == 2 else x


def _cut(wav: Path, start: float, length: float) -> tuple[np.ndarray, int]:
    x = _read(str(wav))
    a = round(start * RATE)
    return x[a : a + round((length + 0.9 * GAP) * RATE)].copy(), RATE


def src_fluid(pkg: str, x: Path) -> Iterator[Item]:
    if shutil.which("fluidsynth") is None:
        raise OSError("fluidsynth is not installed (apt-get install fluidsynth)")
    sf2, out = x / SF2, x / "_render"
    clips = plan(preset_names(sf2))
    out.mkdir(exist_ok=True)
    renders = set()
    for b in range(0, len(clips), BATCH):
        batch, mid = clips[b : b + BATCH], out / f"batch{b // BATCH:02d}.mid"
        starts = write_midi(batch, mid)
        wav = mid.with_suffix(f".{hashlib.sha1(mid.read_bytes()).hexdigest()[:8]}.wav")
        renders.add(wav)
        if not wav.exists():  # rendered once per MIDI content
            tmp = wav.with_suffix(".part")
            cmd = ["fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r",
                   str(RATE), "-o", "audio.file.type=wav", "-o", "audio.file.format=float",
                   "-F", str(tmp), str(sf2), str(mid)]  # fmt: skip
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            tmp.rename(wav)
        for c, t0 in zip(batch, starts, strict=True):
            desc = "; ".join(f"{t:.2f}s+{d:.2f}s n{n} v{v}" for t, d, n, v in c.notes[:4])
            src = f"{SF2} rendered: ch{c.channel + 1} program {c.program}: {desc}"
            load = partial(_cut, wav, t0, c.length)
            yield Item(pkg, "sfx", "fluid-gm", src, c.name, load, family=c.family)
    for old in set(out.glob("*.wav")) - renders:  # renders of an older plan
        old.unlink()
