"""Where priors come from: a folder, the bundled ``models/``, or the Hugging Face Hub cache.

A name resolves in this order: a prior folder path, a bundled prior (``models/NAME``), the Hub
cache at the pinned revision (registry names and ``org/name[@rev]`` ids), otherwise an error.
Only ``pull_prior`` touches the network, through ``huggingface_hub`` (which honours ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``); every file is checked
against the registry's size and sha256 (or the Hub's blob id) before it is used.

Exit codes: 0 ok; 1 a fixable error (unknown prior, 404 repo/revision/file, 401/403, server
error, interrupted or corrupt download, not published yet); 2 bad command line; 3 the prior is
known but not usable from local files (not pulled, corrupt in the cache, or the Hub unreachable
or ``HF_HUB_OFFLINE`` set while pulling): the message names the ``diffsep pull-priors`` command.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import DiffsepError, PriorUnavailable
from .registry import (
    CARD,
    COMMIT,
    CONFIG,
    PRIOR_FILES,
    REQUIRED_FILES,
    WEIGHTS,
    HubPrior,
    card_problems,
    file_problem,
    folder_info,
    hub_error,
    hub_prior,
    load_registry,
    offline_note,
    parse_hub_id,
    remove_cached,
)

if TYPE_CHECKING:
    import torch

    from ..core.prior import Prior


def models_dir() -> Path:
    """The bundled priors: ``$DIFFSEP_MODELS`` or ``models/`` beside the package."""
    env = os.environ.get("DIFFSEP_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models"


def bundled_priors() -> dict[str, Path]:
    root = models_dir()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG).is_file()}


def _is_prior_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED_FILES)


def _cached_files(ref: HubPrior, cache_dir: Path | None) -> dict[str, Path] | None:
    """Paths of ``ref``'s files in the Hub cache; None unless every needed one is there."""
    from huggingface_hub import try_to_load_from_cache

    found = {}
    for name in ref.files:
        path = try_to_load_from_cache(ref.repo_id, name, cache_dir=cache_dir, revision=ref.revision)
        if isinstance(path, str):
            found[name] = Path(path)
        elif ref.expected or name in REQUIRED_FILES:
            return None
    return found


def _problems(ref: HubPrior, files: Mapping[str, Path]) -> dict[str, str]:
    expected = ref.expected or {}
    found = {n: file_problem(p, expected.get(n)) for n, p in files.items()}
    return {n: msg for n, msg in found.items() if msg}


def cached_prior(ref: HubPrior, cache_dir: Path | None = None) -> Path | None:
    """The verified snapshot folder of ``ref`` in the Hub cache; None if it is not cached."""
    files = _cached_files(ref, cache_dir)
    if files is None:
        return None
    problems = _problems(ref, files)
    if problems:
        raise PriorUnavailable(
            f"the cached prior {ref.name!r} is corrupt ({'; '.join(problems.values())}): "
            f"run `{ref.pull}` to fetch it again"
        )
    return files[CONFIG].parent


def resolve_prior(name: str) -> Path:
    """A prior folder for ``name``: a folder path, a bundled prior, the Hub cache, else an error."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not _is_prior_dir(path):
            raise DiffsepError(f"{path} is not a prior folder ({CONFIG} + {WEIGHTS})")
        return path
    bundled = bundled_priors()
    if name in bundled:
        return bundled[name]
    ref = hub_prior(name)
    if ref is None:
        known = ", ".join(sorted({*bundled, *load_registry()})) or "none"
        raise DiffsepError(
            f"unknown prior {name!r} (known: {known}; or give a prior folder or org/name[@rev])"
        )
    folder = cached_prior(ref)
    if folder is None:
        raise PriorUnavailable(
            f"prior {name!r} ({ref}) is not downloaded{offline_note()}: run `{ref.pull}` first"
        )
    return folder


@lru_cache(maxsize=16)
def _load_cached(path: str, device: str) -> Prior:
    from .folder import load_prior_dir

    return load_prior_dir(path, device)


def load_prior(name: str, device: str | torch.device = "cpu") -> Prior:
    """Load a prior by name, folder or Hub id (cached: one object per prior and device)."""
    return _load_cached(str(resolve_prior(name).resolve()), str(device))


@dataclass(frozen=True)
class Pulled:
    name: str
    repo_id: str
    revision: str  # the commit (or the requested revision for --local-dir)
    path: Path
    downloaded: bool  # False: already in the cache, no request made


def pull_prior(
    ref: HubPrior,
    *,
    cache_dir: Path | None = None,
    local_dir: Path | None = None,
    bar: Callable[[str], Any] | None = None,
) -> Pulled:
    """Download ``ref``'s files (only those names), verify size + sha256, check it loads.

    ``bar(file name)`` gives the tqdm-like class ``hf_hub_download`` reports progress to.
    """
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    files = _cached_files(ref, cache_dir) if local_dir is None else None
    # bad cached files are removed; a cached branch may have moved, so only commits are final
    good = files is not None and not _remove_bad(ref, files)
    if files and good and (offline or COMMIT.fullmatch(ref.revision)):
        folder = files[CONFIG].parent
        return Pulled(ref.name, ref.repo_id, folder.name, folder, False)
    if offline:
        where = cache_dir or constants.HF_HUB_CACHE
        raise PriorUnavailable(
            f"prior {ref.name!r} ({ref}) is not in the Hub cache {where} and HF_HUB_OFFLINE is "
            f"set: run `{ref.pull}` with network access"
        )
    files = _download(ref, cache_dir, local_dir, bar)
    problems = _remove_bad(ref, files)
    if problems:
        raise DiffsepError(
            f"download of {ref.name!r} from {ref} is corrupt ({problems}); the bad file was "
            f"removed, run `{ref.pull}` again"
        )
    folder = files[CONFIG].parent
    _check_loads(ref, folder)
    rev = ref.revision if local_dir is not None else folder.name
    return Pulled(ref.name, ref.repo_id, rev, folder, True)


def _remove_bad(ref: HubPrior, files: Mapping[str, Path]) -> str:
    """Delete files that fail their check (a later pull fetches them again); say why."""
    problems = _problems(ref, files)
    for name in problems:
        remove_cached(files[name])
    return "; ".join(problems.values())


def _download(
    ref: HubPrior, cache_dir: Path | None, local_dir: Path | None, bar: Callable[[str], Any] | None
) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    paths = {}
    for name in ref.files:
        try:
            path = hf_hub_download(
                ref.repo_id,
                name,
                revision=ref.revision,
                cache_dir=cache_dir,
                local_dir=local_dir,
                tqdm_class=bar(name) if bar else None,
                library_name="diffsep",
                library_version=__version__,
            )
            paths[name] = Path(str(path))
        except RemoteEntryNotFoundError as exc:
            if ref.expected or name in REQUIRED_FILES:
                raise hub_error(exc, ref, name) from exc
        except Exception as exc:
            raise hub_error(exc, ref, name) from exc
    return paths


def _check_loads(ref: HubPrior, folder: Path) -> None:
    from .folder import load_prior_dir

    try:
        load_prior_dir(folder)
    except Exception as exc:  # a config or weights that do not make a prior
        msg = " ".join(str(exc).split())[:200]
        raise DiffsepError(f"{ref} downloaded but is not a loadable diffsep prior: {msg}") from exc


def check_prior_folder(folder: Path) -> bool:
    """Check a folder to publish: it loads strictly and has a valid card (written if missing).

    Returns True when the card was written here (from the config; no training facts).
    """
    if not _is_prior_dir(folder):
        raise DiffsepError(f"{folder} is not a prior folder ({CONFIG} + {WEIGHTS})")
    from ..io.files import atomic_file
    from .card import model_card
    from .folder import load_prior_dir

    try:
        config = load_prior_dir(folder).config
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise DiffsepError(f"{folder} does not load as a diffsep prior: {msg}") from exc
    wrote = not (folder / CARD).is_file()
    if wrote:
        with atomic_file(folder / CARD) as tmp:
            name = config.name or folder.name
            tmp.write_text(model_card(config, summary=f"The `{name}` diffsep prior."))
    problems = card_problems((folder / CARD).read_text())
    if problems:
        raise DiffsepError(f"{folder / CARD} is not a usable model card: {'; '.join(problems)}")
    return wrote


def push_prior(folder: Path, repo_id: str, *, private: bool = False) -> tuple[str, bool]:
    """Check ``folder``, create ``repo_id`` if needed, upload the prior files.

    Returns the new commit and whether a model card was written into ``folder``.
    """
    if parse_hub_id(repo_id) is None or "@" in repo_id:
        raise DiffsepError(f"bad repository id {repo_id!r}: use ORG/NAME")
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise DiffsepError("push-priors needs the network, and HF_HUB_OFFLINE is set")
    wrote_card = check_prior_folder(folder)
    api = HfApi(library_name="diffsep", library_version=__version__)
    ref = HubPrior(repo_id, repo_id, "main")
    retry = f"diffsep push-priors {folder} --repo-id {repo_id}"
    try:
        api.create_repo(repo_id, private=private or None, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=list(PRIOR_FILES),
            commit_message=f"Upload diffsep prior {folder.name}",
        )
    except Exception as exc:
        raise hub_error(exc, ref, "the upload", retry) from exc
    return str(info.oid), wrote_card


def list_priors(cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Bundled, registry and cached priors: name, source, revision, rate, size, presence."""
    registry, rows = load_registry(), []
    for name, path in bundled_priors().items():
        entry = registry.get(name)
        rev = entry.revision if entry else None
        rows.append(_row(name, "bundled", entry.repo_id if entry else None, rev, path))
    listed = set()
    for name, entry in registry.items():
        ref = HubPrior(name, entry.repo_id, entry.revision or "", entry.files or None)
        files = _cached_files(ref, cache_dir) if entry.revision else None
        folder = files[CONFIG].parent if files and not _problems(ref, files) else None
        listed.add((entry.repo_id, entry.revision))
        row = _row(name, "registry", entry.repo_id, entry.revision, folder)
        if folder is None:
            size = sum(f.size for f in entry.files.values()) or None
            row.update({k: entry.info.get(k) for k in ("sample_rate", "segment")}, size=size)
            row["classes"] = entry.info.get("labels", [])
        rows.append(row)
    for repo_id, commit, folder in _cached_repos(cache_dir):
        if (repo_id, commit) not in listed:
            rows.append(_row(f"{repo_id}@{commit}", "cache", repo_id, commit, folder))
    return rows


def _row(
    name: str, source: str, repo_id: str | None, rev: str | None, folder: Path | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "source": source, "repo_id": repo_id, "revision": rev}
    row.update(sample_rate=None, segment=None, classes=[], size=None, present=False, path=None)
    if folder is not None:
        info = folder_info(folder)
        size = sum((folder / n).stat().st_size for n in PRIOR_FILES if (folder / n).is_file())
        row.update(sample_rate=info["sample_rate"], segment=info["segment"], size=size)
        row.update(classes=info["labels"], present=True, path=str(folder))
    return row


def _cached_repos(cache_dir: Path | None) -> list[tuple[str, str, Path]]:
    """(repo id, commit, snapshot) of every diffsep prior in the Hub cache."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        repos = scan_cache_dir(cache_dir).repos
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        for rev in repo.revisions:
            if repo.repo_type == "model" and _is_prior_dir(rev.snapshot_path):
                try:
                    folder_info(rev.snapshot_path)
                except (ValueError, TypeError, KeyError):  # another library's config.json
                    continue
                found.append((repo.repo_id, rev.commit_hash, rev.snapshot_path))
    return found
