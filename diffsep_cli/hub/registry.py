"""The prior registry (name -> Hub repo, pinned commit, files) and checks of prior files."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DiffsepError, PriorUnavailable

REGISTRY_ENV = "DIFFSEP_REGISTRY"  # a registry.json to use instead of the packaged one
# the files of a prior folder (hub.folder reads and writes them; listing priors needs no torch)
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
PRIOR_FILES = (CONFIG, WEIGHTS, CARD)
REQUIRED_FILES = (CONFIG, WEIGHTS)
COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?"
HUB_ID = re.compile(rf"(?P<repo>{_NAME}/{_NAME})(?:@(?P<rev>[\w.][\w./-]*))?")
CARD_KEYS = {"library_name": "diffsep", "pipeline_tag": "audio-to-audio"}


@dataclass(frozen=True)
class FileInfo:
    sha256: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One registry prior: its Hub repo, pinned commit (None: not published yet) and files."""

    name: str
    repo_id: str
    revision: str | None
    files: Mapping[str, FileInfo] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)  # sample_rate, segment, labels

    def to_dict(self) -> dict[str, Any]:
        files = {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.files.items())}
        return {"repo_id": self.repo_id, "revision": self.revision, "files": files, **self.info}


def registry_file() -> Path | None:
    """The registry in use: ``$DIFFSEP_REGISTRY``, else None (the packaged one)."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env) if env else None


def parse_registry(doc: Mapping[str, Any]) -> dict[str, Entry]:
    """Entries of a registry document, checked (a bad registry is a bug, not a user error)."""
    entries = {}
    for name, item in doc.get("priors", {}).items():
        rev = item.get("revision")
        if rev is not None and not COMMIT.fullmatch(rev):
            raise ValueError(f"registry: {name} revision must be a 40-hex commit or null")
        if not HUB_ID.fullmatch(item["repo_id"]) or "@" in item["repo_id"]:
            raise ValueError(f"registry: {name} has a bad repo_id {item['repo_id']!r}")
        files = {k: FileInfo(v["sha256"], int(v["size"])) for k, v in item["files"].items()}
        info = {k: v for k, v in item.items() if k not in ("repo_id", "revision", "files")}
        entries[name] = Entry(name, item["repo_id"], rev, files, info)
    return entries


def load_registry() -> dict[str, Entry]:
    """The registry shipped in the package (or ``$DIFFSEP_REGISTRY``)."""
    path = registry_file()
    try:
        if path is not None:
            text = path.read_text()
        else:
            text = resources.files(__package__).joinpath("registry.json").read_text()
        return parse_registry(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DiffsepError(
            f"cannot read the prior registry {path or 'registry.json'}: {exc}"
        ) from exc


def dump_registry(entries: Mapping[str, Entry]) -> str:
    priors = {name: entries[name].to_dict() for name in sorted(entries)}
    return json.dumps({"format": 1, "priors": priors}, indent=2) + "\n"


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """``org/name[@rev]`` -> (repo id, revision or None); None if ``text`` is no Hub id."""
    match = HUB_ID.fullmatch(text)
    return (match["repo"], match["rev"]) if match else None


@dataclass(frozen=True)
class HubPrior:
    """A prior in a Hub repo at a revision; ``expected`` is the registry pin (None: unpinned)."""

    name: str
    repo_id: str
    revision: str
    expected: Mapping[str, FileInfo] | None = None

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(self.expected) if self.expected else PRIOR_FILES

    @property
    def pull(self) -> str:
        return f"diffsep pull-priors {self.name}"

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}"


def hub_prior(name: str, revision: str | None = None) -> HubPrior | None:
    """The Hub prior behind a registry name or ``org/name[@rev]`` (None: neither).

    ``org/name`` without a revision means the registry's pinned commit for a registry repo,
    else ``main``; ``revision`` (a commit, branch or tag) overrides both, and the prior is then
    called ``org/name@revision`` (the id that finds it again).
    """
    registry = load_registry()
    entry, rev = registry.get(name), revision
    if entry is None:
        parsed = parse_hub_id(name)
        if parsed is None:
            return None
        repo_id, rev = parsed[0], revision or parsed[1]
        entry = next((e for e in registry.values() if e.repo_id == repo_id), None)
        if entry is None:
            label = f"{repo_id}@{revision}" if revision else name
            return HubPrior(label, repo_id, rev or "main")
    if rev is None and entry.revision is None:
        raise DiffsepError(
            f"prior {name!r} is bundled with diffsep (models/{entry.name}) and not published on "
            f"the Hub yet ({entry.repo_id} has no pinned revision)"
        )
    label = f"{entry.repo_id}@{revision}" if revision else name
    pinned = rev is None or rev == entry.revision
    expected = (entry.files or None) if pinned else None
    return HubPrior(label, entry.repo_id, rev or entry.revision or "main", expected)


def offline_note() -> str:
    from huggingface_hub import constants

    return " and HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else ""


def hub_error(exc: Exception, ref: HubPrior, name: str, retry: str = "") -> Exception:
    """One-line error for a failed Hub transfer (``exc`` itself when it is unexpected)."""
    from huggingface_hub import constants, errors

    retry, cause = retry or ref.pull, exc.__cause__
    if isinstance(exc, errors.LocalEntryNotFoundError):
        if isinstance(cause, (errors.HfHubHTTPError, errors.FileMetadataError)):
            return hub_error(cause, ref, name, retry)
        if isinstance(cause, Exception) and not isinstance(cause, errors.OfflineModeIsEnabled):
            return PriorUnavailable(_unreachable(cause, retry))
        return PriorUnavailable(f"prior {ref.name!r} ({ref}) is not cached{offline_note()}")
    if isinstance(exc, errors.GatedRepoError):
        return DiffsepError(f"{ref.repo_id} is gated: accept its terms on the Hub, set HF_TOKEN")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return DiffsepError(
            f"Hub repository {ref.repo_id} not found at {constants.ENDPOINT} (if it is private, "
            "set HF_TOKEN to a token with access to it)"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return DiffsepError(f"revision {ref.revision!r} not found in {ref.repo_id}")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return DiffsepError(f"{name} not found in {ref}: not a diffsep prior repository")
    return _transfer_error(exc, ref, name, retry)


def _unreachable(cause: Exception, retry: str) -> str:
    from huggingface_hub import constants

    return (
        f"cannot reach the Hub at {constants.ENDPOINT} ({type(cause).__name__}): check the "
        f"network, HF_ENDPOINT and proxies, then run `{retry}`"
    )


def _transfer_error(exc: Exception, ref: HubPrior, name: str, retry: str) -> Exception:
    from huggingface_hub import constants, errors

    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        if status in (401, 403):
            return DiffsepError(
                f"access to {ref.repo_id} denied (HTTP {status}): set HF_TOKEN to a token with "
                "access to it"
            )
        return DiffsepError(
            f"the Hub at {constants.ENDPOINT} failed (HTTP {status}) on {name} of {ref}; "
            f"nothing was kept, run `{retry}` again later"
        )
    if isinstance(exc, errors.FileMetadataError):
        return DiffsepError(f"{constants.ENDPOINT} does not answer like a Hub (check HF_ENDPOINT)")
    kinds = {c.__name__ for c in type(exc).__mro__}
    if kinds & {"ConnectError", "ConnectionError"}:
        return DiffsepError(_unreachable(exc, retry))
    if kinds & {"TransportError", "RequestException"} or "Consistency check failed" in str(exc):
        return DiffsepError(
            f"the transfer of {name} ({ref}) was cut short ({type(exc).__name__}); nothing was "
            f"kept, run `{retry}` again"
        )
    return exc


def file_info(path: Path) -> FileInfo:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return FileInfo(digest.hexdigest(), path.stat().st_size)


def folder_files(folder: Path) -> dict[str, FileInfo]:
    """sha256 and size of the prior files present in ``folder``."""
    return {n: file_info(folder / n) for n in PRIOR_FILES if (folder / n).is_file()}


def folder_info(folder: Path) -> dict[str, Any]:
    """What a listing shows without loading weights: rate, segment and classes of a prior."""
    from ..config import PriorConfig

    cfg = PriorConfig.load(folder / CONFIG)
    return {"sample_rate": cfg.sample_rate, "segment": cfg.segment, "labels": list(cfg.labels)}


def file_problem(path: Path, expected: FileInfo | None) -> str | None:
    """Why ``path`` is not the expected file (size, then sha256), or None if it is.

    Without a registry entry the cache's blob name is the check: the Hub names a blob by its
    ETag, the sha256 of an LFS file or the git blob id of a small file.
    """
    if not path.is_file():
        return f"{path.name} is missing"
    if expected is None:
        return _blob_problem(path)
    size = path.stat().st_size
    if size != expected.size:
        return f"{path.name} has {size} bytes, expected {expected.size}"
    actual = file_info(path).sha256
    if actual != expected.sha256:
        return f"{path.name} sha256 {actual[:12]}… is not the registry's {expected.sha256[:12]}…"
    return None


def _blob_problem(path: Path) -> str | None:
    blob = path.resolve().name
    data_hash = None
    if _SHA256.fullmatch(blob):
        data_hash = file_info(path.resolve()).sha256
    elif COMMIT.fullmatch(blob):
        data = path.read_bytes()
        data_hash = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if data_hash is not None and data_hash != blob:
        return f"{path.name} content hash {data_hash[:12]}… does not match the Hub's {blob[:12]}…"
    return None


def remove_cached(path: Path) -> None:
    """Delete a cached file and the blob it links to, so a later pull fetches it again."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path.absolute():
        blob.unlink(missing_ok=True)


def card_problems(text: str) -> list[str]:
    """What a model card lacks: Hub metadata with license, library_name, tags, pipeline_tag."""
    import yaml
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    if not REGEX_YAML_BLOCK.search(text):
        return ["no YAML front matter"]
    try:
        meta = ModelCard(text).data
    except yaml.YAMLError as exc:
        return [f"bad YAML front matter ({' '.join(str(exc).split())})"]
    except ValueError as exc:  # a block that is no mapping, or malformed metadata
        return [f"bad front matter ({' '.join(str(exc).split())})"]
    problems = [f"{k} is not {v!r}" for k, v in CARD_KEYS.items() if meta.get(k) != v]
    problems += [f"no {k}" for k in ("license", "tags") if not meta.get(k)]
    return problems
