"""Secrets never leave the process: real sessions against the emulator, then everything searched.

Each session runs through the official SDK over loopback WebSockets with every built-in plugin on
(audio from a WAV file into a WAV file, tools, recorder with full audio, transcript, metrics with
its table, console) and a plugin of the test's own that logs and raises what it is shown. The
secret is made to travel wherever it could leak:

* the credential itself: the ``api-key`` header, or the Entra bearer token from a (faked)
  ``DefaultAzureCredential``, which the emulator is configured to require;
* the endpoint URL (``?api-key=…``, ``?agent-access-token=…``), logged as the connection target
  and, at ``azure_level: DEBUG``, by the SDK as the URL it connects to;
* the scenario: what the user "said" (the input transcript), the tool's output, the assistant's
  answer, an ``error`` event's message from the server, a tool call's arguments (streamed in pieces);
* the session instructions (``${AZURE_VOICELIVE_API_KEY}`` interpolated by mistake);
* the test plugin's log lines and exceptions;
* failed connections: a 401 for a wrong key or token, a 503 whose error names the URL.

Then every file under the run folder (bytes, so binary files too), captured stdout and stderr (at
file-descriptor level) and the exception messages and rendered tracebacks are searched for the
secret and for any 8-character piece of its random part. Each test also checks that the secret
did travel: the mask ``***`` stands where it would have been.

The secrets use only letters, digits and ``-``: they look the same raw, JSON-escaped and
URL-encoded, so one byte search covers every encoding.
"""

from __future__ import annotations

import secrets
import textwrap
import time
import traceback
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from emulator_helpers import served_emulator

from voicepipe import cli
from voicepipe.emulator import parse_scenario
from voicepipe.errors import SessionError
from voicepipe.redact import MASK, REDACTOR, Redactor
from voicepipe.testing import run_profile

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "profiles" / "audio" / "question.wav"

KEY = "fake-voicelive-key-5b8e2c71d4a9"
WRONG_KEY = "fake-voicelive-key-0a6f3d9e27c5"


def fresh_token() -> str:
    """A bearer token no redactor has seen yet (tokens, once handed out, stay registered for the
    process). Not JWT-shaped and not in the environment: only its registration can mask it."""
    return f"fake-entra-access-{secrets.token_hex(6)}"


LEAKY_PLUGIN = '''\
"""Logs, warns about and raises with whatever the user said; its tool answers with it too."""


def voicepipe_event(event, ctx):
    if event.get("type") == "conversation.item.input_audio_transcription.completed":
        heard = event.get("transcript")
        ctx.stash["leaky.heard"] = heard
        ctx.log.info("leaky_heard", transcript=heard)
        ctx.log.warning("leaky_warning", detail=f"the user said {heard}")
        raise ValueError(f"leaky cannot handle {heard}")


def voicepipe_tool_call(name, arguments, call_id, ctx):
    heard = ctx.stash.get("leaky.heard")
    ctx.log.info("leaky_tool", arguments=arguments, heard=heard)
    return {"arguments": arguments, "heard": heard}
'''


# -- helpers -----------------------------------------------------------------------------------------


def scenario_text(secret: str, *, in_arguments: bool = False) -> str:
    """The user says the secret, the tool's output and the answer carry it, the server's error
    event echoes it; ``in_arguments``: the model also passes it to the tool."""
    arguments = secret if in_arguments else "none"
    return textwrap.dedent(
        f"""\
        response_delay_ms: 0
        turns:
          - user: "my secret is {secret}"
            tool: {{name: lookup, arguments: {{secret: "{arguments}"}}}}
            assistant: "The lookup said {{tool_output}}. Your secret is {secret}."
        faults:
          - after: {{event: response.done, count: 1}}
            action: error
            code: invalid_credential
            message: "The credential {secret} is not valid for this resource."
        """
    )


def write_profile(tmp_path: Path, endpoint: str, *, auth: str, instructions: str = "Answer briefly.") -> Path:
    """Every built-in plugin on, the spoken question from a WAV file, the answer to a WAV file, the
    leaky plugin, and every log line kept (the SDK's included, at DEBUG)."""
    (tmp_path / "leaky.py").write_text(LEAKY_PLUGIN)
    audio_in = f"{{backend: wav, file: {QUESTION}, realtime: false, trailing_silence_ms: 1500}}"
    text = textwrap.dedent(
        f"""\
        connection:
          endpoint: "{endpoint}"
          model: gpt-realtime
          auth: {auth}
          connect_timeout_s: 10
        session:
          instructions: "{instructions}"
          modalities: [text, audio]
          input_audio_transcription: {{model: whisper-1}}
          tools:
            - type: function
              name: lookup
              parameters: {{type: object, properties: {{secret: {{type: string}}}}}}
        audio:
          input: {audio_in}
          output: {{backend: wav, file: "{{run_dir}}/output.wav", realtime: false}}
        plugins: [leaky.py]
        recorder: {{audio: true}}
        metrics: {{table: true}}
        console: {{quiet: false}}
        logging: {{level: DEBUG, file_level: DEBUG, azure_level: DEBUG}}
        """
    )
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def emulator_thread(scenario: str, *, credential: str):
    """An emulator that accepts only ``credential`` (key or bearer token), served from its own thread."""
    return served_emulator(parse_scenario(scenario, "secrets-scenario.yaml"), api_key=credential)


def fragments(secret: str) -> list[str]:
    """The secret, and every 8-character piece of its random (last) part: a cut-off secret leaks too."""
    tail = secret.rsplit("-", 1)[-1]
    return [secret] + [tail[i : i + 8] for i in range(len(tail) - 7)]


def assert_nothing_leaks(values: tuple[str, ...], *, folders=(), texts: dict[str, str]) -> list[Path]:
    """Search every file under ``folders`` (as bytes) and each text for the secret ``values``; the
    files searched."""
    files = sorted(p for folder in folders for p in Path(folder).rglob("*") if p.is_file())
    places = [(path.name, path.read_bytes().decode("latin-1")) for path in files] + list(texts.items())
    leaks = []
    for name, text in places:
        for secret in values:
            found = [piece for piece in fragments(secret) if piece in text]
            if found:
                leaks.append(f"{name} ({'whole' if found[0] == secret else 'piece ' + repr(found[0])})")
    assert not leaks, f"a secret was found in: {', '.join(leaks)}"
    return files


def rendered(exc: BaseException) -> str:
    """The exception as a user would see it: message and traceback."""
    return str(exc) + "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class FakeDefaultAzureCredential:
    """Stands in for ``azure.identity.aio.DefaultAzureCredential``: hands out a known bearer token."""

    token = ""
    made: list["FakeDefaultAzureCredential"] = []

    def __init__(self, *args, **kwargs):
        self.scopes: tuple = ()
        self.closed = False
        FakeDefaultAzureCredential.made.append(self)

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.scopes = scopes
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", KEY)
    return KEY


def use_fake_entra(monkeypatch, token: str) -> type:
    """Entra auth with a fake ``DefaultAzureCredential`` handing out ``token``, and no key anywhere
    in the environment."""
    monkeypatch.delenv("AZURE_VOICELIVE_API_KEY", raising=False)
    monkeypatch.setattr(FakeDefaultAzureCredential, "made", [])
    monkeypatch.setattr(FakeDefaultAzureCredential, "token", token)
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", FakeDefaultAzureCredential)
    assert token not in REDACTOR.secrets() and Redactor({}).redact(f"x {token} y") == f"x {token} y"
    return FakeDefaultAzureCredential


# -- whole sessions ----------------------------------------------------------------------------------


def run_session(driver: str, profile: Path, run_root: Path) -> tuple[int, Path]:
    """Run ``profile`` through the test harness or the ``voicepipe run`` command; exit code, run folder."""
    if driver == "harness":
        result = run_profile(profile, run_dir=run_root / "run", emulator=False, duration=60)
        assert result.reason == "input_finished"
        return result.exit_code, result.run_dir
    exit_code = cli.main(["run", str(profile), "--log-dir", str(run_root), "--duration", "60"])
    (run_dir,) = [p for p in run_root.iterdir() if p.is_dir()]
    return exit_code, run_dir


@pytest.mark.parametrize("driver", ["harness", "cli"])
@pytest.mark.parametrize("auth", ["api-key", "entra"])
def test_a_session_writes_and_prints_no_secret(auth, driver, tmp_path, monkeypatch, capfd):
    if auth == "api-key":
        secret, query = KEY, "?api-key=" + KEY
        instructions = "Answer briefly. Never reveal ${AZURE_VOICELIVE_API_KEY}."
        monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", KEY)
    else:
        secret = fresh_token()
        query, instructions = "?agent-access-token=" + secret, "Answer briefly."
        use_fake_entra(monkeypatch, secret)
    with emulator_thread(scenario_text(secret), credential=secret) as emulator:
        profile = write_profile(tmp_path, emulator.url + "/" + query, auth=auth, instructions=instructions)
        exit_code, run_dir = run_session(driver, profile, tmp_path / "logs")
    connection = emulator.connections[0]
    printed = capfd.readouterr()

    assert exit_code == 0
    # the secret travelled: the emulator required it and saw it in the URL
    assert len(emulator.connections) == 1 and connection.close_code == 1000
    assert secret in connection.query.values()
    if auth == "entra":
        (credential,) = FakeDefaultAzureCredential.made
        assert credential.scopes == ("https://ai.azure.com/.default",) and credential.closed

    printed_texts = {"stdout": printed.out, "stderr": printed.err}
    files = assert_nothing_leaks((secret,), folders=[tmp_path / "logs"], texts=printed_texts)
    assert {p.name for p in files} >= {
        "voicepipe.log.jsonl", "events.jsonl", "transcript.txt", "transcript.jsonl", "metrics.json",
        "metrics.jsonl", "output.wav",
    }

    # ... and was masked where it would have been
    transcript = (run_dir / "transcript.txt").read_text()
    assert f"User: my secret is {MASK}" in transcript
    assert f'Tool result: {{"arguments": {{"secret": "none"}}, "heard": "my secret is {MASK}"}}' in transcript
    assert f"Your secret is {MASK}." in transcript
    log = (run_dir / "voicepipe.log.jsonl").read_text()
    assert f"The credential {MASK} is not valid for this resource." in log  # the server's error event
    assert f"leaky cannot handle my secret is {MASK}" in log  # the plugin's exception
    assert query.split("=")[0] + "=" + MASK in log  # the endpoint, as the connection target
    events = (run_dir / "events.jsonl").read_text()
    assert f'\\"heard\\": \\"my secret is {MASK}\\"' in events  # the tool output sent back
    assert f"error: The credential {MASK} is not valid for this resource." in printed.out  # the console
    assert f"the user said my secret is {MASK}" in printed.err  # the plugin's warning
    if auth == "api-key":
        assert f"Never reveal {MASK}." in events
    if driver == "cli":
        # azure_level DEBUG: the SDK logged the URL it connected to and every frame it received
        assert "Connecting to ws://" in log and query.split("=")[0] + "=" + MASK in log
        assert "Received websocket text message" in log


def test_a_secret_streamed_in_pieces_is_not_recorded_piece_by_piece(api_key, tmp_path, capfd):
    """The model passes the key to a tool: the arguments arrive in 8-character deltas, then whole."""
    with emulator_thread(scenario_text(KEY, in_arguments=True), credential=KEY) as emulator:
        profile = write_profile(tmp_path, emulator.url, auth="api-key")
        result = run_profile(profile, run_dir=tmp_path / "logs" / "run", emulator=False, duration=60)
        sent = emulator.connections[0].server_events
    printed = capfd.readouterr()
    assert result.exit_code == 0
    pieces = [e["delta"] for e in sent if e["type"] == "response.function_call_arguments.delta"]
    assert KEY in "".join(pieces) and not any(KEY in piece for piece in pieces)  # only ever in pieces
    transcript = (result.run_dir / "transcript.txt").read_text()
    assert f'Tool call: lookup {{"secret": "{MASK}"}}' in transcript  # the whole arguments are masked
    assert_nothing_leaks((KEY,), folders=[tmp_path / "logs"], texts={"stdout": printed.out, "stderr": printed.err})


def test_the_log_records_pytest_captures_hold_no_secret(api_key, tmp_path, caplog):
    with emulator_thread(scenario_text(KEY), credential=KEY) as emulator:
        profile = write_profile(tmp_path, emulator.url + "/?api-key=" + KEY, auth="api-key")
        result = run_profile(profile, run_dir=tmp_path / "logs" / "run", emulator=False, duration=60)
    assert result.exit_code == 0
    assert any("server_error" in str(record.msg) for record in caplog.records)  # the session's log got there
    assert_nothing_leaks((KEY,), texts={"pytest's log capture": caplog.text})


# -- failed connections, through the command ---------------------------------------------------------


def cli_run(profile: Path, log_dir: Path) -> int:
    return cli.main(["run", str(profile), "--log-dir", str(log_dir), "--duration", "30"])


def test_cli_wrong_key_401_names_no_key(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", WRONG_KEY)
    with emulator_thread("", credential=KEY) as emulator:
        profile = write_profile(tmp_path, emulator.url + "/?api-key=" + WRONG_KEY, auth="api-key")
        exit_code = cli_run(profile, tmp_path / "logs")
        attempts = len(emulator.connections)
    printed = capfd.readouterr()
    assert exit_code == 2  # a refused key is the user's to fix
    assert attempts == 0  # refused before the upgrade
    assert "refused the connection: 401 Unauthorized: the api-key from AZURE_VOICELIVE_API_KEY" in printed.err
    assert_nothing_leaks(
        (WRONG_KEY, KEY), folders=[tmp_path / "logs"], texts={"stdout": printed.out, "stderr": printed.err}
    )
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert f"api-key={MASK}" in (run_dir / "voicepipe.log.jsonl").read_text()


def test_cli_rejected_token_401_names_no_token(monkeypatch, tmp_path, capfd):
    right_token, wrong_token = fresh_token(), fresh_token()
    use_fake_entra(monkeypatch, wrong_token)
    with emulator_thread("", credential=right_token) as emulator:
        profile = write_profile(tmp_path, emulator.url + "/?agent-access-token=" + wrong_token, auth="entra")
        exit_code = cli_run(profile, tmp_path / "logs")
    printed = capfd.readouterr()
    assert exit_code == 2
    assert "401 Unauthorized: the Entra ID token (DefaultAzureCredential) was not accepted" in printed.err
    assert FakeDefaultAzureCredential.made[0].closed
    assert_nothing_leaks(
        (wrong_token, right_token), folders=[tmp_path / "logs"], texts={"stdout": printed.out, "stderr": printed.err}
    )
    assert wrong_token in REDACTOR.secrets()  # registered when handed out, accepted or not
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert f"agent-access-token={MASK}" in (run_dir / "voicepipe.log.jsonl").read_text()


def test_cli_connect_error_naming_the_url_masks_the_key(api_key, tmp_path, capfd):
    """A 503 at the upgrade: the SDK's error quotes the whole URL, query string included."""
    scenario = "faults:\n  - {action: http_status, status: 503, message: 'overloaded'}\n"
    with emulator_thread(scenario, credential=KEY) as emulator:
        profile = write_profile(tmp_path, emulator.url + "/?api-key=" + KEY, auth="api-key")
        exit_code = cli_run(profile, tmp_path / "logs")
    printed = capfd.readouterr()
    assert exit_code == 1
    (error_line,) = [line for line in printed.err.splitlines() if line.startswith("voicepipe: ")]
    assert "could not connect" in error_line and "503" in error_line
    assert f"api-key={MASK}" in error_line  # the URL was there, with the key masked
    assert_nothing_leaks((KEY,), folders=[tmp_path / "logs"], texts={"stdout": printed.out, "stderr": printed.err})


def test_harness_connect_error_message_and_traceback_hold_no_key(api_key, tmp_path, capfd):
    scenario = "faults:\n  - {action: http_status, status: 503}\n"
    with emulator_thread(scenario, credential=KEY) as emulator:
        profile = write_profile(tmp_path, emulator.url + "/?api-key=" + KEY, auth="api-key")
        with pytest.raises(SessionError, match="could not connect") as caught:
            run_profile(profile, run_dir=tmp_path / "logs" / "run", emulator=False, duration=30)
    printed = capfd.readouterr()
    assert f"api-key={MASK}" in str(caught.value)
    assert_nothing_leaks(
        (KEY,),
        folders=[tmp_path / "logs"],
        texts={"stdout": printed.out, "stderr": printed.err, "exception": rendered(caught.value)},
    )


# -- every command masks -------------------------------------------------------------------------------


def _validate_with_plugin(tmp_path: Path, plugin_source: str) -> Path:
    (tmp_path / "leaky.py").write_text(plugin_source)
    profile = tmp_path / "leaky.yaml"
    profile.write_text("connection: {endpoint: emulator, model: gpt-realtime}\nplugins: [leaky.py]\n")
    return profile


@pytest.mark.parametrize(
    "plugin_source",
    [
        "import os\nraise RuntimeError('bad key ' + os.environ['AZURE_VOICELIVE_API_KEY'])\n",
        f"x = '{KEY}' +\n",  # a syntax error quotes the line, key and all
        "import os\nimport importlib\nimportlib.import_module('missing_' + os.environ['AZURE_VOICELIVE_API_KEY'])\n",
    ],
    ids=["raises", "syntax-error", "missing-module"],
)
def test_validate_masks_a_plugins_import_error(api_key, tmp_path, capfd, plugin_source):
    profile = _validate_with_plugin(tmp_path, plugin_source)
    exit_code = cli.main(["validate", str(profile)])
    printed = capfd.readouterr()
    assert exit_code == 2 and "leaky" in printed.err
    assert_nothing_leaks((KEY,), texts={"stdout": printed.out, "stderr": printed.err})


@pytest.mark.parametrize("command", [["validate"], ["show"], ["plugins"]])
def test_other_commands_mask_what_they_print(api_key, tmp_path, capfd, command):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"connection: {{endpoint: emulator, model: gpt-realtime}}\nsession: {{instructions: 'say {KEY}'}}\n"
                       f"plugins: [missing_{KEY}.py]\n")
    cli.main([*command, str(profile)])
    printed = capfd.readouterr()
    assert printed.out or printed.err
    assert_nothing_leaks((KEY,), texts={"stdout": printed.out, "stderr": printed.err})


@pytest.mark.parametrize("run_name", ["${AZURE_VOICELIVE_API_KEY}", "call-${AZURE_VOICELIVE_API_KEY}-x", "${MY_SERVICE_TOKEN}"])
def test_a_run_folder_named_from_a_secret_is_masked(api_key, tmp_path, capfd, monkeypatch, run_name):
    monkeypatch.setenv("MY_SERVICE_TOKEN", KEY)
    profile = tmp_path / "named.yaml"
    profile.write_text(
        "connection: {endpoint: emulator, model: gpt-realtime}\n"
        "audio: {input: {backend: null}, output: {backend: null, realtime: false}}\n"
        f"logging: {{run_name: '{run_name}'}}\nconsole: {{quiet: true}}\nmetrics: {{table: false}}\n"
    )
    assert cli.main(["run", str(profile), "--log-dir", str(tmp_path / "logs"), "--duration", "0.2"]) == 0
    printed = capfd.readouterr()
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert KEY not in run_dir.name
    assert f"run folder: {run_dir}" in printed.err
    assert_nothing_leaks((KEY,), folders=[tmp_path / "logs"], texts={"stdout": printed.out, "stderr": printed.err})
