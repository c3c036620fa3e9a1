"""ACS Call Automation: the Event Grid webhook answering through the SDK, and calls over the media socket."""

import asyncio
import base64
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from phone_helpers import AcsPhone, phone_served, serving, speech

from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
from voicepipe.serve import acs
from voicepipe.serve.host import SessionHost

ACCESS_KEY = base64.b64encode(b"a made-up ACS access key, 32 byt").decode()

# Event Grid schema, as delivered to a webhook:
# https://learn.microsoft.com/azure/event-grid/webhook-event-delivery
VALIDATION = [{
    "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/acs",
    "subject": "",
    "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
             "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/voicepipe/validate?id=0000"},
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2024-11-07T19:25:00.0000000Z",
    "metadataVersion": "1",
    "dataVersion": "2",
}]
# https://learn.microsoft.com/azure/event-grid/communication-services-voice-video-events
INCOMING_CALL = [{
    "id": "7dec6eed-129c-43f3-a2bf-4d6c1d8d5a6d",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.communication/communicationservices/acs",
    "subject": "/phonenumber/14255550199",
    "data": {
        "to": {"kind": "phoneNumber", "rawId": "4:+14255550199", "phoneNumber": {"value": "+14255550199"}},
        "from": {"kind": "phoneNumber", "rawId": "4:+14255550123", "phoneNumber": {"value": "+14255550123"}},
        "serverCallId": "aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkuc2t5cGUuY29tL2FwaS92Mi9jcC9jb252LXVzZWEtMDIuY29udi5za3lwZS5jb20vY29udi8xMjM0",
        "callerDisplayName": "",
        "incomingCallContext": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJjYyI6IkgzNHNJQUFBQUFBQUJBQ..",
        "correlationId": "d2ba9a84-6c42-4b3f-a6f0-8f5b3e2c2b1c",
    },
    "eventType": "Microsoft.Communication.IncomingCall",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2024-11-07T19:25:02.1234567Z",
}]


@pytest.fixture
def env(monkeypatch):
    for name in ("VOICEPIPE_PUBLIC_URL", "VOICEPIPE_MEDIA_SECRET", "VOICEPIPE_ACS_EVENTS_KEY", "AZURE_COMMUNICATION_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 (the SDK speaks HTTPS only) and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tmp_path.mkdir(exist_ok=True)
    cert_file, key_file = tmp_path / "acs.pem", tmp_path / "acs.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


CALL_CONNECTION_ID = "401f3500-62cd-46d9-8b4d-6e6f3b0e8a3a"


class FakeAcs:
    """A local HTTPS server standing in for the ACS endpoint: records what the SDK sends."""

    def __init__(self, env, tmp_path):
        import ssl

        self.requests = []
        self.hang_ups = []
        #: what the terminate request is answered with (204: the call is ended)
        self.hang_up_status = 204
        cert, key = _self_signed(tmp_path.parent / f"{tmp_path.name}-tls")
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.load_cert_chain(cert, key)
        env.setenv("SSL_CERT_FILE", str(cert))  # the SDK's HTTPS client trusts it as it would a CA

    async def start(self):
        server = TestServer(self.app(), host="127.0.0.1")
        await server.start_server(ssl=self.ssl)
        return server, f"https://127.0.0.1:{server.port}"

    async def answer(self, request):
        body = await request.json()
        self.requests.append({"path": request.path, "query": dict(request.query), "headers": dict(request.headers),
                              "body": body})
        return web.json_response({
            "callConnectionId": CALL_CONNECTION_ID,
            "serverCallId": INCOMING_CALL[0]["data"]["serverCallId"],
            "callbackUri": body.get("callbackUri"),
            "callConnectionState": "connecting",
        })

    async def terminate(self, request):
        # Call Connection - Terminate Call, what hang_up(is_for_everyone=True) sends:
        #   POST {endpoint}/calling/callConnections/{callConnectionId}:terminate?api-version=...
        #   (Repeatability-Request-ID and Repeatability-First-Sent headers, no body) -> 204 No Content
        # https://learn.microsoft.com/rest/api/communication/callautomation/call-connection/terminate-call
        self.hang_ups.append({"call_connection_id": request.match_info["call"], "query": dict(request.query),
                              "headers": dict(request.headers), "body": await request.read()})
        if self.hang_up_status != 204:
            return web.json_response({"error": {"code": "8522", "message": "Call not found."}}, status=self.hang_up_status)
        return web.Response(status=204)

    def app(self):
        app = web.Application()
        app.router.add_post("/calling/callConnections:answer", self.answer)
        app.router.add_post("/calling/callConnections/{call}:terminate", self.terminate)
        return app


def _run(tmp_path, scenario, *served):
    configure_logging(None, console_level="WARNING", session_files=True)
    host = SessionHost(list(served), log=get_logger(), log_dir=str(tmp_path))
    try:
        return asyncio.run(scenario(host)), host
    finally:
        shutdown_logging()


async def _until(predicate, limit_s=60.0):
    for _ in range(int(limit_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the call did not get there")


async def _call(env, http, base, fake_acs_url, name="demo"):
    """ACS delivering an IncomingCall: the answer request the SDK sent, and its media URL."""
    env.setenv("AZURE_COMMUNICATION_CONNECTION_STRING", f"endpoint={fake_acs_url}/;accesskey={ACCESS_KEY}")
    return await http.post(f"{base}/{name}/acs/events", json=INCOMING_CALL)


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_the_webhook_validates_the_subscription_and_answers_a_call_through_the_sdk(tmp_path, env, capsys):
    fake = FakeAcs(env, tmp_path)

    async def scenario(host):
        acs_server, acs_url = await fake.start()
        try:
            async with serving(host) as (base, http):
                async with http.post(f"{base}/acs/events", json=VALIDATION) as response:
                    validation = (response.status, await response.json())
                async with await _call(env, http, base, acs_url) as response:
                    answered = response.status
                return validation, answered, base
        finally:
            await acs_server.close()

    (validation, answered, base), host = _run(tmp_path, scenario, phone_served("acs"))
    assert validation == (200, {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    assert answered == 200
    (request,) = fake.requests
    assert request["query"]["api-version"]
    assert request["headers"]["Authorization"].startswith("HMAC-SHA256")
    body = request["body"]
    assert body["incomingCallContext"] == INCOMING_CALL[0]["data"]["incomingCallContext"]
    assert body["callbackUri"] == f"{base}/demo/acs/callbacks"
    streaming = body["mediaStreamingOptions"]
    assert streaming["transportUrl"].startswith(base.replace("http://", "ws://") + "/demo/acs/media?token=")
    assert (streaming["transportType"], streaming["contentType"], streaming["audioChannelType"]) == ("websocket", "audio", "mixed")
    assert streaming["startMediaStreaming"] is True and streaming["enableBidirectional"] is True
    assert streaming["audioFormat"] == "pcm24KMono"
    logged = capsys.readouterr()
    assert ACCESS_KEY not in logged.err + logged.out


def test_the_webhook_key_and_the_media_token_keep_strangers_out(tmp_path, env):
    env.setenv("VOICEPIPE_ACS_EVENTS_KEY", "k3y")

    async def scenario(host):
        async with serving(host) as (base, http):
            async with http.post(f"{base}/demo/acs/events", json=VALIDATION) as response:
                no_key = response.status
            async with http.post(f"{base}/demo/acs/events?key=k3y", json=VALIDATION) as response:
                with_key = response.status
            async with http.post(f"{base}/demo/acs/events?key=k3y", data="{oops") as response:
                malformed = response.status
            async with http.get(f"{base}/demo/acs/media?token=1.2.3") as response:
                no_token = response.status
            return no_key, with_key, malformed, no_token

    (no_key, with_key, malformed, no_token), host = _run(tmp_path, scenario, phone_served("acs"))
    assert (no_key, with_key, malformed, no_token) == (403, 200, 400, 403)
    assert host.counters.started == 0


async def _answered(env, http, base, fake):
    acs_server, acs_url = await fake.start()
    async with await _call(env, http, base, acs_url) as response:
        assert response.status == 200
    await acs_server.close()
    return fake.requests[-1]["body"]["mediaStreamingOptions"]["transportUrl"]


async def _answer_and_stream(env, http, base, acs_url, fake):
    """The call answered through the stand-in (left running); its media URL."""
    async with await _call(env, http, base, acs_url) as response:
        assert response.status == 200
    return fake.requests[-1]["body"]["mediaStreamingOptions"]["transportUrl"]


async def _server_ends_the_call(env, host, fake, named):
    """A call whose session the server ends (a drain); its transport."""
    acs_server, acs_url = await fake.start()
    try:
        async with serving(host) as (base, http):
            phone = AcsPhone(http, await _answer_and_stream(env, http, base, acs_url, fake), call_connection_id=named)
            await phone.connect()
            phone.say(speech(24000))
            await _until(lambda: "Caspian" in "".join(p.read_text() for p in host_runs(host, "transcript.txt")))
            (live,) = host.sessions.values()
            await host.drain(timeout_s=0)
            await asyncio.wait_for(phone.closed.wait(), 30)  # the media socket is closed, and the call...
            await live.transport.close("server_draining")  # a second close sends nothing more
            await phone.stop()
            return live.transport
    finally:
        await acs_server.close()


def host_runs(host, name):
    return [live.run_dir / name for live in host.sessions.values() if live.run_dir and (live.run_dir / name).exists()]


@pytest.mark.parametrize("named", ["5e1a7c2b-0d4f-4e8a-9b61-3c2f8a9d0e17", None], ids=["named-by-the-socket", "answered-here"])
def test_when_the_server_ends_an_acs_call_it_hangs_the_call_up_once(tmp_path, env, named, capsys):
    fake = FakeAcs(env, tmp_path)
    _, host = _run(tmp_path, lambda host: _server_ends_the_call(env, host, fake, named), phone_served("acs"))
    assert host.counters.ended == {"server_draining": 1}
    (hang_up,) = fake.hang_ups
    # the call the media socket named, else the one this process answered with its media token
    assert hang_up["call_connection_id"] == (named or CALL_CONNECTION_ID)
    assert hang_up["query"]["api-version"]
    assert hang_up["headers"]["Authorization"].startswith("HMAC-SHA256")
    assert hang_up["headers"]["Repeatability-Request-ID"] and not hang_up["body"]
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["reason"] == "server_draining"
    assert ACCESS_KEY not in capsys.readouterr().err


def test_a_hang_up_the_service_refuses_is_one_logged_line_and_the_session_still_ends(tmp_path, env, capsys):
    fake = FakeAcs(env, tmp_path)
    fake.hang_up_status = 404  # the call is gone already

    _, host = _run(tmp_path, lambda host: _server_ends_the_call(env, host, fake, CALL_CONNECTION_ID), phone_served("acs"))
    assert host.counters.ended == {"server_draining": 1}
    assert len(fake.hang_ups) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "acs_hang_up_failed" in line]
    assert CALL_CONNECTION_ID in line and "Traceback" not in err


def test_a_call_gets_an_answer_and_silent_frames_count_as_audio_time(tmp_path, env):
    fake = FakeAcs(env, tmp_path)

    async def scenario(host):
        async with serving(host) as (base, http):
            phone = AcsPhone(http, await _answered(env, http, base, fake))
            await phone.connect()
            phone.say(speech(24000))
            await _until(lambda: "Caspian" in "".join(p.read_text() for p in tmp_path.glob("*/transcript.txt")))
            await _until(lambda: phone.received_samples > 24000 and not phone.queue)
            await asyncio.sleep(0.5)
            await _until(lambda: not phone.queue)
            await phone.hang_up()
            await _until(lambda: not host.sessions)
            return phone

    phone, host = _run(tmp_path, scenario, phone_served("acs"))
    (run_dir,) = tmp_path.iterdir()
    events = _events(run_dir)
    assert host.counters.ended == {"caller_hung_up": 1}
    assert not phone.stops
    # the flagged silence after the question reached the service as audio: its VAD saw the end
    stopped = next(e["event"] for e in events if e["event"].get("type") == "input_audio_buffer.speech_stopped")
    assert 2000 < stopped["audio_end_ms"] < 3000
    playback = [e["event"]["type"] for e in events if e["event"].get("type", "").startswith("playback.")]
    assert playback == ["playback.started", "playback.finished"]
    transport = json.loads((run_dir / "metrics.json").read_text())["transport"]
    appends = [e for e in events if e.get("direction") == "client" and e["event"].get("type") == "input_audio_buffer.append"]
    assert transport["kind"] == "acs" and transport["socket_in_to_append_ms"]["count"] == len(appends) > 20


@pytest.mark.parametrize("real_delay_s", [0.1, 0.25])
def test_barge_in_stops_acs_audio_and_truncates_where_the_model_says_the_caller_was(tmp_path, env, real_delay_s):
    fake = FakeAcs(env, tmp_path)

    async def scenario(host):
        async with serving(host) as (base, http):
            phone = AcsPhone(http, await _answered(env, http, base, fake), playout_delay_s=real_delay_s)
            await phone.connect()
            phone.say(speech(24000))
            await _until(lambda: phone.played_samples > 24000)  # a second into the answer
            phone.say(speech(24000))
            await _until(lambda: phone.stops)
            await asyncio.sleep(0.5)
            await phone.hang_up()
            await _until(lambda: not host.sessions)
            return phone

    phone, host = _run(tmp_path, scenario, phone_served("acs"))
    (run_dir,) = tmp_path.iterdir()
    (truncate,) = [e["event"] for e in _events(run_dir) if e["event"].get("type") == "conversation.item.truncate"]
    heard_ms = phone.stops[0] / 24
    error_ms = truncate["audio_end_ms"] - heard_ms
    # the model assumes 100 ms of playout delay; the error is the difference to the real delay,
    # plus the time StopAudio takes to arrive and the player's 10 ms steps
    print(f"ACS truncation error with a {real_delay_s * 1000:.0f} ms playout delay: {error_ms:+.0f} ms")
    assert abs(error_ms - (real_delay_s - acs.PLAYOUT_DELAY_S) * 1000) <= 60, (truncate, heard_ms)


def test_hanging_up_mid_answer_leaves_complete_files_and_is_not_hung_up_again(tmp_path, env):
    fake = FakeAcs(env, tmp_path)

    async def scenario(host):
        acs_server, acs_url = await fake.start()
        try:
            async with serving(host) as (base, http):
                phone = AcsPhone(http, await _answer_and_stream(env, http, base, acs_url, fake),
                                 call_connection_id=CALL_CONNECTION_ID)
                await phone.connect()
                phone.say(speech(24000))
                await _until(lambda: phone.played_samples > 12000)
                await phone.hang_up()
                await _until(lambda: not host.sessions)
        finally:
            await acs_server.close()

    _, host = _run(tmp_path, scenario, phone_served("acs"))
    (run_dir,) = tmp_path.iterdir()
    assert host.counters.ended == {"caller_hung_up": 1}
    assert fake.hang_ups == []  # the caller's hang-up ended the call already
    assert _events(run_dir)[-1]["event"]["reason"] == "caller_hung_up"
    assert "Caspian" in (run_dir / "transcript.txt").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["reason"] == "caller_hung_up"


def test_bad_media_messages_are_logged_and_bounded_and_the_call_goes_on(tmp_path, env, capsys):
    fake = FakeAcs(env, tmp_path)

    async def scenario(host):
        async with serving(host) as (base, http):
            phone = AcsPhone(http, await _answered(env, http, base, fake))
            await phone.connect()
            for junk in ('{"kind": "AudioData", "audioData": {"data": "AAAA", "silent": false}}',  # 3 bytes: not PCM16
                         '{"kind": "AudioMetadata", "audioMetadata": {"encoding": "OPUS", "sampleRate": 48000}}',
                         '{"kind": "Hologram"}', "{oops", '{"kind": "AudioData"}'):
                await phone.ws.send_str(junk)
            phone.say(speech(24000))
            await _until(lambda: "Caspian" in "".join(p.read_text() for p in tmp_path.glob("*/transcript.txt")))
            await phone.hang_up()
            await _until(lambda: not host.sessions)

    _, host = _run(tmp_path, scenario, phone_served("acs"))
    (run_dir,) = tmp_path.iterdir()
    assert host.counters.ended == {"caller_hung_up": 1}
    bad = json.loads((run_dir / "metrics.json").read_text())["transport"]["bad_messages"]
    assert sum(bad.values()) == 5
    assert capsys.readouterr().err.count("acs_bad_message") == 5
