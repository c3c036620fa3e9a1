"""Twilio Media Streams: the voice webhook (signatures, TwiML) and calls over the media socket."""

import asyncio
import json
import re
from urllib.parse import urlsplit

import pytest
from phone_helpers import TwilioPhone, phone_served, serving, ulaw_speech

from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
from voicepipe.serve import twilio
from voicepipe.serve.host import SessionHost

AUTH_TOKEN = "f2c6e3b9d1a4c7e8b5a2d9f6c3e0b7a4"  # a made-up token, searched for in the logs
FORM = {"CallSid": "CA00000000000000000000000000000000", "From": "+14155550100", "To": "+14155550199"}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.delenv("VOICEPIPE_PUBLIC_URL", raising=False)
    monkeypatch.delenv("VOICEPIPE_MEDIA_SECRET", raising=False)


def _run(tmp_path, scenario, *served):
    configure_logging(None, console_level="WARNING", session_files=True)
    host = SessionHost(list(served), log=get_logger(), log_dir=str(tmp_path))
    try:
        return asyncio.run(scenario(host)), host
    finally:
        shutdown_logging()


async def _answer(http, base, name="demo"):
    """Twilio calling the voice webhook, signed as Twilio signs it; the TwiML's stream URL and token."""
    url = f"{base}/{name}/twilio/voice"
    headers = {"X-Twilio-Signature": twilio.signature(AUTH_TOKEN, url, FORM)}
    async with http.post(url, data=FORM, headers=headers) as response:
        assert response.status == 200, await response.text()
        twiml = await response.text()
    stream = re.search(r'<Connect><Stream url="([^"]+)"><Parameter name="token" value="([^"]+)"/></Stream></Connect>', twiml)
    assert stream, twiml
    return stream.group(1), stream.group(2)


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _sent(run_dir, kind):
    return [e["event"] for e in _events(run_dir) if e.get("direction") == "client" and e["event"].get("type") == kind]


async def _until(predicate, limit_s=60.0):
    for _ in range(int(limit_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the call did not get there")


def test_signature_matches_twilios_documented_example():
    # the example Twilio's helper libraries check their RequestValidator with (auth token 12345)
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio.signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio.check_signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio.check_signature("12345", url, dict(params, Digits="1235"), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_unsigned_and_wrongly_signed_requests_are_refused_without_the_token_in_the_log(tmp_path, env, capsys):
    async def scenario(host):
        async with serving(host) as (base, http):
            url = f"{base}/demo/twilio/voice"
            results = {}
            async with http.post(url, data=FORM) as response:
                results["missing"] = response.status
            wrong = twilio.signature("not-the-token", url, FORM)
            async with http.post(url, data=FORM, headers={"X-Twilio-Signature": wrong}) as response:
                results["wrong"] = response.status
            tampered = dict(FORM, From="+19995550100")  # signed for other parameters
            good = twilio.signature(AUTH_TOKEN, url, FORM)
            async with http.post(url, data=tampered, headers={"X-Twilio-Signature": good}) as response:
                results["tampered"] = response.status
            async with http.post(url, data=FORM, headers={"X-Twilio-Signature": good}) as response:
                results["good"] = response.status
                results["twiml"] = await response.text()
            async with http.post(f"{base}/twilio/voice", data=FORM,
                                 headers={"X-Twilio-Signature": twilio.signature(AUTH_TOKEN, f"{base}/twilio/voice", FORM)}) as response:
                results["bare"] = response.status
            return results

    results, host = _run(tmp_path, scenario, phone_served("twilio"))
    assert (results["missing"], results["wrong"], results["tampered"]) == (403, 403, 403)
    assert results["good"] == 200 and results["bare"] == 200
    assert "<Connect><Stream url=\"ws://127.0.0.1:" in results["twiml"] and "/demo/twilio/media\"" in results["twiml"]
    logged = capsys.readouterr()
    assert logged.err.count("twilio_request_refused") == 3
    assert AUTH_TOKEN not in logged.err + logged.out


def test_the_stream_url_follows_the_configured_or_forwarded_public_url(tmp_path, env, monkeypatch):
    async def scenario(host):
        async with serving(host) as (base, http):
            port = urlsplit(base).port
            # behind a proxy: Twilio signed the public URL
            public = "https://voice.example.com/demo/twilio/voice"
            headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.com",
                       "X-Twilio-Signature": twilio.signature(AUTH_TOKEN, public, FORM)}
            async with http.post(f"{base}/demo/twilio/voice", data=FORM, headers=headers) as response:
                forwarded = (response.status, await response.text())
            monkeypatch.setenv("VOICEPIPE_PUBLIC_URL", "https://calls.example.org/")
            configured_url = "https://calls.example.org/demo/twilio/voice"
            headers = {"X-Twilio-Signature": twilio.signature(AUTH_TOKEN, configured_url, FORM)}
            async with http.post(f"{base}/demo/twilio/voice", data=FORM, headers=headers) as response:
                configured = (response.status, await response.text())
            return forwarded, configured, port

    (forwarded, configured, _), _ = _run(tmp_path, scenario, phone_served("twilio"))
    assert forwarded[0] == 200 and 'url="wss://voice.example.com/demo/twilio/media"' in forwarded[1]
    assert configured[0] == 200 and 'url="wss://calls.example.org/demo/twilio/media"' in configured[1]


def test_a_media_socket_without_a_token_from_the_webhook_gets_no_session(tmp_path, env):
    async def scenario(host):
        async with serving(host) as (base, http):
            url = base.replace("http", "ws") + "/demo/twilio/media"
            phone = TwilioPhone(http, url, token="1999999999.abc.0123456789abcdef0123456789abcdef")
            await phone.connect()
            await asyncio.wait_for(phone.closed.wait(), 10)
            await phone.stop()
            return phone.close_code

    code, host = _run(tmp_path, scenario, phone_served("twilio"))
    assert code == 1008
    assert host.counters.started == 0


def test_a_call_gets_an_answer_played_and_marks_acknowledged(tmp_path, env):
    async def scenario(host):
        async with serving(host) as (base, http):
            stream_url, token = await _answer(http, base)
            phone = TwilioPhone(http, stream_url, token, speed=4)
            await phone.connect()
            phone.say(ulaw_speech())
            # the whole answer played: every mark sent so far echoed, and the audio plugin told
            await _until(lambda: phone.received_samples > 8000 and len(phone.echoed) >= 3
                         and not phone.queue and not phone.speaking)
            await asyncio.sleep(0.5)
            await _until(lambda: not phone.queue)
            await phone.hang_up()
            await _until(lambda: not host.sessions)
            return phone

    phone, host = _run(tmp_path, scenario, phone_served("twilio"))
    (run_dir,) = tmp_path.iterdir()
    assert "Caspian" in (run_dir / "transcript.txt").read_text()
    assert host.counters.ended == {"caller_hung_up": 1}
    assert not phone.clears
    playback = [e["event"] for e in _events(run_dir) if e["event"].get("type", "").startswith("playback.")]
    assert [p["type"] for p in playback] == ["playback.started", "playback.finished"]
    # what was played is what was generated (24 kHz at the session, 8 kHz on the wire)
    finished = playback[1]
    assert abs(finished["played_ms"] - finished["generated_ms"]) < 1.0
    assert abs(phone.played_samples / 8 - finished["generated_ms"]) < 30
    metrics = json.loads((run_dir / "metrics.json").read_text())
    transport = metrics["transport"]
    assert transport["kind"] == "twilio"
    appends = _sent(run_dir, "input_audio_buffer.append")
    assert transport["socket_in_to_append_ms"]["count"] == len(appends) > 20  # one latency per append
    assert transport["delta_to_socket_out_ms"]["count"] > 0
    assert transport["bad_messages"] == {}


def test_barge_in_clears_twilio_and_truncates_at_the_last_acknowledged_mark(tmp_path, env):
    async def scenario(host):
        async with serving(host) as (base, http):
            stream_url, token = await _answer(http, base)
            phone = TwilioPhone(http, stream_url, token)
            await phone.connect()
            phone.say(ulaw_speech())
            await _until(lambda: len(phone.echoed) >= 8)  # well into the answer
            phone.say(ulaw_speech())  # the caller talks over it
            await _until(lambda: phone.clears)
            await asyncio.sleep(1.0)
            await phone.hang_up()
            await _until(lambda: not host.sessions)
            return phone

    phone, host = _run(tmp_path, scenario, phone_served("twilio"))
    (run_dir,) = tmp_path.iterdir()
    (truncate,) = _sent(run_dir, "conversation.item.truncate")
    _, echoed_before = phone.clears[0]
    # the truncation is where one of the marks echoed before the clear says the caller was
    heard = [samples / 8 for _, samples in phone.echoed[:echoed_before]]
    assert any(abs(truncate["audio_end_ms"] - ms) <= 25 for ms in heard[-3:]), (truncate, heard[-3:])
    assert truncate["audio_end_ms"] <= heard[-1] + 25
    interrupted = [e["event"] for e in _events(run_dir) if e["event"].get("type") == "playback.interrupted"]
    assert interrupted and interrupted[0]["played_ms"] < interrupted[0]["generated_ms"]


def test_hanging_up_mid_answer_leaves_complete_files(tmp_path, env):
    async def scenario(host):
        async with serving(host) as (base, http):
            stream_url, token = await _answer(http, base)
            phone = TwilioPhone(http, stream_url, token)
            await phone.connect()
            phone.say(ulaw_speech())
            await _until(lambda: len(phone.echoed) >= 4)
            await phone.hang_up()
            await _until(lambda: not host.sessions)

    _, host = _run(tmp_path, scenario, phone_served("twilio"))
    (run_dir,) = tmp_path.iterdir()
    assert host.counters.ended == {"caller_hung_up": 1}
    assert _events(run_dir)[-1]["event"]["reason"] == "caller_hung_up"
    assert "Caspian" in (run_dir / "transcript.txt").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["reason"] == "caller_hung_up" and metrics["transport"]["kind"] == "twilio"


def test_a_hostile_far_end_is_cut_off_without_hurting_another_call(tmp_path, env, capsys):
    async def scenario(host):
        async with serving(host) as (base, http):
            good_url, good_token = await _answer(http, base)
            bad_url, bad_token = await _answer(http, base)
            caller = TwilioPhone(http, good_url, good_token, speed=4)
            await caller.connect()
            caller.say(ulaw_speech())
            hostile = await http.ws_connect(bad_url)
            sid = "MZ0000"
            await hostile.send_str(json.dumps({"event": "start", "streamSid": sid,
                                               "start": {"streamSid": sid, "customParameters": {"token": bad_token}}}))
            junk = ["{not json", "[1, 2]", json.dumps({"event": "teleport"}), json.dumps({"event": "media"}),
                    json.dumps({"event": "media", "media": {"payload": "%%%"}}),
                    json.dumps({"event": "media", "media": {"payload": ""}}),
                    json.dumps({"event": "media", "media": {"payload": "AA==" * 4000}}),
                    json.dumps({"event": "mark", "mark": {}})]
            for index in range(60):
                await hostile.send_str(junk[index % len(junk)])
                await hostile.send_bytes(b"\x00" * 100)
            flood = json.dumps({"event": "media", "streamSid": sid, "media": {"payload": "/" * 216}})
            for _ in range(400):  # 8 s of audio at once
                if hostile.closed:
                    break
                await hostile.send_str(flood)
            closing = await hostile.receive(timeout=30)
            await _until(lambda: "Caspian" in "".join(p.read_text() for p in tmp_path.glob("*/transcript.txt")))
            await _until(lambda: caller.received_samples > 8000)
            async with http.get(f"{base}/healthz") as response:
                healthy = response.status
            await caller.hang_up()
            await _until(lambda: not host.sessions)
            return closing, healthy

    (closing, healthy), host = _run(tmp_path, scenario, phone_served("twilio"), )
    assert closing.type.name == "CLOSE" and closing.data == 1008
    assert healthy == 200
    assert host.counters.ended == {"caller_error": 1, "caller_hung_up": 1}
    logged = capsys.readouterr().err
    assert "twilio_bad_message" in logged and "twilio_caller_closed" in logged
    assert logged.count("twilio_bad_message") <= 10  # bounded: the first few, then every hundredth
