"""Priors on the Hub: the real CLI in a subprocess against a loopback Hub (push and pull)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import soundfile as sf

from diffsep_cli.errors import EXIT_OFFLINE
from diffsep_cli.hub import registry
from diffsep_cli.hub.registry import Entry, dump_registry, folder_files

from .conftest import make_prior
from .hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[1]
MIX = ROOT / "examples" / "mix.wav"


class World:
    """A loopback Hub with ``test/tiny`` (v1 pinned, v2 on main), a registry and an HF home."""

    def __init__(self, tmp: Path, server: FakeHub, priors: dict[str, Path]) -> None:
        self.tmp, self.server, self.priors = tmp, server, priors
        self.pin = server.add_folder("test/tiny", priors["v1"])
        self.main = server.add_folder("test/tiny", priors["v2"])
        self.cache = tmp / "hf" / "hub"
        self.registry = tmp / "registry.json"
        self.write_registry(folder_files(priors["v1"]))

    def write_registry(self, files: dict[str, registry.FileInfo]) -> None:
        entry = Entry("tiny", "test/tiny", self.pin, files)
        self.registry.write_text(dump_registry({"tiny": entry}))

    def env(self, offline: bool = False, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DIFFSEP_"))}
        env.update(
            HF_ENDPOINT=self.server.url,
            HF_HOME=str(self.tmp / "hf"),
            HF_HUB_CACHE=str(self.cache),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_OFFLINE="1" if offline else "0",
            DIFFSEP_REGISTRY=str(self.registry),
            DIFFSEP_MODELS=str(self.tmp / "no-models"),
            COLUMNS="200",
        )
        return {**env, **extra}

    def cli(self, *args: str, code: int = 0, offline: bool = False, **extra: str) -> str:
        """Run ``diffsep ARGS``; check the exit code (errors: one line); stdout or the error."""
        proc = subprocess.run(
            [sys.executable, "-m", "diffsep_cli", *args],
            capture_output=True,
            text=True,
            env=self.env(offline, **extra),
            timeout=120,
        )
        assert proc.returncode == code, proc.stderr
        if code == 0:
            return proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
        return lines[0]

    def pull(self, *args: str, code: int = 0, **extra: str) -> list[dict[str, object]] | str:
        if code:
            return self.cli("pull-priors", *args, code=code, **extra)
        return json.loads(self.cli("pull-priors", "--json", *args, **extra))

    def snapshot(self, repo: str, commit: str) -> Path:
        return self.cache / f"models--{repo.replace('/', '--')}" / "snapshots" / commit


@pytest.fixture
def make_world(tmp_path: Path, priors: dict[str, Path]) -> Iterator[Callable[..., World]]:
    """``make_world(token)``: a World whose Hub wants ``token`` for writes and private reads."""
    servers: list[FakeHub] = []

    def make(token: str | None = None) -> World:
        servers.append(FakeHub(token))
        return World(tmp_path, servers[-1], priors)

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def same_files(a: Path, b: Path) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in registry.PRIOR_FILES)


# -- through HTTP ----------------------------------------------------------------------------------
def test_pull_pinned_cache_hit_offline_and_separate(world: World, tmp_path: Path) -> None:
    (got,) = world.pull("tiny")
    snap = world.snapshot("test/tiny", world.pin)
    assert got["revision"] == world.pin != world.main and got["downloaded"] is True
    assert Path(str(got["path"])) == snap and same_files(snap, world.priors["v1"])
    fetched = {p for _, p in world.server.hits("/resolve/")}
    assert fetched == {f"/test/tiny/resolve/{world.pin}/{n}" for n in registry.PRIOR_FILES}

    world.server.requests.clear()
    (again,) = world.pull("tiny")  # cache hit: no request at all for the prior
    assert again["downloaded"] is False and not world.server.hits("/test/tiny")

    world.server.close()  # from here on, no network
    rows = json.loads(world.cli("priors", "--json", offline=True))
    (row,) = [r for r in rows if r["name"] == "tiny"]
    assert row["present"] and row["revision"] == world.pin and row["classes"] == ["Bark", "Gong"]
    mix, rate = sf.read(MIX, dtype="float32")
    sf.write(tmp_path / "mix.wav", mix[: rate // 2], rate)  # half a second of the real mixture
    out = tmp_path / "sep"
    world.cli(
        "separate", str(tmp_path / "mix.wav"), "-s", f"tiny:Bark,test/tiny@{world.pin}:Gong",
        "-o", str(out), "--steps", "1", "-q", offline=True,
    )  # fmt: skip
    for name in ("Bark", "Gong"):
        assert sf.info(out / "mix" / f"{name}.wav").frames == rate // 2


def test_branch_ids_and_local_dir(world: World, tmp_path: Path) -> None:
    (got,) = world.pull("test/tiny@main")  # an explicit id at a branch: main's commit
    assert got["revision"] == world.main and same_files(Path(str(got["path"])), world.priors["v2"])
    other = tmp_path / "other-cache"
    (pinned,) = world.pull("test/tiny", "--cache-dir", str(other))  # a registry repo: the pin
    assert pinned["revision"] == world.pin and str(pinned["path"]).startswith(str(other))
    local = tmp_path / "local"
    (got,) = world.pull("tiny", "--revision", world.main, "--local-dir", str(local))
    assert Path(str(got["path"])) == local and same_files(local, world.priors["v2"])
    err = world.pull("tiny", "test/tiny", "--local-dir", str(local), code=1)
    assert "exactly one prior" in err


def test_offline_without_cache_names_the_pull_command(world: World, tmp_path: Path) -> None:
    err = world.pull("tiny", code=EXIT_OFFLINE, offline=True)
    assert "HF_HUB_OFFLINE" in err and "`diffsep pull-priors tiny`" in err
    args = ("separate", str(MIX), "-o", str(tmp_path), "-q", "-s")
    err = world.cli(*args, "org/other@v2:Bark,tiny", code=EXIT_OFFLINE, offline=True)
    assert "not downloaded" in err and "`diffsep pull-priors org/other@v2`" in err
    assert not world.server.requests  # offline means no request at all


@pytest.mark.parametrize(
    "name,text",
    [
        ("nobody/nothing", "repository nobody/nothing not found"),
        ("test/tiny@v9", "revision 'v9' not found in test/tiny"),
        ("test/half", "model.safetensors not found in test/half@main"),
        ("test/junk", "not a loadable diffsep prior"),
        ("drums", "unknown prior 'drums'"),
    ],
)
def test_not_found(world: World, name: str, text: str) -> None:
    world.server.commit(
        "test/half", {"config.json": (world.priors["v1"] / "config.json").read_bytes()}
    )
    world.server.commit("test/junk", {"config.json": b"{}", "model.safetensors": b"not weights"})
    assert text in world.pull(name, code=1)


def test_private_repo_needs_the_token(make_world: Callable[..., World]) -> None:
    w = make_world("s3cret")
    w.server.repos["test/tiny"].private = True
    assert "HF_TOKEN" in w.pull("tiny", code=1)
    (got,) = w.pull("tiny", HF_TOKEN="s3cret")
    assert got["downloaded"] is True


@pytest.mark.parametrize("mode", ["401", "403", "500", "truncate", "corrupt"])
def test_failed_download_keeps_nothing_and_retry_works(world: World, mode: str) -> None:
    world.server.fail("model.safetensors", mode)
    text = {"401": "denied (HTTP 401)", "403": "denied (HTTP 403)", "500": "failed (HTTP 500)"}
    text |= {"truncate": "cut short", "corrupt": "is corrupt"}
    assert text[mode] in world.pull("tiny", code=1)
    repo = world.cache / "models--test--tiny"
    weights = world.snapshot("test/tiny", world.pin) / "model.safetensors"
    assert not weights.exists() and not list(repo.rglob("*.incomplete"))
    kept = {(weights.parent / n).resolve() for n in ("config.json", "README.md")}
    assert set((repo / "blobs").iterdir()) == kept  # only the two good files are in the cache
    (row,) = json.loads(world.cli("priors", "--json"))
    assert row["name"] == "tiny" and row["present"] is False
    if mode == "corrupt":  # nothing uses the failed prior
        err = world.cli("separate", str(MIX), "-s", "tiny", "-o", "x", code=EXIT_OFFLINE)
        assert "not downloaded" in err
    world.server.heal()
    (got,) = world.pull("tiny")
    assert got["downloaded"] is True and same_files(weights.parent, world.priors["v1"])


def test_dropped_connection(world: World) -> None:
    world.server.fail("model.safetensors", "drop", times=1)  # resumed with a Range request
    (got,) = world.pull("tiny")
    assert same_files(Path(str(got["path"])), world.priors["v1"])
    world.server.fail("model.safetensors", "drop")  # never recovers: the client gives up
    assert "cut short" in world.pull("test/tiny@main", code=1)


def test_corrupt_download_of_an_unpinned_repo(world: World) -> None:
    world.server.add_folder("test/other", world.priors["v2"])
    world.server.fail("model.safetensors", "corrupt", times=1)
    assert "does not match the Hub's" in world.pull("test/other", code=1)
    (got,) = world.pull("test/other")
    assert same_files(Path(str(got["path"])), world.priors["v2"])


def test_registry_sha256_mismatch(world: World) -> None:
    files = folder_files(world.priors["v1"])
    files["model.safetensors"] = registry.FileInfo("0" * 64, files["model.safetensors"].size)
    world.write_registry(files)
    assert "not the registry's" in world.pull("tiny", code=1)
    assert not (world.snapshot("test/tiny", world.pin) / "model.safetensors").exists()


def test_push_then_pull_round_trip(make_world: Callable[..., World], tmp_path: Path) -> None:
    w = make_world("w-token")
    folder = make_prior(tmp_path / "new", 3, card=False)
    (folder / "train").mkdir()
    (folder / "train" / "state.pt").write_bytes(b"a pickle that must stay home")
    push = ("push-priors", str(folder), "--repo-id", "me/new")
    (commit,) = re.findall(r"commit ([0-9a-f]{40})", w.cli(*push, HF_TOKEN="w-token"))
    assert (folder / "README.md").is_file()  # the card was written, then uploaded
    tree = w.server.repos["me/new"].commits[commit]  # only the prior files were uploaded
    assert set(tree) == {".gitattributes", *registry.PRIOR_FILES}
    assert w.server.hits("/lfs-upload/")  # the weights went through the LFS protocol
    (got,) = w.pull(f"me/new@{commit}", HF_TOKEN="w-token")
    assert got["revision"] == commit and same_files(Path(str(got["path"])), folder)
    again = w.cli(*push, HF_TOKEN="w-token")  # same files: no new commit
    assert re.findall(r"commit ([0-9a-f]{40})", again) == [commit]
    assert "denied (HTTP 401)" in w.cli(*push, code=1)  # no HF_TOKEN


def test_push_rejects_bad_folders(world: World, tmp_path: Path) -> None:
    folder = make_prior(tmp_path / "p", 4)
    (folder / "README.md").write_text("# no front matter\n")
    for path, repo, text in [
        (folder, "a/b", "not a usable model card"),
        (tmp_path, "a/b", "not a prior folder"),
        (world.priors["v1"], "ab", "ORG/NAME"),
    ]:
        assert text in world.cli("push-priors", str(path), "--repo-id", repo, code=1)
    assert not world.server.requests


def test_unpublished_registry_prior(world: World) -> None:
    entry = Entry("speech", "diffsep/speech", None, folder_files(world.priors["v1"]))
    world.registry.write_text(dump_registry({"speech": entry}))
    assert "not published on the Hub yet" in world.pull("speech", code=1)
    assert world.cli("pull-priors").strip() == ""  # no argument: unpublished ones are skipped
