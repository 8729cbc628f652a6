"""``make-mixtures``: deterministic for a seed, per-source levels, overlap, distinct classes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffsep_cli.errors import DiffsepError
from diffsep_cli.io.mixtures import MixRecipe, active_spans, make_mixtures

RATE = 16000
BURSTS = ((0.5, 1.5), (2.5, 2.8))  # seconds of sound in every generated sfx file


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """speech/<speaker>/*.wav (voiced tones, 2-5 s) and sfx/<group>/*.wav (two noise bursts in
    silence, 3.5 s at 8 kHz, so that loading resamples)."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    for k in range(3):
        for j in range(2):
            n = int(rng.uniform(2, 5) * RATE)
            t = np.arange(n) / RATE
            x = 0.3 * np.sin(2 * np.pi * (120 + 40 * k) * t) * (1 + np.sin(2 * np.pi * 3 * t))
            (root / "speech" / f"spk{k}").mkdir(parents=True, exist_ok=True)
            sf.write(root / "speech" / f"spk{k}" / f"u{j}.wav", x, RATE)
            y = np.zeros(int(3.5 * 8000))
            for a, b in BURSTS:
                lo, hi = round(a * 8000), round(b * 8000)
                y[lo:hi] = 0.2 * rng.standard_normal(hi - lo)
            (root / "sfx" / f"group{k}").mkdir(parents=True, exist_ok=True)
            sf.write(root / "sfx" / f"group{k}" / f"e{j}.flac", y, 8000)
    return root


def build(src: Path, out: Path, sources: str = "speech,sfx", n: int = 4, seed: int = 1) -> Path:
    specs = sources.split(",")
    dirs = [src / ("speech" if s == "speech" else "sfx") for s in dict.fromkeys(specs)]
    make_mixtures(dirs, out, specs, n, seed)
    return out


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.*"))}


def test_deterministic_for_a_seed(src: Path, tmp_path: Path) -> None:
    a = contents(build(src, tmp_path / "a", n=3))
    assert a == contents(build(src, tmp_path / "b", n=3))
    # mixture i does not depend on N
    two = contents(build(src, tmp_path / "c", n=2))
    assert two == {k: v for k, v in a.items() if not k.startswith("0002")}
    other = contents(build(src, tmp_path / "d", n=3, seed=2))
    assert other.keys() == a.keys() and other["0000/mix.wav"] != a["0000/mix.wav"]
    with pytest.raises(DiffsepError, match="exists"):
        build(src, tmp_path / "a", n=3)


def test_levels_overlap_and_consistency(src: Path, tmp_path: Path) -> None:
    out = build(src, tmp_path / "set", n=8)
    recipe = MixRecipe()
    for folder in sorted(out.iterdir()):
        meta = json.loads((folder / "meta.json").read_text())
        assert json.loads((folder / "sources.json").read_text()) == {
            "s1.wav": "speech",
            "s2.wav": "sfx",
        }
        mix, rate = sf.read(folder / "mix.wav")
        refs = [sf.read(folder / f"s{k}.wav")[0] for k in (1, 2)]
        assert rate == RATE and len(mix) == 4 * RATE and all(len(r) == len(mix) for r in refs)
        assert np.allclose(mix, refs[0] + refs[1], atol=1e-6) and np.abs(mix).max() <= 0.95 + 1e-6
        spans = []
        for ref, item in zip(refs, meta["sources"], strict=True):
            start, n = round(item["offset_s"] * RATE), round(item["clip_seconds"] * RATE)
            assert start >= 0 and start + n <= len(mix)
            assert not ref[:start].any() and not ref[start + n :].any()  # silent elsewhere
            assert recipe.level_low <= item["level_dbfs"] <= recipe.level_high
            level = 10 * math.log10(np.mean(ref[start : start + n] ** 2))
            assert level == pytest.approx(
                item["level_dbfs"] + 20 * math.log10(meta["gain"]), abs=0.01
            )
            spans.append((start, start + n))
        # the later source starts within the earlier one, so they overlap
        assert spans[1][0] < spans[0][1] and spans[1][1] > spans[0][0]
        speech, sfx = meta["sources"]
        assert speech["class"].startswith("spk") and sfx["class"].startswith("group")
        # sound events keep one non-silent span of their file (a burst, to the window resolution)
        a, b = sfx["clip_start_s"], sfx["clip_start_s"] + sfx["clip_seconds"]
        assert any(lo - 0.06 <= a and b <= hi + 0.06 for lo, hi in BURSTS), (a, b)  # 50 ms windows


def test_distinct_classes_and_speech_only_recipe(src: Path, tmp_path: Path) -> None:
    out = build(src, tmp_path / "sfx2", sources="sfx,sfx", n=6)
    for folder in out.iterdir():
        classes = [s["class"] for s in json.loads((folder / "meta.json").read_text())["sources"]]
        assert len(set(classes)) == 2
    out = build(src, tmp_path / "sp2", sources="speech,speech", n=3)
    for folder in out.iterdir():
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["recipe"] == "speech+speech"
        assert [s["offset_s"] for s in meta["sources"]] == [0.0, 0.0]  # right-padded, as TSP
        assert len({s["class"] for s in meta["sources"]}) == 2  # two different speakers
    with pytest.raises(DiffsepError, match="3 classes"):
        build(src, tmp_path / "x", sources="sfx,sfx,sfx,sfx")
    with pytest.raises(DiffsepError, match="source folders"):
        make_mixtures([src, src, src], tmp_path / "y", ["speech", "sfx"], 1, 0)


def test_active_spans() -> None:
    recipe = MixRecipe()
    x = np.zeros(RATE * 2)
    x[4000:8000] = 0.1  # energy 1e-2: active
    x[20000:24000] = 0.001  # energy 1e-6: silent
    spans = active_spans(x, RATE, recipe)
    assert len(spans) == 1
    (a, b) = spans[0]
    assert 4000 - 800 <= a <= 4000 and 8000 <= b <= 8000 + 800


def test_cli_make_mixtures(src: Path, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "diffsep_cli",
        "make-mixtures",
        str(src / "speech"),
        str(src / "sfx"),
    ]
    args = ["--out", str(tmp_path / "m"), "--sources", "speech,sfx", "-n", "2", "--seed", "3", "-q"]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert contents(tmp_path / "m") == contents(build(src, tmp_path / "lib", n=2, seed=3))
    bad = [*cmd[:-1], str(tmp_path / "nope"), *args]
    proc = subprocess.run(bad, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "no such file or folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
