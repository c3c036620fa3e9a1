"""The browser page in a real browser: Debian's Chromium, headless, driven by Playwright, with its
fake microphone playing a WAV of two questions, the second one while the answer to the first plays.

Skipped only where Chromium or Playwright is missing and this is not CI (CI=true must run it).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import wave

import pytest
from serve_helpers import QUESTION, ROOT, served

from voicepipe.audio.wav import load_mono_pcm16, read_wav_info
from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging

CHROMIUM = "/usr/bin/chromium"
WEB_DEMO = ROOT / "profiles" / "web-demo.yaml"
SCREENSHOT_DOC = ROOT / "docs" / "web-demo.png"
CAPTURE_RATE = 48000

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the skip below says so
    sync_playwright = None

_missing = [what for what, ok in (("chromium", Path(CHROMIUM).exists()), ("playwright", sync_playwright)) if not ok]
if _missing and os.environ.get("CI") == "true":
    pytest.fail(f"CI must run the browser test: {', '.join(_missing)} missing (./dev installs both)", pytrace=False)
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"{', '.join(_missing)} not installed (./dev setup)")


def _two_questions(path: Path) -> Path:
    """Silence, the question, a pause shorter than the answer, the question again (a barge-in),
    then a long silence (Chromium loops the file)."""
    speech = load_mono_pcm16(read_wav_info(QUESTION), CAPTURE_RATE)
    gap = lambda s: bytes(int(CAPTURE_RATE * s) * 2)  # noqa: E731
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CAPTURE_RATE)
        out.writeframes(gap(0.5) + speech + gap(3.0) + speech + gap(30.0))
    return path


class Server:
    """The serving app on 127.0.0.1 (an ephemeral port), in a thread with its own event loop."""

    def __init__(self, log_dir: Path):
        from voicepipe.serve.app import build_app
        from voicepipe.serve.guard import Guard
        from voicepipe.serve.host import SessionHost

        self.loop = asyncio.new_event_loop()
        self.host = SessionHost([served(WEB_DEMO, name="web-demo")], log=get_logger(), log_dir=str(log_dir))
        self.app = build_app(self.host, Guard(self.host))
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self._started.set()
        self.loop.run_forever()

    def __enter__(self) -> "Server":
        self._thread.start()
        assert self._started.wait(30), "the server did not start"
        return self

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc) -> None:
        try:
            self.call(self.host.drain(timeout_s=5))
            self.call(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_a_browser_talks_hears_the_answer_and_cuts_it_at_what_it_played(tmp_path):
    capture = _two_questions(tmp_path / "two-questions.wav")
    logs = tmp_path / "runs"
    configure_logging(None, console_level="WARNING", session_files=True)
    receipts: list[tuple[str, float]] = []  # (item_id, ms) as the page sent them
    clears: list[int] = []  # how many receipts had been sent when a `clear` reached the page
    try:
        with Server(logs) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={capture}",
                    "--autoplay-policy=no-user-gesture-required",
                ],
            )
            page = browser.new_page()

            def on_websocket(ws):
                def sent(payload):
                    if isinstance(payload, str) and '"played"' in payload:
                        message = json.loads(payload)
                        receipts.append((message["item_id"], message["ms"]))

                def received(payload):
                    if isinstance(payload, str) and '"clear"' in payload:
                        clears.append(len(receipts))

                ws.on("framesent", sent)
                ws.on("framereceived", received)

            page.on("websocket", on_websocket)
            page.goto(f"http://127.0.0.1:{server.port}/web-demo/")
            page.click("#talk")
            answer = page.locator("#transcript li.assistant").first
            answer.filter(has_text="Caspian").wait_for(timeout=60_000)
            page.locator("#transcript li.assistant.interrupted").first.wait_for(timeout=60_000)
            page.locator("#latency tbody tr").first.wait_for(timeout=60_000)
            heard = page.locator("#transcript li.assistant.interrupted span[data-at]:not(.unheard)").count()
            unheard = page.locator("#transcript li.assistant.interrupted span.unheard").count()
            shot = page.screenshot(full_page=True)
            page.click("#talk")  # hang up
            page.locator("#state[data-state=idle]").wait_for(timeout=30_000)
            browser.close()
            for _ in range(300):  # the session ends once the server has read the hang-up
                if not server.host.sessions:
                    break
                server.call(asyncio.sleep(0.1))
            assert server.host.counters.ended == {"caller_hung_up": 1}
    finally:
        shutdown_logging()

    (run_dir,) = [d for d in logs.iterdir() if d.is_dir()]
    (run_dir / "page.png").write_bytes(shot)
    if not SCREENSHOT_DOC.exists():  # the README's picture: delete it to take a new one
        SCREENSHOT_DOC.write_bytes(shot)
    lines = _lines(run_dir)
    local = [line["event"] for line in lines if line["direction"] == "local"]
    sent = [line["event"] for line in lines if line["direction"] == "client"]

    # the page's receipts reached the server: playback started by the page's clock
    assert any(e["type"] == "playback.started" for e in local)
    assert receipts and all(ms >= 0 for _, ms in receipts)

    # the second question cut the answer where the page had played it: the truncate names the
    # played position the receipts gave, no later than the page's last receipt for that item
    (cut,) = [e for e in local if e["type"] == "playback.interrupted"]
    (truncate,) = [e for e in sent if e["type"] == "conversation.item.truncate"]
    assert truncate["item_id"] == cut["item_id"]
    item_receipts = [ms for item_id, ms in receipts if item_id == cut["item_id"]]
    assert clears, "the page never got a clear"
    before_clear = [ms for item_id, ms in receipts[: clears[0]] if item_id == cut["item_id"]]
    assert truncate["audio_end_ms"] in {int(ms) for ms in before_clear}
    assert 0 < truncate["audio_end_ms"] <= max(item_receipts) < cut["generated_ms"]
    assert max(item_receipts) - truncate["audio_end_ms"] < 250  # receipts every ~21 ms, plus the trip
    assert not any(e["type"] == "response.cancel" for e in sent)  # the emulator's VAD interrupts it

    assert heard and unheard  # the page greys out what the listener never heard

    transcript = (run_dir / "transcript.txt").read_text()
    assert "Caspian" in transcript and "interrupted at" in transcript
