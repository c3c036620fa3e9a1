"""Who may start a session: every refusal over HTTP, with its status, its reason and its count in
/metrics; the token at start-up; the per-connection limits; the serve: section of the schema."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from serve_helpers import ROOT, served

from voicepipe.errors import ProfileError, UsageError
from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
from voicepipe.profile import load_profile
from voicepipe.serve.app import TRANSPORT_ROUTES, build_app
from voicepipe.serve.guard import CLOSE_POLICY, CLOSE_TOO_BIG, PROTOCOL, Guard, RateLimiter
from voicepipe.serve.host import SessionHost
from voicepipe.serve.metrics import open_metrics

DEMO = ROOT / "profiles" / "demo.yaml"
TOKEN = "s3cret-token-for-tests"
PAID = "connection.endpoint=https://example.services.ai.azure.com/"


@pytest.fixture(autouse=True)
def stand_in_transport(monkeypatch):
    monkeypatch.setitem(TRANSPORT_ROUTES, "web", "serve_socket_transport")
    configure_logging(None, console_level="WARNING", session_files=True)
    yield
    shutdown_logging()


def _server(tmp_path, *overrides, environ=None):
    host = SessionHost([served(DEMO, *overrides, name="demo")], log=get_logger(), log_dir=str(tmp_path))
    host.metrics = open_metrics(host.profiles, host.max_sessions)
    guard = Guard(host, environ={} if environ is None else environ)
    return host, build_app(host, guard)


def _run(app, scenario):
    async def go():
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(go())


async def _metric(client, name: str, **labels) -> float:
    text = await (await client.get("/metrics")).text()
    shown = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = r"(?m)^" + re.escape(name + (f"{{{shown}}}" if labels else "")) + r" (\S+)$"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


async def _refusal(client, **kwargs):
    response = await client.get("/demo/call", **kwargs)
    return response.status, (await response.json())["error"], response.headers


def test_a_page_from_another_origin_is_refused_and_counted(tmp_path):
    host, app = _server(tmp_path)

    async def scenario(client):
        status, reason, _ = await _refusal(client, headers={"Origin": "https://evil.example"})
        return status, reason, await _metric(client, "voicepipe_serve_refused_total", profile="demo", reason="origin")

    status, reason, counted = _run(app, scenario)
    assert status == 403
    assert reason == "pages from https://evil.example may not start sessions here (serve.allowed_origins)"
    assert counted == 1.0 and host.counters.refused == {"origin": 1}


def test_listed_origins_and_the_servers_own_are_let_through(tmp_path):
    host, app = _server(tmp_path, "serve.allowed_origins=[https://app.example.com]", "serve.max_sessions=1")

    async def scenario(client):
        own = f"http://{client.server.host}:{client.server.port}"
        host.sessions[0] = None  # full: a caller the origin check lets through meets the capacity check
        codes = []
        for origin in ("https://app.example.com", own, "https://other.example.com"):
            codes.append((await client.get("/demo/call", headers={"Origin": origin})).status)
        del host.sessions[0]
        return codes

    assert _run(app, scenario) == [503, 503, 403]


def test_a_missing_or_wrong_token_is_refused_without_echoing_it(tmp_path):
    host, app = _server(tmp_path, environ={"VOICEPIPE_SERVE_TOKEN": TOKEN})

    async def scenario(client):
        missing = await _refusal(client)
        wrong = await _refusal(client, headers={"Authorization": "Bearer guessed-token"})
        wrong_protocol = await _refusal(client, headers={"Sec-WebSocket-Protocol": f"{PROTOCOL}, voicepipe.token.nope"})
        return missing, wrong, wrong_protocol, await _metric(
            client, "voicepipe_serve_refused_total", profile="demo", reason="unauthorized")

    missing, wrong, wrong_protocol, counted = _run(app, scenario)
    assert missing[0] == 401 and missing[1].startswith("a token is needed: send 'Authorization: Bearer <token>'")
    assert missing[2]["WWW-Authenticate"].startswith("Bearer")
    assert wrong[:2] == (401, "the token is not valid") and wrong_protocol[:2] == (401, "the token is not valid")
    assert "guessed" not in wrong[1] and TOKEN not in missing[1]
    assert counted == 3.0


def test_with_the_token_a_caller_gets_a_session_and_its_turns_reach_the_metrics(tmp_path):
    host, app = _server(tmp_path, environ={"VOICEPIPE_SERVE_TOKEN": TOKEN})

    async def scenario(client):
        # a browser: the token as a subprotocol entry, answered with the protocol alone
        ws = await client.ws_connect("/demo/call", protocols=(PROTOCOL, f"voicepipe.token.{TOKEN}"))
        assert ws.protocol == PROTOCOL
        assert (await ws.receive_str()) == "started"
        active = await _metric(client, "voicepipe_serve_active_sessions", profile="demo")
        for _ in range(1000):  # until the emulator's answer is in the transcript
            transcripts = list(tmp_path.glob("*/transcript.txt"))
            if transcripts and "Caspian" in transcripts[0].read_text():
                break
            await asyncio.sleep(0.02)
        await ws.send_str("bye")
        await ws.receive()  # the server closes when the session has ended
        while host.sessions:
            await asyncio.sleep(0.01)
        return (active, await _metric(client, "voicepipe_serve_active_sessions", profile="demo"),
                await _metric(client, "voicepipe_serve_sessions_ended_total", profile="demo", reason="caller_hung_up"),
                await _metric(client, "voicepipe_turns_total"),
                await _metric(client, "voicepipe_response_duration_seconds_count"))

    active, after, ended, turns, timed = _run(app, scenario)
    assert (active, after, ended) == (1.0, 0.0, 1.0)
    assert turns >= 1 and timed >= 1
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "metrics.json").stat().st_size > 0


def test_a_bearer_header_is_accepted_too(tmp_path):
    host, app = _server(tmp_path, "serve.max_sessions=1", environ={"VOICEPIPE_SERVE_TOKEN": TOKEN})

    async def scenario(client):
        host.sessions[0] = None  # full: a caller with the right token meets the capacity check
        response = await client.get("/demo/call", headers={"Authorization": f"Bearer {TOKEN}"})
        return response.status, (await response.json())["error"], response.headers.get("Retry-After")

    assert _run(app, scenario) == (503, "all lines are busy; try again in a moment", "5")


def test_draining_refuses_callers_and_readyz_says_so(tmp_path):
    host, app = _server(tmp_path)

    async def scenario(client):
        ready = (await client.get("/readyz")).status
        host.accepting = False
        not_ready = await client.get("/readyz")
        return ready, not_ready.status, await not_ready.json(), await _refusal(client), await _metric(
            client, "voicepipe_serve_refused_total", profile="demo", reason="draining")

    ready, status, body, refusal, counted = _run(app, scenario)
    assert (ready, status, body["status"]) == (200, 503, "draining")
    assert refusal[:2] == (503, "the server is shutting down; try again in a moment") and counted == 1.0


def test_a_caller_sending_too_fast_is_cut_off_and_counted(tmp_path):
    host, app = _server(tmp_path, "serve.max_message_rate=0.001")  # a burst of one message

    async def scenario(client):
        ws = await client.ws_connect("/demo/call", protocols=(PROTOCOL,))
        assert (await ws.receive_str()) == "started"
        await ws.send_str("one")
        await ws.send_str("two")
        closing = await ws.receive()
        while host.sessions:
            await asyncio.sleep(0.01)
        return closing, ws.close_code, await _metric(client, "voicepipe_serve_refused_total", profile="demo",
                                                     reason="message_rate")

    closing, code, counted = _run(app, scenario)
    assert code == CLOSE_POLICY and "too many messages: at most 0.001 a second" in closing.extra
    assert counted == 1.0


def test_a_message_over_the_size_bound_is_cut_off_and_counted(tmp_path):
    host, app = _server(tmp_path, "serve.max_message_bytes=1024")

    async def scenario(client):
        ws = await client.ws_connect("/demo/call", protocols=(PROTOCOL,))
        assert (await ws.receive_str()) == "started"
        await ws.send_str("x" * 2000)
        await ws.receive()
        while host.sessions:
            await asyncio.sleep(0.01)
        return ws.close_code, await _metric(client, "voicepipe_serve_refused_total", profile="demo",
                                            reason="message_size")

    assert _run(app, scenario) == (CLOSE_TOO_BIG, 1.0)


def test_a_refused_upgrade_never_holds_a_socket(tmp_path):
    _, app = _server(tmp_path, environ={"VOICEPIPE_SERVE_TOKEN": TOKEN})

    async def scenario(client):
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/demo/call", protocols=(PROTOCOL,))
        return refused.value.status

    assert _run(app, scenario) == 401


# -- at start-up -------------------------------------------------------------------------------


def test_a_paid_endpoint_without_a_token_does_not_start(tmp_path):
    host = SessionHost([served(DEMO, PAID, name="demo")], log=get_logger())
    with pytest.raises(UsageError) as refused:
        Guard(host, environ={})
    message = str(refused.value)
    assert "\n" not in message
    assert "VOICEPIPE_SERVE_TOKEN is not set: export VOICEPIPE_SERVE_TOKEN=<a long random token>" in message
    assert "or set serve.auth: none to let anyone in" in message


def test_auth_none_or_a_token_from_the_named_variable_lets_it_start(tmp_path):
    open_host = SessionHost([served(DEMO, PAID, "serve.auth=none", name="demo")], log=get_logger())
    assert Guard(open_host, environ={}).open_profiles == ["demo"]
    named = SessionHost([served(DEMO, PAID, "serve.token_env=DEMO_CALLER_TOKEN", name="demo")], log=get_logger())
    assert Guard(named, environ={"DEMO_CALLER_TOKEN": TOKEN}).open_profiles == []
    emulator = SessionHost([served(DEMO, name="demo")], log=get_logger())
    assert Guard(emulator, environ={}).open_profiles == ["demo"]
    assert Guard(emulator, environ={"VOICEPIPE_SERVE_TOKEN": TOKEN}).open_profiles == []  # set: required


def test_the_rate_limiter_allows_a_burst_then_the_rate():
    now = [0.0]
    exceeded = []
    limiter = RateLimiter(10, lambda: exceeded.append(1), clock=lambda: now[0])
    assert all(limiter.allow() for _ in range(20))  # two seconds' worth at once
    assert not limiter.allow() and not limiter.allow()
    assert exceeded == [1]  # counted once per connection
    now[0] += 0.1
    assert limiter.allow() and not limiter.allow()


# -- the serve: section ------------------------------------------------------------------------


def _problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile(path, environ={})
    return [problem.replace(str(path), "p.yaml") for problem in err.value.problems]


def test_the_serve_section_is_validated_with_positions(tmp_path):
    assert _problems(tmp_path, "serve:\n  token: abc\n") == [
        "p.yaml:2:3: serve.token: a token must not be written in the profile (export it as VOICEPIPE_SERVE_TOKEN, "
        "or name another variable with serve.token_env)"
    ]
    (origin,) = _problems(tmp_path, "serve:\n  allowed_origins: [https://app.example.com/page]\n")
    assert origin.startswith("p.yaml:2:21: serve.allowed_origins[0]: expected an origin like https://app.example.com")
    (sessions,) = _problems(tmp_path, "serve:\n  max_sessions: 0\n")
    assert sessions.startswith("p.yaml:2:17: serve.max_sessions:")
    (auth,) = _problems(tmp_path, "serve:\n  auth: password\n")
    assert auth.startswith("p.yaml:2:9: serve.auth: expected one of token, none")
    (env,) = _problems(tmp_path, "serve:\n  token_env: not a name\n")
    assert "expected the name of an environment variable" in env


# -- /metrics behind its own token -------------------------------------------------------------------

SCRAPE_TOKEN = "scrape-s3cret-for-tests"


def test_metrics_needs_the_scrape_token_once_one_is_named_and_the_probes_stay_open(tmp_path):
    environ = {"DEMO_SCRAPE_TOKEN": SCRAPE_TOKEN, "VOICEPIPE_SERVE_TOKEN": TOKEN}
    host, app = _server(tmp_path, "serve.metrics_token_env=DEMO_SCRAPE_TOKEN", environ=environ)

    async def scenario(client):
        seen = {}
        for name, headers in (("none", {}), ("wrong", {"Authorization": "Bearer guess"}),
                              ("callers", {"Authorization": f"Bearer {TOKEN}"}),
                              ("basic", {"Authorization": f"Basic {SCRAPE_TOKEN}"}),
                              ("right", {"Authorization": f"Bearer {SCRAPE_TOKEN}"})):
            response = await client.get("/metrics", headers=headers)
            seen[name] = (response.status, await response.text(), response.headers.get("WWW-Authenticate"))
        seen["healthz"] = (await client.get("/healthz")).status
        seen["readyz"] = (await client.get("/readyz")).status
        return seen

    seen = _run(app, scenario)
    assert seen["none"] == (401, "a scrape token is needed: send 'Authorization: Bearer <token>'\n",
                            'Bearer realm="voicepipe metrics"')
    for refused in ("wrong", "callers", "basic"):  # the callers' token is not the scrape token
        status, body, _ = seen[refused]
        assert (status, body) == (401, "the scrape token is not valid\n" if refused != "basic" else seen["none"][1])
    status, body, _ = seen["right"]
    assert status == 200 and 'voicepipe_serve_active_sessions{profile="demo"} 0.0' in body
    assert (seen["healthz"], seen["readyz"]) == (200, 200)
    assert host.counters.refused == {}  # a scrape is not a caller


def test_without_the_key_metrics_stays_open_and_the_start_up_lines_say_so(tmp_path):
    from voicepipe.serve.server import describe

    host, app = _server(tmp_path)
    assert _run(app, lambda client: _metric(client, "voicepipe_serve_session_capacity")) == host.max_sessions
    lines = describe(host, Guard(host, environ={}), "127.0.0.1", 8080)
    assert lines[-1] == ("/metrics is open to anyone who reaches this port (session counts, latency): set "
                         "serve.metrics_token_env to require a bearer token, or keep the port private")
    named = SessionHost([served(DEMO, "serve.metrics_token_env=DEMO_SCRAPE_TOKEN", name="demo")], log=get_logger())
    lines = describe(named, Guard(named, environ={"DEMO_SCRAPE_TOKEN": SCRAPE_TOKEN}), "127.0.0.1", 8080)
    assert lines[-1] == "/metrics needs 'Authorization: Bearer <token>' with the token in DEMO_SCRAPE_TOKEN"
    assert not any(SCRAPE_TOKEN in line for line in lines)


def test_a_named_scrape_token_that_is_unset_or_differs_between_profiles_does_not_start(tmp_path):
    host = SessionHost([served(DEMO, "serve.metrics_token_env=DEMO_SCRAPE_TOKEN", name="demo")], log=get_logger())
    with pytest.raises(UsageError) as unset:
        Guard(host, environ={})
    message = str(unset.value)
    assert "\n" not in message and "serve.metrics_token_env names DEMO_SCRAPE_TOKEN, which is not set" in message
    assert "export DEMO_SCRAPE_TOKEN=<a long random token>" in message
    two = SessionHost([served(DEMO, "serve.metrics_token_env=ONE_TOKEN", name="one"),
                       served(DEMO, "serve.metrics_token_env=OTHER_TOKEN", name="other")], log=get_logger())
    with pytest.raises(UsageError) as differing:
        Guard(two, environ={"ONE_TOKEN": "a", "OTHER_TOKEN": "b"})
    assert "serve.metrics_token_env differs between the profiles served together" in str(differing.value)
    (bad,) = _problems(tmp_path, "serve:\n  metrics_token_env: not a name\n")
    assert bad.startswith("p.yaml:2:22: serve.metrics_token_env: expected the name of an environment variable")
    (written,) = _problems(tmp_path, "serve:\n  metrics_token: abc\n")
    assert "a token must not be written in the profile" in written
