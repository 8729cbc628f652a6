"""HTML reports: the real CLI writes them, headless Chromium (DevTools protocol) checks them."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

from diffsep_cli.io.pipeline import FileResult
from diffsep_cli.report import figures, media
from diffsep_cli.report.separate import write_separate_report

ROOT = Path(__file__).resolve().parents[1]
SCREENS = ROOT / "runs" / "report-screens"  # gitignored; look at them after a change
RATE = 16000
# what the test reads from the live page (evaluated through the DevTools protocol)
PAGE_STATE = """(async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const audios = [...document.querySelectorAll('audio')];
  await Promise.all(audios.map(a => a.readyState >= 1 || a.error ? 0 : new Promise(done => {
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    setTimeout(done, 20000);
  })));
  await Promise.all([...document.images].map(i => i.decode().catch(() => 0)));
  return {
    audio: audios.map(a => ({src: a.getAttribute('src'), ready: a.readyState,
                             error: a.error && a.error.code, duration: a.duration})),
    images: [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
    rows: [...document.querySelectorAll('table.main tr')].slice(1).map(r => r.innerText),
    text: document.body.innerText,
    injected: document.querySelectorAll('main b, main script, script').length,
  };
})()"""


class Browser:
    """Headless Chromium over the DevTools protocol: open a page, evaluate, screenshot."""

    def __init__(self, profile: Path) -> None:
        import websocket

        exe = shutil.which("chromium") or shutil.which("google-chrome")
        assert exe, "the report tests need Chromium: apt-get install -y chromium"
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--mute-audio"]
        args += ["--no-first-run", "--disable-extensions", "--disable-background-networking"]
        args += ["--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(
            [exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n")):
            assert time.monotonic() < deadline and self.proc.poll() is None, (
                "Chromium did not start"
            )
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=120, suppress_origin=True
        )
        self.next_id, self.events = 0, list[dict[str, Any]]()
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]
            self.events.append(msg)

    def open(self, page: Path) -> dict[str, Any]:
        """Load ``page`` from file:// and return its live state once media and images load."""
        self.events.clear()
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=page.absolute().as_uri())
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv()))
        state = self.call(
            "Runtime.evaluate", expression=PAGE_STATE, awaitPromise=True, returnByValue=True
        )
        return state["result"]["value"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads since the page was opened."""
        found = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                found.append(str(p["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(str(p["exceptionDetails"]))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
        return found

    def screenshot(self, path: Path, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def models(labelled_models: Path) -> Path:
    """The tiny priors of conftest, with a class-conditional sfx."""
    return labelled_models


def diffsep(models: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (one thread: tiny priors, shared CI cores)."""
    env = {**os.environ, "DIFFSEP_MODELS": str(models), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "diffsep_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0 or not ok, proc.stderr
    return proc


def tone(path: Path, seconds: float, freq: float = 440.0, fmt: str | None = None) -> Path:
    t = np.arange(round(seconds * RATE)) / RATE
    noise = np.random.default_rng(int(freq)).standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(2 * np.pi * freq * t) + 0.02 * noise, RATE, format=fmt)
    return path


def check_page(browser: Browser, page: Path, shot: str, height: int = 1800) -> dict[str, Any]:
    """Every player loads its file (with the file's duration), every image decodes, no errors."""
    state = browser.open(page)
    assert state["audio"] and state["images"]
    for a in state["audio"]:
        assert a["error"] is None and a["ready"] >= 1, a
        expected = sf.info(str(page.parent / unquote(a["src"]))).duration
        assert abs(a["duration"] - expected) < 0.03, (a, expected)
    assert all(i["width"] > 0 for i in state["images"]), state["images"]
    assert browser.errors() == []
    assert state["injected"] == 0  # no markup from file names, no scripts at all
    browser.screenshot(SCREENS / shot, height)
    return state


def test_separate_report_in_a_browser(models: Path, browser: Browser, tmp_path: Path) -> None:
    inputs = tmp_path / "in put"
    tone(inputs / "<b>x<" / "b>.wav", 0.5)  # the path reads <b>x</b>.wav
    tone(inputs / "grüße & co.flac", 0.4, 660)
    tone(inputs / "tone.aiff", 0.3, 880, fmt="AIFF")  # browsers cannot play AIFF
    out = tmp_path / "out dir"
    proc = diffsep(
        models,
        "separate",
        str(inputs),
        "-s",
        "speech,sfx:Bark",
        "-o",
        str(out),
        "--steps",
        "1",
        "--report",
    )
    assert f"# report: {out / 'report.html'}" in proc.stdout
    moved = tmp_path / "moved é"  # relative links: the folder still plays elsewhere
    out.rename(moved)
    state = check_page(browser, moved / "report.html", "separate.png")
    assert len(state["rows"]) == 3 and len(state["audio"]) == 9
    assert "\t<b>x</b>.wav\t" in state["text"] and "grüße & co.flac" in state["text"]
    assert "OGG preview (not playable in browsers)" in state["text"]  # the AIFF outputs
    assert "OGG preview (outside the report's folder)" in state["text"]  # the inputs
    revisions = [
        r for r in state["text"].split() if len(r) == 12 and set(r) <= set("0123456789abcdef")
    ]
    assert len(revisions) >= 2 and "Bark" in state["text"] and "dirac" in state["text"]
    played = {unquote(a["src"]) for a in state["audio"]}
    assert "b>/speech.wav" in played and "grüße & co/Bark.flac" in played


def test_fifty_files_stay_one_readable_page(models: Path, browser: Browser, tmp_path: Path) -> None:
    for i in range(50):
        tone(tmp_path / "in" / f"clip {i:02d}.wav", 0.25, 200 + 20 * i)
    page = tmp_path / "report" / "all.html"
    diffsep(
        models,
        "separate",
        str(tmp_path / "in"),
        "-s",
        "speech",
        "-o",
        str(tmp_path / "out"),
        "--steps",
        "1",
        "-q",
        "--report-path",
        str(page),
    )
    state = check_page(browser, page, "separate-50.png", height=1400)
    assert len(state["rows"]) == 50 and len(state["audio"]) == 100
    assert state["text"].index("clip 49.wav") < state["text"].index("Settings")  # table first


def test_bench_report_in_a_browser(models: Path, browser: Browser, tmp_path: Path) -> None:
    data = tmp_path / "set"
    for i in range(4):
        folder = data / f"m{i}"
        s1, s2 = tone(folder / "s1.wav", 0.25, 300 + 50 * i), tone(folder / "s2.wav", 0.25, 2000)
        sf.write(folder / "mix.wav", sf.read(s1)[0] + sf.read(s2)[0], RATE)
        (folder / "sources.json").write_text('["speech", "sfx"]')
    page = tmp_path / "rep ü" / "bench.html"
    proc = diffsep(
        models, "bench", str(data), "--steps", "1", "--report", str(page), "--report-items", "1"
    )
    assert (page.parent / "bench_files" / "estimates" / "diffsep" / "m0" / "speech.wav").is_file()
    state = check_page(browser, page, "bench.png", height=2400)
    assert [r.split("\t")[:2] for r in state["rows"]] == [
        ["sfx+speech", s] for s in ("diffsep", "mixture", "oracle-irm")
    ]
    assert len(state["images"]) == 2 + 2 * 7  # two plots; worst and best: mixture, 2 x 3
    assert "worst" in state["text"] and "best" in state["text"], proc.stdout


def test_bad_report_paths_fail_before_any_work(models: Path, tmp_path: Path) -> None:
    mix, blocker = tone(tmp_path / "mix.wav", 0.25), tmp_path / "file"
    blocker.write_text("x")
    for args in (
        [
            "separate",
            str(mix),
            "-s",
            "speech",
            "-o",
            str(tmp_path / "o"),
            "--report-path",
            str(blocker / "r.html"),
        ],
        ["bench", str(tmp_path), "--report", str(blocker / "r.html")],
    ):
        proc = diffsep(models, *args, ok=False)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert f"cannot write the report {blocker / 'r.html'}" in proc.stderr
    assert not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "report.html").write_text("old")
    proc = diffsep(
        models,
        "separate",
        str(mix),
        "-s",
        "speech",
        "-o",
        str(tmp_path / "o"),
        "--report",
        ok=False,
    )
    assert proc.returncode == 1 and "use --overwrite" in proc.stderr, proc.stderr


def test_interrupted_report_leaves_no_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mix = tone(tmp_path / "mix.wav", 0.25)
    results = [FileResult(mix, {"a": tone(tmp_path / "a.wav", 0.25)}, 0.25)]
    saved = figures.SpectrogramPlot.save

    def interrupt_second(self: figures.SpectrogramPlot, out: Path) -> None:
        if list((tmp_path / "r_files" / "img").glob("*.png")):
            raise KeyboardInterrupt
        saved(self, out)

    monkeypatch.setattr(figures.SpectrogramPlot, "save", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        write_separate_report(tmp_path / "r.html", results, [], {})
    assert not (tmp_path / "r.html").exists()
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name]


def test_players_and_links(tmp_path: Path) -> None:
    assert media.playable(tone(tmp_path / "a.wav", 0.1))
    assert media.playable(tone(tmp_path / "a.flac", 0.1))
    assert not media.playable(tone(tmp_path / "a.aiff", 0.1, fmt="AIFF"))
    sf.write(tmp_path / "d.wav", np.zeros(100), RATE, subtype="DOUBLE")
    assert not media.playable(tmp_path / "d.wav")
    page = tmp_path / "r" / "p.html"
    url = media.relative_url(tmp_path / "a b" / "ü&<#?%.wav", page.parent)
    assert url == "../a%20b/%C3%BC%26%3C%23%3F%25.wav"
    assert media.files_dir(page) == tmp_path / "r" / "p_files"
