"""A small Hugging Face Hub-compatible HTTP server on 127.0.0.1 for tests, with fault injection."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
API_REPO = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>revision|preupload|commit)/(?P<rev>.+)$"
)
LFS_BATCH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$")
LFS_PUT = re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$")
FAULTS = ("truncate", "drop", "corrupt", "500", "401", "403")


def git_sha1(data: bytes) -> str:
    """Git blob id: what the Hub serves as the ETag of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith(".safetensors")


def etag(path: str, data: bytes) -> str:
    """LFS files are addressed by sha256 (as on the Hub), others by their git blob id."""
    return hashlib.sha256(data).hexdigest() if is_lfs(path) else git_sha1(data)


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> files
    private: bool = False


class FakeHub:
    """Repos in memory; ``fail(path, mode, times)`` makes the next GET/HEADs of a file misbehave."""

    def __init__(self, token: str | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.token = token  # when set: required for private reads and for every write
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.faults: dict[str, list[Any]] = {}  # file name -> [mode, remaining count]
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Add a commit on ``branch`` whose tree is the parent's updated with ``files``."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            parent = repo.refs.get(branch, "")
            tree = {**repo.commits.get(parent, {}), **files}
            digest = hashlib.sha1(parent.encode())
            for name in sorted(tree):
                digest.update(name.encode() + b"\0" + tree[name])
            sha = digest.hexdigest()
            repo.commits[sha], repo.refs[branch] = tree, sha
            return sha

    def add_folder(self, repo_id: str, folder: Path, branch: str = "main") -> str:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        return self.commit(repo_id, files, branch)

    def fail(self, path: str, mode: str, times: int = 1_000_000) -> None:
        assert mode in FAULTS, mode
        self.faults[path] = [mode, times]

    def heal(self) -> None:
        self.faults.clear()

    def hits(self, fragment: str) -> list[tuple[str, str]]:
        return [r for r in self.requests if fragment in r[1]]

    def fault(self, path: str, method: str) -> str | None:
        with self.lock:
            entry = self.faults.get(path)
            if entry is None or entry[1] <= 0:
                return None
            if method == "GET" or entry[0] in ("401", "403"):
                entry[1] -= 1
            return str(entry[0])


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.hub = hub
    return Handler


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self._send(code, json.dumps(doc).encode(), hdrs)

    def _error(self, code: int, error_code: str = "", **extra: str) -> None:
        headers = {"X-Error-Code": error_code} if error_code else {}
        self._json(code, {"error": error_code or str(code)}, {**headers, **extra})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _authorized(self) -> bool:
        return self.hub.token is None or self.headers.get("Authorization") == (
            f"Bearer {self.hub.token}"
        )

    def _repo(self, repo_id: str, write: bool = False) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or ((repo.private or write) and not self._authorized()):
            self._error(401 if self.hub.token else 404, "RepoNotFound")
            return None
        return repo

    def _commit(self, repo: Repo, rev: str) -> str | None:
        sha = repo.refs.get(rev, rev if rev in repo.commits else None)
        if sha is None:
            self._error(404, "RevisionNotFound")
        return sha

    def _route(self) -> None:
        path = urlsplit(self.path).path
        self.hub.requests.append((self.command, path))
        for pattern, method, handler in self._routes():
            match = pattern.match(path)
            if match and self.command in method:
                return handler(**{k: unquote(v) for k, v in match.groupdict().items()})
        self._error(404)

    def _routes(self) -> list[tuple[re.Pattern[str], tuple[str, ...], Any]]:
        return [
            (RESOLVE, ("GET", "HEAD"), self._resolve),
            (API_REPO, ("GET", "POST"), self._api),
            (LFS_BATCH, ("POST",), self._lfs_batch),
            (LFS_PUT, ("PUT",), self._lfs_put),
            (re.compile(r"^/api/repos/create$"), ("POST",), self._create),
            (re.compile(r"^/api/validate-yaml$"), ("POST",), self._validate_yaml),
        ]

    do_GET = do_HEAD = do_POST = do_PUT = _route

    # -- downloads --------------------------------------------------------------------------------
    def _resolve(self, repo: str, rev: str, path: str) -> None:
        found = self._repo(repo)
        sha = found and self._commit(found, rev)
        if found is None or sha is None:
            return
        data = found.commits[sha].get(path)
        if data is None:
            return self._error(404, "EntryNotFound", **{"X-Repo-Commit": sha})
        fault = self.hub.fault(path, self.command)
        if fault in ("401", "403", "500") and (fault != "500" or self.command == "GET"):
            return self._error(int(fault), **{"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag(path, data)}"', "Accept-Ranges": "bytes"}
        if self.command == "HEAD":
            return self._send(200, b"", {**headers, "Content-Length": str(len(data))})
        self._download(data, headers, fault)

    def _download(self, data: bytes, headers: dict[str, str], fault: str | None) -> None:
        start = int(re.sub(r"\D", "", self.headers.get("Range", "").split("-")[0]) or 0)
        body, code = data[start:], 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if fault == "corrupt":  # same size, one byte flipped
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        if fault == "truncate":  # the server sends (and announces) only half the file
            body = body[: len(body) // 2]
        if fault == "drop":  # announces the full length, sends half (none if resumed), hangs up
            self.send_response(code)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(b"" if start else body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(code, body, {**headers, "Content-Length": str(len(body))})

    # -- the API: repo info, create, upload -------------------------------------------------------
    def _api(self, repo: str, op: str, rev: str) -> None:
        found = self._repo(repo, write=op != "revision")
        sha = found and self._commit(found, rev if op == "revision" else "main")
        if found is None or sha is None:
            return
        if op == "revision":
            files = [{"rfilename": p} for p in found.commits[sha]]
            return self._json(200, {"id": repo, "sha": sha, "siblings": files, "private": False})
        if op == "preupload":
            return self._preupload(found, sha)
        self._commit_files(repo, found, rev)

    def _create(self) -> None:
        doc = json.loads(self._body())
        repo_id = f"{doc['organization']}/{doc['name']}"
        if not self._authorized():
            return self._error(401)
        if repo_id in self.hub.repos:
            return self._json(409, {"error": "exists", "url": f"{self.hub.url}/{repo_id}"})
        self.hub.repos[repo_id] = Repo(private=doc.get("visibility") == "private")
        self.hub.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs\n"})
        self._json(200, {"url": f"{self.hub.url}/{repo_id}"})

    def _validate_yaml(self) -> None:
        content = json.loads(self._body())["content"]
        try:
            front = content.split("---")[1] if content.startswith("---") else ""
            yaml.safe_load(front)
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": str(exc)}]})
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, sha: str) -> None:
        files = json.loads(self._body())["files"]
        tree = repo.commits[sha]
        modes = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if is_lfs(f["path"]) else "regular",
                "shouldIgnore": False,
                "oid": etag(f["path"], tree[f["path"]]) if f["path"] in tree else None,
            }
            for f in files
        ]
        self._json(200, {"files": modes})

    def _lfs_batch(self, repo: str) -> None:
        if self._repo(repo, write=True) is None:
            return
        objects = []
        for obj in json.loads(self._body())["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.hub.lfs:
                item["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}"}}
            objects.append(item)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _lfs_put(self, oid: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400)
        self.hub.lfs[oid] = data
        self._send(200)

    def _commit_files(self, repo_id: str, repo: Repo, rev: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        files: dict[str, bytes] = {}
        for item in lines:
            value = item["value"]
            if item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.hub.lfs:
                    return self._error(400)
                files[value["path"]] = self.hub.lfs[value["oid"]]
        sha = self.hub.commit(repo_id, files, rev)
        url = f"{self.hub.url}/{repo_id}/commit/{sha}"
        self._json(200, {"commitOid": sha, "commitUrl": url, "success": True})
