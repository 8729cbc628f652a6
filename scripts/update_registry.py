"""Recompute the registry's files (sha256, size) and rate/segment/classes from ``models/*``.

Usage: python scripts/update_registry.py [--pin NAME=COMMIT]... [--repo NAME=ORG/NAME]...
       [--registry diffsep_cli/hub/registry.json] [--models models] [--check]

Repo ids and pinned revisions are kept; a prior whose files changed loses its pin (the pinned
commit no longer holds these files: push it again and pin the new commit with --pin). New
priors get the repo id ``diffsep/NAME`` unless --repo says otherwise. --check writes nothing
and exits 1 when the registry is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffsep_cli.hub.registry import (
    COMMIT,
    HUB_ID,
    REQUIRED_FILES,
    Entry,
    dump_registry,
    folder_files,
    folder_info,
    parse_registry,
)

ROOT = Path(__file__).resolve().parents[1]


def pairs(items: list[str], what: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"bad {what} {item!r}: use NAME=VALUE")
        out[name] = value
    return out


def updated(
    entries: dict[str, Entry], models: Path, pins: dict[str, str], repos: dict[str, str]
) -> dict[str, Entry]:
    """The registry with every prior folder under ``models`` re-measured; notes on stderr."""
    entries = dict(entries)
    folders = sorted(p for p in models.iterdir() if p.is_dir()) if models.is_dir() else []
    for folder in folders:
        if not all((folder / n).is_file() for n in REQUIRED_FILES):
            continue
        old = entries.get(folder.name)
        files, info = folder_files(folder), folder_info(folder)
        rev = old.revision if old else None
        if old and rev and dict(old.files) != files:
            print(
                f"{folder.name}: files changed, unpinned {rev} (push, then --pin)", file=sys.stderr
            )
            rev = None
        repo = repos.get(folder.name) or (old.repo_id if old else f"diffsep/{folder.name}")
        entries[folder.name] = Entry(folder.name, repo, rev, files, info)
    for name, commit in pins.items():
        if name not in entries or not COMMIT.fullmatch(commit):
            raise SystemExit(f"cannot pin {name}={commit}: unknown prior or not a 40-hex commit")
        old = entries[name]
        entries[name] = Entry(name, old.repo_id, commit, old.files, old.info)
    for name, repo in repos.items():
        if name not in entries or not HUB_ID.fullmatch(repo) or "@" in repo:
            raise SystemExit(f"bad --repo {name}={repo}")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--registry", type=Path, default=ROOT / "diffsep_cli" / "hub" / "registry.json"
    )
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--pin", action="append", default=[], help="NAME=COMMIT")
    parser.add_argument("--repo", action="append", default=[], help="NAME=ORG/NAME")
    parser.add_argument("--check", action="store_true", help="Exit 1 if out of date.")
    args = parser.parse_args(argv)
    before = args.registry.read_text()
    entries = parse_registry(json.loads(before))
    text = dump_registry(
        updated(entries, args.models, pairs(args.pin, "--pin"), pairs(args.repo, "--repo"))
    )
    if args.check:
        print("registry up to date" if text == before else "registry out of date", file=sys.stderr)
        return int(text != before)
    args.registry.write_text(text)
    print(f"wrote {args.registry}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
