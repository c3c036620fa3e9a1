"""`voicepipe serve` as a real process: where it serves, draining on SIGTERM, a second signal,
several workers under gunicorn (answering together, a killed one replaced), and its usage errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from serve_helpers import ROOT

from voicepipe.cli import main
from voicepipe.serve.guard import PROTOCOL

DEMO = ROOT / "profiles" / "demo.yaml"
PROCESS = ROOT / "tests" / "serve_process.py"
PAID = "connection.endpoint=https://example.services.ai.azure.com/"


class Server:
    """``voicepipe serve profiles/demo.yaml`` on a free port, run folders in ``tmp_path/runs``."""

    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None):
        self.runs = tmp_path / "runs"
        self.stderr_path = tmp_path / "stderr.txt"
        env = {key: value for key, value in os.environ.items() if key not in ("VOICEPIPE_SERVE_TOKEN",
                                                                           "PROMETHEUS_MULTIPROC_DIR")} | (env or {})
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(PROCESS), str(DEMO), "--port", "0", "--log-dir", str(self.runs),
                 "--set", "connection.emulator.speed=0", *args],
                stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
            )
        self.first_line = self.proc.stdout.readline()
        assert self.first_line.startswith("serving "), self.first_line + self.stderr()
        self.base = re.search(r"http://[^/]+", self.first_line).group(0)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=120)
        finally:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        found = re.search(r"(?m)^" + re.escape(name) + r" (\S+)$", text)
        return float(found.group(1)) if found else 0.0

    def children(self) -> set[int]:
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.add(int(entry.name))
        return found


@pytest.fixture
def server_at(tmp_path):
    started = []

    def start(*args: str, env: dict | None = None) -> Server:
        started.append(Server(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        server.stop()


async def _until(check, what: str, tries: int = 1500):
    for _ in range(tries):
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def _receive(ws) -> aiohttp.WSMessage:
    """The next message; a server that never sends one fails the test instead of hanging it."""
    return await asyncio.wait_for(ws.receive(), 120)


def _ending(runs: Path) -> str:
    (run_dir,) = runs.iterdir()
    assert (run_dir / "metrics.json").stat().st_size > 0  # the end hooks ran: files complete
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return lines[-1]["event"]["reason"]


def test_it_says_where_each_profile_is_and_answers_health(server_at):
    server = server_at()
    assert re.fullmatch(r"serving \S+demo\.yaml at http://127\.0\.0\.1:\d+/demo/ \(anyone may call: emulator, "
                        r"no token set\)\n", server.first_line)
    status, body = server.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert server.get("/readyz")[0] == 200
    assert 'voicepipe_serve_active_sessions{profile="demo"} 0.0' in server.get("/metrics")[1]
    server.signal(signal.SIGTERM)
    assert server.wait() == 0


def test_sigterm_drains_then_the_session_ends_as_the_caller_chooses(server_at):
    server = server_at("--set", "serve.drain_timeout_s=300")

    async def call():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.base + "/demo/call", protocols=(PROTOCOL,))
            assert (await _receive(ws)).data == "started"
            server.signal(signal.SIGTERM)
            await _until(lambda: server.get("/readyz")[0] == 503, "readyz says 503 while draining")
            refused = server.get("/demo/call")
            assert server.proc.poll() is None  # still serving the caller it has
            await ws.send_str("bye")
            await _receive(ws)
            return refused

    status, body = asyncio.run(call())
    assert (status, json.loads(body)["error"]) == (503, "the server is shutting down; try again in a moment")
    assert server.wait() == 0
    assert _ending(server.runs) == "caller_hung_up"


def test_a_second_signal_ends_the_sessions_at_once_with_complete_files(server_at):
    server = server_at("--set", "serve.drain_timeout_s=300")

    async def call():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.base + "/demo/call", protocols=(PROTOCOL,))
            assert (await _receive(ws)).data == "started"
            server.signal(signal.SIGTERM)
            await _until(lambda: server.get("/readyz")[0] == 503, "readyz says 503 while draining")
            server.signal(signal.SIGINT)
            closing = await _receive(ws)
            return closing.extra

    assert asyncio.run(call()) == "server_stopped"
    assert server.wait() == 130
    assert _ending(server.runs) == "server_stopped"


def test_two_workers_share_the_port_a_killed_one_is_replaced_and_sigterm_drains(server_at):
    pytest.importorskip("gunicorn")
    server = server_at("--workers", "2", "--max-sessions", "3", "--set", "serve.drain_timeout_s=0.5")

    async def scenario():
        # each worker reports its capacity; the sum over the live workers shows both answer for the pod
        await _until(lambda: server.metric("voicepipe_serve_session_capacity") == 6.0, "both workers up")
        first = server.children()
        assert len(first) == 2
        os.kill(min(first), signal.SIGKILL)
        await _until(lambda: len(server.children() - first) == 1 and len(server.children()) == 2, "a new worker")
        await _until(lambda: server.metric("voicepipe_serve_session_capacity") == 6.0, "the new worker up")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.base + "/demo/call", protocols=(PROTOCOL,))
            assert (await _receive(ws)).data == "started"
            assert server.metric('voicepipe_serve_active_sessions{profile="demo"}') == 1.0
            server.signal(signal.SIGTERM)
            closing = await _receive(ws)  # the drain timeout passes and the session is ended
            return closing.extra

    assert asyncio.run(scenario()) == "server_draining"
    assert server.wait() == 0
    assert _ending(server.runs) == "server_draining"


def _tcp_sockets(pid: int, port: int) -> dict[str, int]:
    """How many of a process's TCP sockets on local ``port`` are listening / established."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = {"listening": 0, "established": 0}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                state = {"0A": "listening", "01": "established"}.get(fields[3])
                if state:
                    found[state] += 1
    return found


def test_each_worker_listens_on_the_port_itself_and_callers_spread_over_them(server_at):
    """One socket shared by all hands connections to the worker that waited last; a socket per
    worker (SO_REUSEPORT) lets the kernel spread them."""
    pytest.importorskip("gunicorn")
    if not sys.platform.startswith("linux"):
        pytest.skip("SO_REUSEPORT spreads connections on Linux only")
    server = server_at("--workers", "2", "--max-sessions", "3")
    port = int(server.base.rsplit(":", 1)[1])
    asyncio.run(_until(lambda: server.metric("voicepipe_serve_session_capacity") == 6.0, "both workers up"))
    workers = sorted(server.children())
    assert len(workers) == 2
    assert [_tcp_sockets(pid, port)["listening"] for pid in workers] == [1, 1]
    assert _tcp_sockets(server.proc.pid, port)["listening"] == 0  # the master holds the port, not a queue

    callers = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        def both_took_theirs() -> bool:
            held = [_tcp_sockets(pid, port)["established"] for pid in workers]
            return sum(held) == 40 and min(held) >= 8  # binomial(40, 1/2) is below 8 once in 10^5

        asyncio.run(_until(both_took_theirs, "both workers accept callers, at least 8 of 40 each"))
    finally:
        for each in callers:
            each.close()


def test_the_token_admits_a_caller_and_appears_in_no_log_or_file(server_at):
    token = "tok-" + "7" * 40
    server = server_at("--set", "logging.file_level=DEBUG", env={"VOICEPIPE_SERVE_TOKEN": token})
    assert server.first_line.endswith("(callers present the token in VOICEPIPE_SERVE_TOKEN)\n")

    async def call():
        async with aiohttp.ClientSession() as http:
            refused = await http.get(server.base + "/demo/call", headers={"Authorization": "Bearer " + token[:-1]})
            ws = await http.ws_connect(server.base + "/demo/call", protocols=(PROTOCOL, "voicepipe.token." + token))
            assert (await _receive(ws)).data == "started"
            await ws.send_str("bye")
            await _receive(ws)
            return refused.status

    assert asyncio.run(call()) == 401
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert _ending(server.runs) == "caller_hung_up"
    written = [server.stderr()] + [path.read_text(errors="replace") for path in server.runs.rglob("*") if path.is_file()
                                   and path.suffix != ".wav"]
    assert not [text for text in written if token in text or token[:-1] in text]


# -- usage errors --------------------------------------------------------------------------------


def _one_line_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_a_paid_profile_without_a_token_does_not_start(capsys, monkeypatch):
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "k" * 32)
    monkeypatch.delenv("VOICEPIPE_SERVE_TOKEN", raising=False)
    message = _one_line_error(capsys, "serve", str(DEMO), "--set", PAID, "--port", "0")
    assert message.startswith(f"voicepipe: {DEMO}: demo opens paid sessions but VOICEPIPE_SERVE_TOKEN is not set")
    assert "k" * 32 not in message


def test_bad_numbers_are_one_line_usage_errors(capsys):
    assert _one_line_error(capsys, "serve", str(DEMO), "--workers", "0") == "voicepipe: --workers: expected 1 or more, got 0"
    assert _one_line_error(capsys, "serve", str(DEMO), "--port", "70000") == "voicepipe: --port: expected 0 to 65535, got 70000"
    assert _one_line_error(capsys, "serve", str(DEMO), "--max-sessions", "0") == (
        "voicepipe: --max-sessions: expected 1 or more, got 0")


def test_workers_without_gunicorn_is_a_one_line_error(capsys, monkeypatch):
    for name in [name for name in sys.modules if name == "gunicorn" or name.startswith("gunicorn.")] + ["gunicorn"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "aiohttp.worker", None)
    monkeypatch.delitem(sys.modules, "voicepipe.serve.workers", raising=False)
    import voicepipe.serve

    # imported before (tests/test_eventloop.py): `from voicepipe.serve import workers` would find it here
    monkeypatch.delattr(voicepipe.serve, "workers", raising=False)
    assert _one_line_error(capsys, "serve", str(DEMO), "--workers", "2") == (
        "voicepipe: --workers needs gunicorn: pip install 'voicepipe-live[serve]' (or leave out --workers)")


def test_serve_help_explains_the_token_and_the_signals(capsys):
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for words in ("VOICEPIPE_SERVE_TOKEN", "voicepipe.token.<token>", "--workers N", "SIGTERM", "/metrics"):
        assert words in out


@pytest.mark.parametrize("holder", ["listening", "listening, SO_REUSEPORT", "bound, SO_REUSEPORT"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_a_one_line_usage_error(capsys, monkeypatch, holder, workers):
    """Whoever holds the port, one process or several: another server of ``reuse_port`` sockets
    would otherwise share the callers silently."""
    from voicepipe.serve.app import TRANSPORT_ROUTES

    if workers != "1":
        pytest.importorskip("gunicorn")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setitem(TRANSPORT_ROUTES, "web", "serve_socket_transport")

    with socket.socket() as taken:
        if "SO_REUSEPORT" in holder:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        if holder.startswith("listening"):
            taken.listen()
        port = taken.getsockname()[1]
        message = _one_line_error(capsys, "serve", str(DEMO), "--port", str(port), "--workers", workers)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # the temporary metrics folder is gone, and with it the setting
    assert message.startswith(f"voicepipe: cannot listen on 127.0.0.1:{port}: ")
    assert message.endswith("(choose another --host/--port)")


@pytest.mark.parametrize("spread", [True, False])
def test_workers_listen_on_one_chosen_port_with_or_without_the_kernel_spreading(monkeypatch, spread):
    """``--port 0`` is one free port for every worker; without SO_REUSEPORT's spreading (not Linux)
    gunicorn's master listens and its workers share the socket, as before."""
    pytest.importorskip("gunicorn")
    from voicepipe.serve import workers
    from voicepipe.serve.server import ServeOptions

    monkeypatch.setattr(workers, "SPREAD_BY_KERNEL", spread)
    application = workers.WorkersApplication(ServeOptions([str(DEMO)], port=0, workers=2), 1.0, lambda port: None)
    try:
        assert application.port > 0
        assert application.cfg.bind == [f"127.0.0.1:{application.port}"]
        assert application.cfg.reuse_port is spread
        assert (application.reserved is not None) is spread
        if spread:  # held, so another server cannot take it; joinable by the workers' sockets
            assert application.reserved.getsockname()[1] == application.port
            with socket.socket() as joiner:
                joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                joiner.bind(("127.0.0.1", application.port))
    finally:
        if application.reserved is not None:
            application.reserved.close()
