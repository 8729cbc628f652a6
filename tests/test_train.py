"""Training: data crops, the train loop, resume, Ctrl-C, DDP under torchrun (real processes)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from diffsep_cli.config import PEAK_LIMIT, PRESETS, TrainConfig
from diffsep_cli.core.devices import rank_device
from diffsep_cli.hub.folder import load_prior_dir
from diffsep_cli.io.audio import rms_db
from diffsep_cli.train.data import CropSampler, load_clips
from diffsep_cli.train.trainer import lr_factor, train

ROOT = Path(__file__).resolve().parents[1]


def test_crops_are_level_calibrated(corpus: Path) -> None:
    clips = load_clips([corpus], 16000, labels_from_folders=True)
    assert clips.names == ("sfx", "speech") and len(clips.audio) == 7
    sampler = CropSampler(clips, 8000, (-25.0, -20.0), seed=0)
    x, labels = sampler.batch(16)
    assert x.shape == (16, 8000) and x.dtype == torch.float32 and set(labels.tolist()) <= {0, 1}
    levels = [rms_db(c.numpy()) for c in x]
    peaks = x.abs().amax(dim=-1)
    assert all(lv <= -19.99 for lv in levels) and float(peaks.max()) <= PEAK_LIMIT + 1e-6
    # below the level range only where the peak limit turned the crop down
    assert all(
        lv >= -25.01 or p >= PEAK_LIMIT - 1e-6 for lv, p in zip(levels, peaks.tolist(), strict=True)
    )


def test_loud_transients_are_turned_down_not_clipped(tmp_path: Path) -> None:
    click = np.zeros(16000, dtype=np.float32)
    click[4000:4040] = np.hanning(40) * np.sign(np.sin(np.arange(40)))  # crest factor ~ 30 dB
    sf.write(tmp_path / "click.wav", click, 16000, subtype="FLOAT")
    crop = CropSampler(load_clips([tmp_path], 16000), 16000, (-25.0, -20.0), seed=0).batch(1)[0][0]
    # at -25..-20 dBFS RMS it would peak at 1.8..3.3
    assert abs(float(crop.abs().max()) - PEAK_LIMIT) < 1e-6
    # the same waveform up to the gain (np.clip would have flattened its top)
    gain = float(crop[4000:4040] @ torch.from_numpy(click[4000:4040])) / float(
        np.square(click).sum()
    )
    torch.testing.assert_close(crop, gain * torch.from_numpy(click), atol=1e-6, rtol=0)


def test_train_is_deterministic(corpus: Path, tmp_path: Path) -> None:
    cfg = PRESETS["tiny"]
    tc = TrainConfig(steps=3, batch=2, checkpoint_every=3, log_every=1, valid_every=3)
    a = train(cfg, tc, [corpus], tmp_path / "a", valid=[corpus / "speech"])
    train(cfg, tc, [corpus], tmp_path / "b")
    wa, wb = (load_file(str(tmp_path / n / "model.safetensors")) for n in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.step == 3 and a.valid_loss is not None and np.isfinite(a.loss)
    rows = [
        json.loads(r) for r in (tmp_path / "a" / "train" / "log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2, 3]


def test_min_snr_weighting_reaches_the_loss(corpus: Path, tmp_path: Path) -> None:
    cfg = PRESETS["tiny"]
    # one step: the same weights, crops, steps and noise, so the same network output in both
    # runs (after a step the weights differ, and so would the outputs)
    tc = TrainConfig(steps=1, batch=2, checkpoint_every=1, log_every=1, valid_every=100)
    runs = {g: train(cfg, replace(tc, min_snr=g), [corpus], tmp_path / str(g)) for g in (0, 5)}
    assert runs[5].loss < runs[0].loss  # Min-SNR weights <= 1, some < 1
    wa, wb = (load_file(str(tmp_path / str(g) / "train" / "online.safetensors")) for g in (0, 5))
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_reaches_the_networks_and_the_card(
    precision: str, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--precision bf16 runs the networks' matmuls in bf16 (fp32 weights, finite loss; other
    weights than fp32's from the same seed), fp32 keeps them fp32; the card says which ran."""
    seen: set[torch.dtype] = set()
    linear = torch.nn.functional.linear
    monkeypatch.setattr(
        torch.nn.functional, "linear", lambda *a, **k: (y := linear(*a, **k), seen.add(y.dtype))[0]
    )
    tc = TrainConfig(steps=2, batch=2, checkpoint_every=2, log_every=1, valid_every=100, seed=4)
    run = train(PRESETS["tiny"], replace(tc, precision=precision), [corpus], tmp_path / "run")
    assert np.isfinite(run.loss) and (torch.bfloat16 in seen) == (precision == "bf16")
    weights = load_file(str(tmp_path / "run" / "train" / "online.safetensors"))
    assert all(w.dtype == torch.float32 for w in weights.values())
    card = (tmp_path / "run" / "README.md").read_text()
    assert f"| arithmetic | {precision} (networks; optimiser and EMA fp32) |" in card
    if precision == "bf16":
        seen.clear()
        train(PRESETS["tiny"], replace(tc, precision="fp32"), [corpus], tmp_path / "ref")
        ref = load_file(str(tmp_path / "ref" / "train" / "online.safetensors"))
        assert seen == {torch.float32}
        assert any(not torch.equal(weights[k], ref[k]) for k in ref)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")


def test_lr_schedule_warms_up_holds_then_cools_down() -> None:
    tc = TrainConfig(steps=100, warmup=10, cooldown=20)
    factors = [lr_factor(s, tc) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0
    assert all(f == 1.0 for f in factors[9:81])
    tail = factors[80:]
    assert all(a > b for a, b in itertools.pairwise(tail)) and 0 < tail[-1] < 0.03
    assert factors[95] == pytest.approx(1 - (15 / 20) ** 0.5)
    # resuming with more steps moves the cooldown to the new end: step 90 is stable again
    assert lr_factor(90, replace(tc, steps=200)) == 1.0
    assert lr_factor(90, replace(tc, cooldown=0)) == 1.0
    with pytest.raises(ValueError, match="cooldown"):
        TrainConfig(steps=10, cooldown=11)


def test_resume_drops_log_rows_after_the_checkpoint(corpus: Path, tmp_path: Path) -> None:
    cfg = PRESETS["tiny"]
    tc = TrainConfig(steps=2, batch=2, checkpoint_every=2, log_every=1, valid_every=100)
    train(cfg, tc, [corpus], tmp_path)
    log = tmp_path / "train" / "log.jsonl"
    with log.open("a") as f:  # a crash after logging step 3 but before checkpointing it
        f.write(json.dumps({"step": 3, "loss": 1.0}) + "\n")
    train(cfg, replace(tc, steps=4), [corpus], tmp_path, resume=True)
    steps = [json.loads(r)["step"] for r in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads(log.read_text().splitlines()[2])["loss"] != 1.0


def _train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    """``train`` with the tiny preset and batch 2 on the test corpus, plus ``extra``."""
    return ["train", str(corpus), "--out", str(out), "--config", "tiny", "--batch", "2", *extra]


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "diffsep_cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )  # type: ignore[call-overload]


def test_cli_train_resume_and_labels(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "prior"
    base = _train_args(corpus, out, "--checkpoint-every", "2", "--labels-from-folders", "-q")
    proc = _cli(*base, "--steps", "2")
    assert proc.returncode == 0, proc.stderr
    prior = load_prior_dir(out)
    assert prior.labels == ("sfx", "speech") and prior.config.null_label
    assert "steps | 2" in (out / "README.md").read_text()
    again = _cli(*base, "--steps", "2")
    assert again.returncode == 1 and "--resume" in again.stderr
    proc = _cli(*base, "--steps", "4", "--resume", "--cooldown", "2")
    assert proc.returncode == 0, proc.stderr
    assert torch.load(out / "train" / "state.pt", weights_only=True)["step"] == 4
    assert "lr cooled to 0 over the last 2 steps" in (out / "README.md").read_text()
    bad = _cli(*base, "--steps", "6", "--resume", "--cooldown", "7")
    assert bad.returncode == 1 and "cooldown must be between 0 and steps" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = _cli("train", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "-q")
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
    no_gpu = _cli(*_train_args(corpus, tmp_path / "y", "-d", "cuda:7", "-q"))
    assert no_gpu.returncode == 1 and "device cuda:7 is not available here" in no_gpu.stderr
    assert not (tmp_path / "y").exists()


def test_each_torchrun_rank_gets_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert rank_device(torch.device("cuda")) == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert rank_device(torch.device("cuda")) == torch.device("cuda", 3)
    assert rank_device(torch.device("cuda", 1)) == torch.device("cuda", 1)  # explicit: kept
    assert rank_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_saves_a_checkpoint(corpus: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "diffsep_cli",
            *_train_args(corpus, out, "--steps", "100000", "--checkpoint-every", "100000"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "train" / "log.jsonl"
    deadline = time.time() + 300
    while not (log.exists() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "checkpoint saved" in stderr
    step = torch.load(out / "train" / "state.pt", weights_only=True)["step"]
    assert step >= 25  # first log row is at step 25
    assert f"at step {step};" in stderr
    assert load_prior_dir(out).config.name == "run"


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
    reason="torchrun not installed beside python",
)
def test_ddp_two_cpu_processes_stay_in_sync(corpus: Path, tmp_path: Path) -> None:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "diffsep_cli",
            *_train_args(corpus, out, "--steps", "4", "--checkpoint-every", "2", "-q"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sums = json.loads((out / "train" / "ranks.json").read_text())
    assert len(sums) == 2 and sums[0] == sums[1]
    assert torch.load(out / "train" / "state.pt", weights_only=True)["step"] == 4


def test_gpu_train_script_runs_on_cpu(corpus: Path, tmp_path: Path) -> None:
    """The one-command GPU run (scripts/gpu_train.py), a few steps on CPU: it plans a batch
    and a step count, trains, and leaves a loadable prior folder with its resume state."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "gpu_train.py"),
        str(corpus / "sfx"),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--min-batch",
        "2",
        "--max-batch",
        "2",
        "--device",
        "cpu",
        "--augment",
        "sfx",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    plan, done = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert plan["batch"] == 2 and plan["steps"] == 2 and np.isfinite(done["loss"])
    assert load_prior_dir(out).config.segment == PRESETS["tiny"].segment
    assert (out / "train" / "state.pt").exists()


def test_bundle_prior_card_tells_the_recipe(corpus: Path, tmp_path: Path) -> None:
    """scripts/bundle_prior.py: the bundled folder loads, and its card states the steps, the
    augmentation and the group balance the run trained with, and the data with its licences."""
    tc = TrainConfig(steps=2, batch=2, checkpoint_every=2, log_every=1, valid_every=100)
    train(PRESETS["tiny"], replace(tc, augment="speech", balance=0.5), [corpus], tmp_path / "run")
    cmd = [sys.executable, str(ROOT / "scripts" / "bundle_prior.py"), str(tmp_path / "run")]
    cmd += ["speech", "--kind", "speech", "--models", str(tmp_path / "models")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert load_prior_dir(tmp_path / "models" / "speech").config.name == "speech"
    card = (tmp_path / "models" / "speech" / "README.md").read_text()
    assert "| steps | 2 |" in card and "--balance 0.5" in card
    assert "--augment speech, on the fly: speed / pitch x[1/1.15, 1.15]" in card
    assert "synthetic rooms" in card and "data/LICENCES.md" in card
