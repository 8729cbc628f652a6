"""Separation scaled out with torchrun: every rank takes its share of the inputs, each output
is written once, and rank 0 gathers one summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def _run(cmd: list[str], models: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIFFSEP_MODELS": str(models), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def test_two_cpu_ranks_share_a_folder(models: Path, tmp_path: Path) -> None:
    ins = tmp_path / "in"
    ins.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        sf.write(ins / f"clip{i}.wav", 0.1 * rng.standard_normal(8000 + 1000 * i), 16000)
    args = ["separate", str(ins), "-s", "speech,sfx", "--steps", "2", "--json"]
    one = _run([sys.executable, "-m", "diffsep_cli", *args, "-o", str(tmp_path / "one")], models)
    assert one.returncode == 0, one.stderr
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "diffsep_cli",
    ]
    two = _run([*torchrun, *args, "-o", str(tmp_path / "two")], models)
    assert two.returncode == 0, two.stderr
    doc = json.loads(two.stdout)  # one document, from rank 0
    assert doc["ranks"] == 2
    assert sorted(Path(f["input"]).name for f in doc["files"]) == [f"clip{i}.wav" for i in range(5)]
    assert sorted({f["rank"] for f in doc["files"]}) == [0, 1]
    for name in ("speech", "sfx"):
        for i in range(5):
            a = sf.read(tmp_path / "one" / f"clip{i}" / f"{name}.wav")[0]
            b = sf.read(tmp_path / "two" / f"clip{i}" / f"{name}.wav")[0]
            np.testing.assert_allclose(a, b, atol=2e-4)  # PCM_16: within a step or so
