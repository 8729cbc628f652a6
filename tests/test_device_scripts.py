"""The GPU run as the `device` tool takes it: packs that fit what may travel, and a training
script whose outputs fit what comes back (scripts/device_prep.py, scripts/device_train.sh)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import soundfile as sf

from diffsep_cli.hub.folder import load_prior_dir

from .conftest import ROOT

MIB = 2**20


def _script(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packs_share_what_the_tree_leaves_of_the_limit() -> None:
    prep = _script("device_prep")
    assert prep.pack_budget(64, 42 * MIB, 2 * MIB, 0.5) == pytest.approx(9.0)
    with pytest.raises(SystemExit, match="too large"):
        prep.pack_budget(64, 61 * MIB, 0, 0.5)
    tree = prep.travelling_bytes()
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    tracked = sum((ROOT / f).stat().st_size for f in listed.stdout.splitlines())
    assert tracked > 0 and tree >= tracked  # tracked files travel, and so do untracked ones
    assert tree < sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())  # no .venv


def test_pack_keeps_groups_and_stops_at_its_budget(corpus: Path, tmp_path: Path) -> None:
    pack = _script("pack_subset").pack
    clips, used = pack(corpus / "sfx", tmp_path / "p", mib=0.0)
    assert clips == 1 and used > 0  # the budget is reached after the first clip
    clips, used = pack(corpus / "sfx", tmp_path / "all", mib=10)
    files = sorted((tmp_path / "all").rglob("*.opus"))
    assert clips == len(files) == 4 and used < 10
    x, rate = sf.read(files[0])
    assert rate == 16000 and x.ndim == 1


def test_device_train_brings_back_two_priors_in_eight_small_files(
    corpus: Path, tmp_path: Path
) -> None:
    """One step per prior on CPU: $OUT then holds 8 files (what a device call brings back:
    at most 8, 16 MiB each, two folders down, plain names), and both priors load."""
    pack = _script("pack_subset").pack
    for kind in ("speech", "sfx"):
        pack(corpus / kind, tmp_path / "pack" / kind, mib=10)
        pack(corpus / kind, tmp_path / "pack" / f"valid-{kind}", mib=0.0)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "WORK": str(tmp_path / "work"),
        "PACK": str(tmp_path / "pack"),
        "PYTHON": sys.executable,
        "GPU_TRAIN_ARGS": "--device cpu --steps 1 --min-batch 2 --max-batch 2",
    }
    cmd = ["bash", str(ROOT / "scripts" / "device_train.sh"), "1", "tiny"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = [f for f in out.rglob("*") if f.is_file()]
    assert len(files) == 8
    for f in files:
        rel = f.relative_to(out)
        assert len(rel.parts) <= 3 and all(re.fullmatch(r"[\w.-]+", p) for p in rel.parts)
        assert f.stat().st_size <= 16 * MIB
    for kind in ("speech", "sfx"):
        assert load_prior_dir(out / kind).config.name == kind
        assert (out / kind / "log.jsonl").read_text().strip()
        assert "noise levels balanced 1" in (out / kind / "README.md").read_text()
