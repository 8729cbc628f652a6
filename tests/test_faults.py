"""Hostile inputs and faults, through the real ``diffsep separate`` in a subprocess: nothing is
written outside ``-o``, nothing non-finite is written, nothing is half-written or lost."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep_cli.errors import DiffsepError, InputError
from diffsep_cli.hub.folder import load_prior_dir, save_prior
from diffsep_cli.io import outputs
from diffsep_cli.io.files import is_partial

from .conftest import tiny_prior
from .test_cli import MIX, assert_one_line_error

Preexec = Callable[[], None] | None


def popen(models: Path, *args: str, preexec: Preexec = None) -> subprocess.Popen[str]:
    env = {**os.environ, "DIFFSEP_MODELS": str(models), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "diffsep_cli", "separate", "-s", "speech,sfx", *args]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=preexec,
    )


def sep(models: Path, *args: str, preexec: Preexec = None) -> subprocess.CompletedProcess[str]:
    proc = popen(models, "--steps", "2", "-q", *args, preexec=preexec)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def clip(path: Path, seconds: float, rate: int = 16000, seed: int = 0, **kw: object) -> Path:
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    sf.write(path, x.astype(np.float32), rate, **kw)  # type: ignore[arg-type]
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "template", ["../../escaped_{source}.wav", "/tmp/escaped_{source}.wav", "a/../../{source}"]
)
def test_templates_cannot_leave_the_output_folder(
    models: Path, tmp_path: Path, template: str
) -> None:
    before = files_under(tmp_path)
    proc = sep(models, str(MIX), "-o", str(tmp_path / "a" / "b"), "--filename", template)
    assert_one_line_error(proc, 1, "inside the output folder")
    assert files_under(tmp_path) == before and not Path("/tmp/escaped_speech.wav").exists()


def test_input_names_and_links_cannot_lead_outside(models: Path, tmp_path: Path) -> None:
    odd = tmp_path / "in" / "..wav"  # stem "." would be the output folder itself
    odd.parent.mkdir()
    odd.write_bytes(MIX.read_bytes())
    out = tmp_path / "out"
    assert sep(models, str(odd), "-o", str(out)).returncode == 0
    assert {p.relative_to(out) for p in files_under(out)} == {
        Path("_.") / "speech.wav",
        Path("_.") / "sfx.wav",
    }
    assert outputs.safe_name("a/../b\nc") == "a_.._b_c" and outputs.safe_name("..") == "_.."
    (out / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    proc = sep(models, str(MIX), "-o", str(out), "--filename", "link/{source}.{ext}")
    assert_one_line_error(proc, 1, "outside")
    assert not (tmp_path / "elsewhere").exists()


def test_non_finite_input_is_refused(models: Path, tmp_path: Path) -> None:
    x = sf.read(MIX, dtype="float32")[0]
    x[[10, 500, 9000]] = [np.nan, np.inf, np.nan]
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    proc = sep(models, str(tmp_path / "nan.wav"), "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 1, "3 samples are not finite")
    assert not (tmp_path / "o").exists() or not files_under(tmp_path / "o")


def test_a_diverging_solver_fails_loudly_and_writes_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    save_prior(tiny_prior(0), models / "speech")
    broken = tiny_prior(1)
    with torch.no_grad():
        next(broken.net.parameters()).fill_(float("nan"))
    save_prior(broken, models / "sfx")
    proc = sep(models, str(MIX), "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, 1, "diverged")
    assert "segment" in proc.stderr and not files_under(tmp_path / "o")


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_follow_the_umask(models: Path, tmp_path: Path, mask: int) -> None:
    proc = sep(models, str(MIX), "-o", str(tmp_path), preexec=lambda: os.umask(mask) and None)
    assert proc.returncode == 0, proc.stderr
    for path in files_under(tmp_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def _file_size_limit(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_keeps_complete_outputs_and_leaves_no_partial(
    models: Path, tmp_path: Path
) -> None:
    """A file-size limit stands for a full disk: 1 s of PCM_16 fits under it, 20 s do not."""
    (tmp_path / "in").mkdir()
    clip(tmp_path / "in" / "a_short.wav", 1.0)
    clip(tmp_path / "in" / "b_long.wav", 20.0)
    out = tmp_path / "o"
    proc = sep(models, str(tmp_path / "in"), "-o", str(out), preexec=_file_size_limit(200_000))
    assert_one_line_error(proc, 1, "cannot write")
    assert files_under(out) == {out / "a_short" / "speech.wav", out / "a_short" / "sfx.wav"}
    assert all(sf.info(p).frames == 16000 for p in files_under(out))


def test_sigkill_leftovers_are_recognisable_and_harmless(models: Path, tmp_path: Path) -> None:
    clip(tmp_path / "long.wav", 60.0)
    out = tmp_path / "o"
    proc = popen(models, str(tmp_path / "long.wav"), "-o", str(out), "--steps", "20", "-q")
    deadline = time.time() + 300
    while not list(out.rglob("*.partial*")) and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.communicate(timeout=60)
    left = files_under(out)
    assert left and all(is_partial(p) for p in left)
    clip(tmp_path / "short.wav", 0.5)
    clip(out / "real.wav", 0.5)
    done = sep(models, str(out), "-o", str(tmp_path / "o2"))
    assert done.returncode == 0, done.stderr  # the leftovers are no inputs...
    assert {p.parent.name for p in files_under(tmp_path / "o2")} == {"real"}
    rerun = sep(models, str(tmp_path / "short.wav"), "-o", str(out))
    assert rerun.returncode == 0, rerun.stderr  # ...and no outputs that block a rerun
    assert (out / "short" / "speech.wav").exists()


def test_concurrent_runs_never_interleave(models: Path, tmp_path: Path) -> None:
    clip(tmp_path / "x.wav", 3.0)
    expected = {}
    for seed in (1, 2):
        ref = tmp_path / f"ref{seed}"
        assert (
            sep(models, str(tmp_path / "x.wav"), "-o", str(ref), "--seed", str(seed)).returncode
            == 0
        )
        expected[seed] = {n: (ref / "x" / f"{n}.wav").read_bytes() for n in ("speech", "sfx")}
    assert expected[1]["speech"] != expected[2]["speech"]
    out = tmp_path / "shared"
    procs = [
        popen(
            models,
            str(tmp_path / "x.wav"),
            "-o",
            str(out),
            "--seed",
            str(s),
            "--steps",
            "2",
            "-q",
            "--overwrite",
        )
        for s in (1, 2)
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.communicate()[1]
    for name in ("speech", "sfx"):
        data = (out / "x" / f"{name}.wav").read_bytes()
        assert data in (expected[1][name], expected[2][name])
    assert not [p for p in files_under(out) if is_partial(p)]


def test_bad_inputs_fail_alone_and_the_others_are_done(models: Path, tmp_path: Path) -> None:
    ins = tmp_path / "in"
    ins.mkdir()
    good = clip(ins / "good.wav", 1.0)
    bad = []
    for fmt, ext, sub in (
        ("FLAC", "flac", "PCM_16"),
        ("OGG", "ogg", "VORBIS"),
        ("MP3", "mp3", "MPEG_LAYER_III"),
    ):
        full = clip(tmp_path / f"full.{ext}", 3.0, format=fmt, subtype=sub)
        (ins / f"trunc.{ext}").write_bytes(full.read_bytes()[: full.stat().st_size // 3])
        bad.append(ins / f"trunc.{ext}")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "folder.wav").mkdir()
    args = [str(p) for p in (tmp_path / "pipe.wav", tmp_path / "folder.wav", good, *bad)]
    proc = sep(models, *args, "-o", str(tmp_path / "o"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert any("pipe.wav: not a regular file" in ln for ln in lines)
    assert any("folder.wav: no audio files" in ln for ln in lines)
    assert any("trunc.flac" in ln and "corrupt" in ln for ln in lines)
    failed = int(lines[-1].split()[1])
    assert lines[-1].startswith("error:") and f"of {len(args)} inputs failed" in lines[-1]
    assert 3 <= failed <= 5  # OGG / MP3 decoders may read a truncated file to its end
    done = {p.parent.name for p in files_under(tmp_path / "o")}
    assert "good" in done and len(done) == len(args) - failed


def test_unreadable_input_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root nothing is unreadable, so libsndfile's failure is stood in for."""
    path = clip(tmp_path / "locked.wav", 0.2)

    def denied(*_: object, **__: object) -> None:
        raise sf.LibsndfileError(2, "System error : Permission denied")

    monkeypatch.setattr(sf, "info", denied)
    plan = outputs.plan_jobs(
        [path], ["a", "b"], tmp_path / "o", "{track}/{source}.{ext}", None, None, False, False
    )
    assert plan.jobs == [] and plan.failed[0][0] == path
    assert "not a readable audio file" in plan.failed[0][1]
    assert issubclass(InputError, DiffsepError)


def test_corrupt_prior_folders_are_one_line_errors(tmp_path: Path) -> None:
    good = save_prior(tiny_prior(0), tmp_path / "good")
    trunc = save_prior(tiny_prior(0), tmp_path / "trunc")
    weights = trunc / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    mismatch = save_prior(tiny_prior(0), tmp_path / "mismatch")
    cfg = (mismatch / "config.json").read_text().replace('"hidden": 8', '"hidden": 12')
    (mismatch / "config.json").write_text(cfg)
    (tmp_path / "nojson").mkdir()
    (tmp_path / "nojson" / "config.json").write_text("{")
    load_prior_dir(good)
    for folder in (trunc, mismatch, tmp_path / "nojson", tmp_path / "missing"):
        with pytest.raises(DiffsepError, match="not a loadable prior folder") as info:
            load_prior_dir(folder)
        assert str(folder) in str(info.value) and "\n" not in str(info.value)
