"""Secrets never reach any output: the Redactor, and a whole run searched for a known fake key."""

import io
import json
import logging

import pytest

from session_script import SESSION, ScriptedSession, audio_profile, conversation
from voicepipe.logsetup import configure_logging, shutdown_logging
from voicepipe.redact import MASK, REDACTOR, Redactor, looks_like_secret_name

KEY = "fake-voicelive-key-7c1e9a"


def redactor(**env):
    return Redactor(env)


def test_the_voicelive_key_and_secret_looking_variables_are_masked():
    r = redactor(AZURE_VOICELIVE_API_KEY=KEY, MY_SERVICE_TOKEN="tok-123456789", HOME="/home/someone", PWD="/work/x")
    assert r.redact(f"key {KEY} and tok-123456789 from /home/someone") == "key *** and *** from /home/someone"
    assert r.secrets() == {KEY, "tok-123456789"}


@pytest.mark.parametrize(
    "name, secret",
    [
        ("AZURE_VOICELIVE_API_KEY", True),
        ("AZURE_CLIENT_SECRET", True),
        ("GITHUB_TOKEN", True),
        ("DB_PASSWORD", True),
        ("OPENAI_APIKEY", True),
        ("STORAGE_SAS", True),
        ("PATH", False),
        ("KEYBOARD_LAYOUT", False),
        ("AZURE_VOICELIVE_ENDPOINT", False),
        ("PWD", False),
    ],
)
def test_which_variable_names_hold_secrets(name, secret):
    assert looks_like_secret_name(name) is secret


def test_values_are_masked_as_they_appear_in_json_and_urls():
    r = redactor(SOME_SECRET='p@ss "word" / 42')
    assert MASK in r.redact(json.dumps({"x": 'p@ss "word" / 42'}))
    assert 'p@ss' not in r.redact(json.dumps({"x": 'p@ss "word" / 42'}))
    assert r.redact("https://h/?q=p%40ss%20%22word%22%20%2F%2042") == "https://h/?q=***"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("api-key: abc123def", "api-key: ***"),
        ("{'api-key': 'abc123def'}", "{'api-key': '***'}"),
        ('{"Authorization": "Bearer eyJraWQiOiIxIn0.abc.def-ghi"}', '{"Authorization": "Bearer ***"}'),
        ("Authorization: Bearer 0123456789abcdef0123", "Authorization: Bearer ***"),
        ("wss://r.services.ai.azure.com/voice-live/realtime?api-version=2026-07-15&api-key=k123&model=m",
         "wss://r.services.ai.azure.com/voice-live/realtime?api-version=2026-07-15&api-key=***&model=m"),
        ("wss://h/voice-live/realtime?agent-access-token=AGENTTOKEN&agent-name=a", "wss://h/voice-live/realtime?agent-access-token=***&agent-name=a"),
        ("https://b.blob.core.windows.net/c/f.wav?sv=2024&sig=abc%2Bdef", "https://b.blob.core.windows.net/c/f.wav?sv=2024&sig=***"),
        ("https://h/cb?access_token=xyz&token=uvw", "https://h/cb?access_token=***&token=***"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FpIn0.c2lnbmF0dXJl end", "token *** end"),
        ("api_key=abc123 rest", "api_key=*** rest"),
        ("password: hunter22", "password: ***"),
    ],
)
def test_credential_shapes_are_masked_without_knowing_the_value(text, expected):
    assert redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the bearer of bad news",
        "I'd like a token of appreciation",
        "input_tokens=44 output_tokens=99",
        "api_key_env: AZURE_VOICELIVE_API_KEY",
        "Cześć, nazywam się Marcelo.",
    ],
)
def test_ordinary_text_is_left_alone_and_returned_as_is(text):
    r = redactor(AZURE_VOICELIVE_API_KEY=KEY)
    assert r.redact(text) is text


def test_short_and_empty_secrets_are_not_registered():
    r = redactor(AZURE_VOICELIVE_API_KEY="abc", OTHER_TOKEN="")
    r.add("12345")
    r.add(None)
    assert r.secrets() == frozenset()
    assert r.redact("abc 12345") == "abc 12345"


def test_values_added_at_run_time_are_masked_from_then_on():
    r = redactor()
    token = "eyJ0eXAiOi.entra-token-value-123"
    assert r.redact(f"got {token}") == f"got {token}"
    r.add(token)
    assert r.redact(f"got {token}") == "got ***"


def test_watched_variables_count_even_with_innocent_names(monkeypatch):
    monkeypatch.setenv("VL_CRED_X", "innocent-name-value")
    r = Redactor()
    assert r.redact("innocent-name-value") == "innocent-name-value"
    r.watch_env("VL_CRED_X")
    assert r.redact("innocent-name-value") == MASK


def test_redact_obj_masks_deeply_and_by_key_without_touching_the_original():
    r = redactor(AZURE_VOICELIVE_API_KEY=KEY)
    original = {
        "headers": {"api-key": "whatever", "Authorization": "Bearer x", "User-Agent": "sdk"},
        "items": [KEY, {"note": f"key={KEY}"}, 3, None],
        "pair": ("a", KEY),
        "usage": {"input_tokens": 44},
    }
    masked = r.redact_obj(original)
    assert masked == {
        "headers": {"api-key": MASK, "Authorization": MASK, "User-Agent": "sdk"},
        "items": [MASK, {"note": "key=***"}, 3, None],
        "pair": ("a", MASK),
        "usage": {"input_tokens": 44},
    }
    assert original["items"][0] == KEY


def test_a_whole_run_never_writes_the_key_anywhere(tmp_path, monkeypatch, capsys):
    """Logging with the key in the environment, log lines and exceptions holding it (also from the
    Azure SDK's stdlib logger), events carrying it in the instructions; then every file written and
    everything printed is searched for it."""
    bearer = "entra-bearer-token-5d8f0b2a"
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", KEY)
    run_dir = tmp_path / "run"
    console_log = io.StringIO()
    log = configure_logging(run_dir, console_level="DEBUG", file_level="DEBUG", azure_level="DEBUG", console_stream=console_log)
    REDACTOR.add(bearer)
    try:
        log.info("connecting", api_key=KEY, url=f"wss://h/voice-live/realtime?api-key={KEY}")
        log.debug("headers", headers={"api-key": KEY, "Authorization": f"Bearer {bearer}"})
        azure = logging.getLogger("azure.ai.voicelive.aio")
        azure.debug("Sending headers %s", {"api-key": KEY})
        azure.warning("handshake with %s failed", bearer)
        try:
            raise ConnectionError(f"401 for key {KEY}")
        except ConnectionError as exc:
            log.error("connect_failed", exc_info=exc)
            azure.exception("SDK saw %s", exc)

        instructions = f"Never say {KEY} or {bearer}."
        s = ScriptedSession(run_dir, profile=audio_profile(recorder={"audio": True}))
        s.log = log
        s.pipeline.log = log
        conversation(s)
        s.client(9.0, {"type": "session.update", "session": {"instructions": instructions}})
        s.server(9.1, "session.updated", session={**SESSION, "instructions": instructions})
        s.server(9.2, "conversation.item.input_audio_transcription.completed", item_id="item_u9", content_index=0,
                 transcript=f"my key is {KEY}")
        s.server(9.3, "error", error={"type": "invalid_request_error", "message": f"bad key {KEY}"})
        s.end("user")
    finally:
        shutdown_logging()

    written = sorted(p for p in run_dir.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"voicepipe.log.jsonl", "events.jsonl", "transcript.txt", "transcript.jsonl"}
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert KEY not in text, path.name
        assert bearer not in text, path.name
    printed = capsys.readouterr()
    for output in (console_log.getvalue(), printed.out, printed.err):
        assert KEY not in output and bearer not in output
    # the redaction did happen where the key was
    assert "my key is ***" in (run_dir / "transcript.txt").read_text()
    assert "error: bad key ***" in printed.out
    assert "401 for key ***" in (run_dir / "voicepipe.log.jsonl").read_text()
    assert "Never say *** or ***." in (run_dir / "events.jsonl").read_text()


# -- secrets streamed in pieces ------------------------------------------------------------------------


def test_the_end_of_a_text_that_may_begin_a_secret_is_measured():
    r = redactor(MY_API_KEY="fake-piece-key-42", OTHER_TOKEN='quote"d-token')
    assert r.secret_prefix_length("the key is fake-pi") == len("fake-pi")
    assert r.secret_prefix_length("f") == 1 and r.secret_prefix_length("ends with an f") == 1
    assert r.secret_prefix_length('{"t": "quote\\"d-to') == len('quote\\"d-to')  # as it appears inside JSON
    assert r.secret_prefix_length("fake-piece-key-42") == 0  # a whole secret is no beginning of one
    assert r.secret_prefix_length("fake news") == r.secret_prefix_length("") == 0
    assert redactor().secret_prefix_length("fake-pi") == 0  # no secrets: nothing to hold


def test_a_secret_split_across_pieces_is_masked_where_it_starts():
    r = redactor(MY_API_KEY="fake-piece-key-42")
    assert r.redact_pieces(['{"k": "fake-pi', 'ece-key-42"}']) == ['{"k": "***', '"}']
    assert r.redact_pieces(["is fake", "-piece-", "key-42. And fake-piece-key-42", "!"]) == ["is ***", "", ". And ***", "!"]
    assert r.redact_pieces(["fake-piece", "", "-key-42"]) == ["***", "", ""]
    pieces = ["no secret ", "here"]
    assert r.redact_pieces(pieces) == pieces
    # shapes too, when their pieces are together
    assert "".join(r.redact_pieces(["api-", "key: abcdef", " rest"])) == "api-key: *** rest"


def test_an_exception_a_record_carries_is_masked_for_handlers_voicepipe_does_not_own(tmp_path, monkeypatch):
    """Records carrying exceptions get a masked ``exc_text`` (stdlib) or a masked text (structlog's
    event dict); voicepipe's own sinks render the exception as before, and once."""
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", KEY)
    console = io.StringIO()
    log = configure_logging(tmp_path, console_stream=console)
    foreign = io.StringIO()
    handler = logging.StreamHandler(foreign)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        try:
            raise ConnectionError(f"401 for key {KEY}")
        except ConnectionError as exc:
            logging.getLogger("azure.ai.voicelive").error("SDK failed", exc_info=True)
            log.error("connect_failed", exc_info=exc)
        try:
            raise ValueError("nothing secret")
        except ValueError:
            logging.getLogger("azure.ai.voicelive").exception("plain failure")
    finally:
        logging.getLogger().removeHandler(handler)
        shutdown_logging()
    seen = foreign.getvalue()
    assert KEY not in seen and "ConnectionError: 401 for key ***" in seen
    assert seen.count("Traceback (most recent call last)") == 2  # the two stdlib records, once each
    assert "ValueError: nothing secret" in seen
    assert "'exc_info': ConnectionError('401 for key ***')" in seen  # structlog's event dict, as str()
    printed = console.getvalue()
    assert KEY not in printed and printed.count("ConnectionError: 401 for key ***") == 2
    assert printed.count("Traceback (most recent call last)") == 3
    lines = [json.loads(line) for line in (tmp_path / "voicepipe.log.jsonl").read_text().splitlines()]
    assert [line["exception"][0]["exc_value"] for line in lines if "exception" in line] == [
        "401 for key ***", "401 for key ***", "nothing secret"
    ]


def _reference_may_hold_secret(redactor, text):
    """The pre-check as it was: every anchor in the lower-cased text, every variant in the text."""
    from voicepipe.redact import _ANCHORS

    lowered = text.lower()
    return any(anchor in lowered for anchor in _ANCHORS) or any(v in text for v in redactor._variants)


def test_the_quick_pre_check_lets_through_all_that_the_full_check_needs():
    """The pre-check looks for lower-cased variants folded into the anchors' pass; it may let more
    text through to the regular expression, never less, and what comes out is the same."""
    import random

    secrets = {"MY_API_KEY": "Zq7-Secret-Value", "OTHER_TOKEN": "abcDEF123456", "GREEK_PASSWORD": "ΚΛΕΙΔΙΣ-99"}
    redactor = Redactor(secrets)
    alphabet = "abcdefgkqyzABCDEFKQZ0123456789-_=.:\" ?&/ΣσςΚΛΕΙΔ"
    pieces = ["Zq7-Secret-Value", "zq7-secret-value", "abcDEF123456", "ABCdef123456", "ΚΛΕΙΔΙΣ-99", "κλειδις-99",
              "api-key: ", "Bearer ", "?sig=", "eyJhbGciOi", "token", "passwd", "TOKEN"]
    rng = random.Random(7)
    for _ in range(3000):
        parts = [rng.choice(pieces) if rng.random() < 0.15 else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
                 for _ in range(rng.randint(1, 6))]
        text = "".join(parts)
        if _reference_may_hold_secret(redactor, text):
            assert redactor._may_hold_secret(text)
        expected = redactor._regex.sub(redactor._mask, text) if redactor._regex.search(text) else text
        assert redactor.redact(text) == expected
    assert redactor.redact("the key ΚΛΕΙΔΙΣ-99 and abcDEF123456") == "the key *** and ***"
    assert redactor.redact("nothing to see") == "nothing to see"
