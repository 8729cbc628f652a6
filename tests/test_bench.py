"""``diffsep bench``: scoring existing estimates, baselines, the separation itself, CLI output."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep_cli.bench.run import BenchOptions, BenchResult, benchmark
from diffsep_cli.cli.tables import summary_table
from diffsep_cli.config import SeparateConfig
from diffsep_cli.core.baselines import NMFConfig
from diffsep_cli.core.metrics import si_sdr
from diffsep_cli.core.prior import Prior
from diffsep_cli.core.sources import parse_sources, resolve_sources
from diffsep_cli.errors import DiffsepError
from diffsep_cli.hub.folder import load_prior_dir
from diffsep_cli.io.pipeline import separate_file

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a loaded 2-core machine, 2 threads make tiny ops ~40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def at_level(x: np.ndarray, db: float) -> np.ndarray:
    return x * 10 ** (db / 20) / np.sqrt(np.mean(x**2))


def write(folder: Path, name: str, x: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / name, x.astype(np.float32), RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 mixtures of 1 s of the real example clips, with sources.json and two "other systems":
    sepa_* (each reference plus white noise at 20 dB SNR) and swap_* (the references swapped)."""
    root = tmp_path_factory.mktemp("bench")
    speech = sf.read(ROOT / "examples" / "speech.flac", dtype="float64")[0]
    sfx = sf.read(ROOT / "examples" / "sfx.flac", dtype="float64")[0]
    rng = np.random.default_rng(0)
    for i in range(3):
        refs = [at_level(x[i * 8000 : i * 8000 + RATE], -22 - i) for x in (speech, sfx)]
        folder = root / f"m{i}"
        write(folder, "mix.wav", refs[0] + refs[1])
        for k, ref in enumerate(refs):
            noise = rng.standard_normal(RATE)
            write(folder, f"s{k + 1}.wav", ref)
            write(
                folder,
                f"sepa_{k + 1}.wav",
                ref + at_level(noise, 10 * np.log10(np.mean(ref**2)) - 20),
            )
            write(folder, f"swap_{k + 1}.wav", refs[1 - k])
        (folder / "sources.json").write_text(json.dumps({"s1.wav": "speech", "s2.wav": "sfx"}))
    return root


def no_priors(name: str) -> Prior:
    raise AssertionError(f"--estimates must not load priors ({name})")


def run_estimates(dataset: Path, **kw: object) -> BenchResult:
    opts = BenchOptions(estimates={"sepa": "sepa_*.wav", "swap": "swap_*.wav"}, **kw)  # type: ignore[arg-type]
    return benchmark(dataset, opts, SeparateConfig(), CPU, load=no_priors)


def rows_of(result: BenchResult, system: str) -> list[dict]:
    return [r for r in result.rows if r["system"] == system]


def test_estimates_are_scored_without_separating(dataset: Path) -> None:
    result = run_estimates(dataset)
    assert [r["system"] for r in result.rows[:4]] == ["sepa", "swap", "mixture", "oracle-irm"]
    assert len(result.rows) == 12 and {r["task"] for r in result.rows} == {"sfx+speech"}
    for sepa, swap, mix in zip(
        *(rows_of(result, s) for s in ("sepa", "swap", "mixture")), strict=True
    ):
        assert [s["ref"] for s in sepa["sources"]] == ["s1.wav", "s2.wav"]  # sepa_* are not refs
        for s, m in zip(sepa["sources"], mix["sources"], strict=True):
            assert s["si_sdr"] == pytest.approx(20.0, abs=0.3)  # 20 dB of white noise
            assert s["sdr"] == pytest.approx(20.0, abs=0.5)
            assert s["si_sdri"] == pytest.approx(s["si_sdr"] - m["si_sdr"], abs=1e-9)
            assert m["si_sdri"] == pytest.approx(0.0, abs=1e-9) and m["sdri"] == pytest.approx(0.0)
        # speech and sfx are different priors: a swapped output is not forgiven
        assert [s["estimate"] for s in swap["sources"]] == [0, 1] and swap["si_sdr"] < 0
        assert sepa["wall_s"] is None and sepa["rtf"] is None and mix["rtf"] is not None
    by_system = {s["system"]: s for s in result.summary}
    assert by_system["sepa"]["n"] == 3 and by_system["sepa"]["si_sdr"]["mean"] == pytest.approx(
        20, abs=0.3
    )
    assert by_system["oracle-irm"]["si_sdri"]["mean"] > by_system["mixture"]["si_sdri"]["mean"] + 10


def test_permutation_within_one_prior(dataset: Path) -> None:
    result = run_estimates(dataset, sources=["speech", "speech"], baselines=[])
    for row in rows_of(result, "swap"):
        assert row["task"] == "speech+speech"
        assert [s["estimate"] for s in row["sources"]] == [1, 0] and row["si_sdr"] > 60


def test_distinctness_shows_sources_of_one_prior_that_collapsed(dataset: Path) -> None:
    """Two sources of one prior: the mixture baseline (the same signal twice) is 0 apart, the
    noisy references (a talker and a sound, uncorrelated) near 1; different priors: none."""
    result = run_estimates(dataset, sources=["speech", "speech"], baselines=["mixture"])
    for mix, sepa in zip(*(rows_of(result, s) for s in ("mixture", "sepa")), strict=True):
        assert mix["distinct"] == pytest.approx(0.0, abs=1e-6)
        assert 0.7 < sepa["distinct"] < 1.3
    by_system = {s["system"]: s for s in result.summary}
    assert by_system["mixture"]["distinct"]["mean"] == pytest.approx(0.0, abs=1e-6)
    other = run_estimates(dataset, baselines=[])
    assert all(r["distinct"] is None for r in other.rows)
    assert all("distinct" not in s for s in other.summary)
    headers = [[str(c.header) for c in summary_table(r).columns] for r in (result, other)]
    assert "distinct" in headers[0] and "distinct" not in headers[1]  # the terminal table


def test_oracle_irm_on_real_clips_beats_the_mixture(dataset: Path) -> None:
    from diffsep_cli.core.baselines import oracle_irm

    refs = (
        torch.from_numpy(sf.read(dataset / "m0" / "s1.wav")[0]),
        torch.from_numpy(sf.read(dataset / "m0" / "s2.wav")[0]),
    )
    ref = torch.stack(refs).float()
    est = oracle_irm(ref.sum(0), ref)
    assert torch.allclose(est.sum(0), ref.sum(0), atol=1e-4)  # masks sum to one
    assert (si_sdr(est, ref) - si_sdr(ref.sum(0).expand_as(ref), ref)).min() > 8


def tones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Harmonic tones (f0 100-200 Hz) with a slow envelope: the "speech" class."""
    t = np.arange(n) / RATE
    f0 = rng.uniform(100, 200)
    x = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    return x * (1.2 + np.sin(2 * np.pi * rng.uniform(1, 3) * t))


def hiss(rng: np.random.Generator, n: int) -> np.ndarray:
    """Noise high-passed by differencing twice: the "sfx" class."""
    return np.diff(rng.standard_normal(n + 2), n=2)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training folders per class and a 2-mixture evaluation folder of new draws."""
    root = tmp_path_factory.mktemp("syn")
    rng = np.random.default_rng(1)
    for j in range(4):
        write(root / "train" / "speech" / "a", f"t{j}.wav", at_level(tones(rng, RATE), -22))
        write(root / "train" / "sfx" / "b", f"h{j}.wav", at_level(hiss(rng, RATE), -22))
    for i in range(2):
        refs = [at_level(tones(rng, RATE), -22), at_level(hiss(rng, RATE), -22)]
        folder = root / "eval" / f"m{i}"
        write(folder, "mix.wav", refs[0] + refs[1])
        write(folder, "s1.wav", refs[0])
        write(folder, "s2.wav", refs[1])
        (folder / "sources.json").write_text(json.dumps(["speech", "sfx"]))
    return root


def test_every_baseline_runs_and_is_kept(synthetic: Path, tmp_path: Path) -> None:
    opts = BenchOptions(
        estimates={"ref": "s*.wav"},  # the references themselves: a perfect "system"
        refs="s*.wav",
        baselines=["mixture", "oracle-irm", "nmf"],
        nmf_train={"speech": synthetic / "train" / "speech", "sfx": synthetic / "train" / "sfx"},
        nmf=NMFConfig(rank=8, iters=100, seconds=4.0),
        keep=tmp_path / "keep",
    )
    with pytest.raises(DiffsepError, match="no reference files"):  # s*.wav taken by --estimates
        benchmark(synthetic / "eval", opts, SeparateConfig(), CPU, load=no_priors)
    opts.refs, opts.estimates, opts.separate = "s[0-9].wav", {}, False
    result = benchmark(synthetic / "eval", opts, SeparateConfig(), CPU, load=no_priors)
    assert opts.keep is not None
    assert result.meta["nmf"]["rank"] == 8 and result.meta["nmf"]["train_s"] > 0
    mean = {s["system"]: s["si_sdri"]["mean"] for s in result.summary if s["system"] != "diffsep"}
    assert set(mean) == {"mixture", "oracle-irm", "nmf"}
    assert mean["mixture"] == pytest.approx(0.0, abs=1e-9)
    assert mean["oracle-irm"] > 15 and mean["nmf"] > 5  # NMF learned the two classes apart
    for row in result.rows:
        assert row["peak_rss_mb"] > 0 and row["device"] == "cpu"
        assert row["rtf"] is not None and row["rtf"] >= 0
        if row["system"] != "mixture":
            assert (opts.keep / row["system"] / row["mixture"] / "s2.wav").is_file()
    assert next(r for r in result.rows if r["system"] == "nmf")["steps"] == 100


def test_diffsep_system_is_what_separate_writes(
    dataset: Path, models: Path, tmp_path: Path
) -> None:
    def load(name: str) -> Prior:
        return load_prior_dir(models / name)

    cfg = SeparateConfig(steps=1, seed=3)
    opts = BenchOptions(
        sources=["speech", "sfx"], baselines=["mixture"], limit=1, keep=tmp_path / "k"
    )
    result = benchmark(dataset, opts, cfg, CPU, load=load)
    row = rows_of(result, "diffsep")[0]
    assert row["steps"] == 1 and row["device"] == "cpu" and row["wall_s"] > 0
    assert row["rtf"] == pytest.approx(row["wall_s"] / 1.0) and row["peak_rss_mb"] > 0
    assert re.fullmatch(r"speech@[0-9a-f]{12},sfx@[0-9a-f]{12}", row["priors"])
    assert {p["spec"] for p in result.meta["priors"]} == {"speech", "sfx"}
    # the same files `diffsep separate` writes for the same options
    src = resolve_sources(parse_sources("speech,sfx"), load)
    outs = {n: tmp_path / "sep" / f"{n}.wav" for n in src.names}
    separate_file(dataset / "m0" / "mix.wav", outs, src, cfg, fmt="WAV", subtype="FLOAT")
    for name in ("speech", "sfx"):
        kept = sf.read(tmp_path / "k" / "diffsep" / "m0" / f"{name}.wav")[0]
        assert np.array_equal(kept, sf.read(outs[name])[0])
    est = torch.from_numpy(np.stack([sf.read(outs[n])[0] for n in ("speech", "sfx")]))
    ref = torch.from_numpy(np.stack([sf.read(dataset / "m0" / f"s{k}.wav")[0] for k in (1, 2)]))
    assert row["si_sdr"] == pytest.approx(float(si_sdr(est, ref).mean()), abs=1e-6)


def cli(models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIFFSEP_MODELS": str(models), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "diffsep_cli", "bench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_cli_table_csv_and_json(dataset: Path, models: Path, tmp_path: Path) -> None:
    csv_path = str(tmp_path / "rows.csv")
    args = ["-s", "speech,sfx", "--steps", "1", "--limit", "1", "--csv", csv_path]
    proc = cli(models, str(dataset), *args, "--baselines", "mixture,oracle-irm")
    assert proc.returncode == 0, proc.stderr
    for text in ("SI-SDRi", "SDR", "RTF", "diffsep", "oracle-irm", "sfx+speech", "95 %"):
        assert text in proc.stdout, proc.stdout
    with (tmp_path / "rows.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert [r["system"] for r in lines] == ["diffsep", "mixture", "oracle-irm"]
    assert {"si_sdr", "si_sdr.s1", "sdr.s2", "rtf", "peak_rss_mb", "priors"} <= set(lines[0])
    json_args = ["--estimates", "sepa_*.wav", "--json", "--baselines", "none", "--threads", "1"]
    proc = cli(models, str(dataset), *json_args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [s["system"] for s in doc["summary"]] == ["sepa"] and len(doc["rows"]) == 3
    ci = doc["summary"][0]["si_sdr"]
    assert ci["lo"] < ci["mean"] < ci["hi"] and ci["n"] == 3
    assert doc["meta"]["ci"].startswith("95 % Student-t") and doc["meta"]["threads"] == 1


def test_user_mistakes_are_one_line_errors(dataset: Path, models: Path, tmp_path: Path) -> None:
    def fails(folder: Path, match: str, **kw: object) -> None:
        with pytest.raises(DiffsepError, match=match):
            benchmark(folder, BenchOptions(**kw), SeparateConfig(), CPU, load=no_priors)  # type: ignore[arg-type]

    fails(tmp_path / "nope", "no such folder")
    fails(tmp_path, "no mixtures")
    fails(dataset, "no reference files", refs="x*.wav")
    fails(dataset, "3 sources for 2 references", sources=["speech", "sfx", "sfx"])
    fails(dataset, "1 other estimates", estimates={"other": "sepa_1.wav"})
    nmf_train = {"speech": tmp_path}
    fails(dataset, "no --nmf-train folder for source 'sfx'", baselines=["nmf"], nmf_train=nmf_train)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x").write_text("")
    fails(dataset, "not empty", keep=tmp_path / "keep", estimates={"sepa": "sepa_*.wav"})
    bare = tmp_path / "bare" / "m0"
    bare.mkdir(parents=True)
    for name in ("mix.wav", "s1.wav", "s2.wav"):
        (bare / name).write_bytes((dataset / "m0" / name).read_bytes())
    fails(bare.parent, "no sources.json")
    for args, text in (
        ([str(dataset), "--baselines", "nmf", "-s", "speech,sfx"], "needs --nmf-train"),
        ([str(dataset), "--baselines", "irm"], "unknown baseline 'irm'"),
        ([str(tmp_path / "nope")], "no such folder"),
    ):
        proc = cli(models, *args)
        assert proc.returncode == 1 and text in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
