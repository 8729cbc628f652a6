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


END_RANK = """
import sys
import torch.distributed as dist
from diffsep_cli.core.devices import end_process

end_process(5)  # no process group: returns
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
print("written before the end", end="")
end_process(int(sys.argv[1]))
print("never reached")
sys.exit(0)
"""


def test_a_rank_ends_with_its_status_after_flushing_and_tearing_down() -> None:
    for code in (0, 3):
        proc = subprocess.run(
            [sys.executable, "-c", END_RANK, str(code)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == code, proc.stderr
        assert proc.stdout == "written before the end"
