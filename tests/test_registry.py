"""The prior registry, model-card checks and resolution from an offline Hub cache (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffsep_cli.core.sources import SourceSpec
from diffsep_cli.errors import EXIT_OFFLINE, PriorUnavailable
from diffsep_cli.hub import api as hub
from diffsep_cli.hub import folder, registry
from diffsep_cli.hub.registry import Entry, dump_registry, folder_files, load_registry

from .conftest import make_prior, tiny_prior

ROOT = Path(__file__).resolve().parents[1]


# -- in-process: a hand-made cache, offline ------------------------------------------------------
@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, priors: dict[str, Path]) -> Path:
    """``HF_HUB_CACHE`` holding ``test/tiny`` at a commit (refs/main too), and offline mode."""
    from huggingface_hub import constants

    commit = "c" * 40
    repo = tmp_path / "cache" / "models--test--tiny"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in registry.PRIOR_FILES:
        (snap / name).write_bytes((priors["v1"] / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)  # no trailing newline, as the Hub writes it
    reg = tmp_path / "registry.json"
    reg.write_text(dump_registry({"tiny": Entry("tiny", "test/tiny", commit, folder_files(snap))}))
    monkeypatch.setenv("DIFFSEP_REGISTRY", str(reg))
    monkeypatch.setenv("DIFFSEP_MODELS", str(tmp_path / "no-models"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return snap


def ref(name: str) -> registry.HubPrior:
    found = registry.hub_prior(name)
    assert found is not None
    return found


def test_resolution_order_offline(offline_cache: Path, tmp_path: Path) -> None:
    commit = offline_cache.name
    for name in ("tiny", "test/tiny", "test/tiny@main", f"test/tiny@{commit}"):
        assert hub.resolve_prior(name) == offline_cache
    assert hub.resolve_prior(str(offline_cache)) == offline_cache  # a folder path comes first
    bundled = tmp_path / "no-models" / "tiny"
    bundled.mkdir(parents=True)
    (bundled / "config.json").write_bytes((offline_cache / "config.json").read_bytes())
    assert hub.resolve_prior("tiny") == bundled  # then the bundled priors, then the cache
    assert hub.load_prior("test/tiny").labels == ("Bark", "Gong")
    pulled = hub.pull_prior(ref("test/tiny@main"))
    assert pulled.path == offline_cache and pulled.downloaded is False and pulled.revision == commit
    rows = {(r["name"], r["source"]): r for r in hub.list_priors()}
    assert rows["tiny", "bundled"]["path"] == str(bundled)
    assert rows["tiny", "registry"]["present"] and rows["tiny", "registry"]["revision"] == commit


def test_missing_or_corrupt_cache_is_exit_3(offline_cache: Path) -> None:
    with pytest.raises(PriorUnavailable, match=r"`diffsep pull-priors test/tiny@v2`") as info:
        hub.resolve_prior("test/tiny@v2")
    assert info.value.exit_code == EXIT_OFFLINE
    with pytest.raises(PriorUnavailable, match="HF_HUB_OFFLINE"):
        hub.pull_prior(ref("other/prior"))
    weights = offline_cache / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"!")  # same size, other bytes
    with pytest.raises(PriorUnavailable, match=r"corrupt.*sha256.*pull-priors tiny"):
        hub.resolve_prior("tiny")
    (row,) = [r for r in hub.list_priors() if r["name"] == "tiny"]
    assert row["present"] is False
    with pytest.raises(PriorUnavailable):  # pull removes the corrupt file, then is offline
        hub.pull_prior(ref("tiny"))
    assert not weights.exists()


def test_unreachable_hub_maps_to_exit_3() -> None:
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError

    ref = registry.HubPrior("tiny", "test/tiny", "main")
    exc = LocalEntryNotFoundError("cannot find the requested files")
    exc.__cause__ = httpx2.ConnectError("connection refused")
    mapped = registry.hub_error(exc, ref, "config.json")
    assert isinstance(mapped, PriorUnavailable) and "cannot reach the Hub" in str(mapped)
    assert "`diffsep pull-priors tiny`" in str(mapped)


# -- the registry and ids --------------------------------------------------------------------------
def test_packaged_registry_and_bundled_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIFFSEP_REGISTRY", raising=False)
    monkeypatch.delenv("DIFFSEP_MODELS", raising=False)
    entries = load_registry()
    assert {"speech", "sfx"} <= set(entries)
    assert entries["speech"].repo_id == "diffsep/speech" and entries["sfx"].repo_id == "diffsep/sfx"
    for entry in entries.values():
        assert registry.parse_hub_id(entry.repo_id) == (entry.repo_id, None)
        assert entry.revision is None or registry.COMMIT.fullmatch(entry.revision)
    for name, path in hub.bundled_priors().items():  # every models/* prior is registered as is
        assert name in entries, f"models/{name} is not in the registry"
        assert folder_files(path) == dict(entries[name].files), f"models/{name} changed"


def test_ids_and_constants() -> None:
    assert registry.parse_hub_id("org/name@0123abc") == ("org/name", "0123abc")
    assert registry.parse_hub_id("org/name") == ("org/name", None)
    assert registry.parse_hub_id("org/name@refs/pr/1") == ("org/name", "refs/pr/1")
    for bad in ("speech", "/abs/path", "./a/b", "a/b/c", "org/name@", "a/b@rev:Class"):
        assert registry.parse_hub_id(bad) is None, bad
    assert SourceSpec.parse("org/name@v1:Bark") == SourceSpec("org/name@v1", "Bark")
    assert SourceSpec.parse("org/name@v1").stem == "name"
    assert registry.PRIOR_FILES == (folder.CONFIG_NAME, folder.WEIGHTS_NAME, folder.CARD_NAME)


def test_model_card_checks(priors: dict[str, Path]) -> None:
    assert registry.card_problems((priors["v1"] / "README.md").read_text()) == []
    assert registry.card_problems("# title\n") == ["no YAML front matter"]
    bad = "---\nlicense: mit\nlibrary_name: torch\n---\nbody\n"
    assert registry.card_problems(bad) == [
        "library_name is not 'diffsep'",
        "pipeline_tag is not 'audio-to-audio'",
        "no tags",
    ]


def test_model_card_is_hub_metadata_and_a_body() -> None:
    from huggingface_hub import ModelCard

    from diffsep_cli.hub.card import TAGS, model_card

    cfg = tiny_prior(0, num_classes=2, labels=("Bark", "Gong"), name="tiny").config
    text = model_card(
        cfg,
        summary="A test prior.",
        license="cc-by-sa-3.0",
        datasets=["org/data"],
        data="Data | licences.",
        training={"steps": 5},
        quality={"SI-SDRi": "+1.0 dB"},
    )
    card = ModelCard(text)
    assert card.data.to_dict() == {
        "datasets": ["org/data"],
        "library_name": "diffsep",
        "license": "cc-by-sa-3.0",
        "pipeline_tag": "audio-to-audio",
        "tags": list(TAGS),
    }
    assert registry.card_problems(text) == []
    facts = [
        "# tiny\n\nA test prior.\n",
        "`diffsep separate mix.wav --sources tiny,...`",
        "| sample rate | 16000 Hz |",
        "| segment | 4000 samples (0.25 s) |",
        "| source level | -22.5 dBFS RMS, peaks <= 0.95 |",
        "| classes | Bark, Gong (null class: untrained) |",
        "| diffusion | DDPM, T = 200, linear beta 0.0001..0.02, eps-prediction |",
        "## Training\n\n| | |\n|---|---|\n| steps | 5 |\n",
        "## Measured quality\n\n| | |\n|---|---|\n| SI-SDRi | +1.0 dB |\n",
        "## Training data and licences\n\nData | licences.\n",
    ]
    for fact in facts:
        assert fact in card.text, fact
    assert "github.com" not in text and text.endswith(".\n")
    bare = model_card(cfg, summary="S.")
    assert "## " not in bare and ModelCard(bare).data.license == "other"
    for name, path in hub.bundled_priors().items():  # the bundled cards: same code, same checks
        bundled = (path / "README.md").read_text()
        assert registry.card_problems(bundled) == [] and "github.com" not in bundled, name


def test_update_registry_script(tmp_path: Path, priors: dict[str, Path]) -> None:
    import runpy

    main = runpy.run_path(str(ROOT / "scripts" / "update_registry.py"))["main"]
    reg, models = tmp_path / "registry.json", tmp_path / "models"
    reg.write_text(dump_registry({"speech": Entry("speech", "diffsep/speech", "a" * 40)}))
    make_prior(models / "speech", 5)
    args = ["--registry", str(reg), "--models", str(models)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0 and main([*args, "--check"]) == 0
    entry = json.loads(reg.read_text())["priors"]["speech"]
    assert entry["revision"] is None  # the files changed: the old pin no longer holds them
    measured = Entry("speech", "diffsep/speech", None, folder_files(models / "speech"))
    assert entry["files"] == measured.to_dict()["files"] and len(entry["files"]) == 3
    assert entry["labels"] == ["Bark", "Gong"] and entry["repo_id"] == "diffsep/speech"
    assert main([*args, "--pin", f"speech={'b' * 40}"]) == 0
    assert json.loads(reg.read_text())["priors"]["speech"]["revision"] == "b" * 40
