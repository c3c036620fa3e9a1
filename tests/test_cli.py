"""The command line: help, version, validate, show, plugins, and the errors a user can cause."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from shipped_files import shipped_profiles

from voicepipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"


@pytest.fixture(autouse=True)
def no_azure_environment(monkeypatch):
    for name in ("AZURE_VOICELIVE_ENDPOINT", "AZURE_VOICELIVE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "voicepipe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "show", "plugins", "emulator", "devices", "replay"):
        assert command in result.stdout


def test_cli_start_up_imports_nothing_heavy():
    code = (
        "import sys, voicepipe.cli; "
        "print(sorted(m for m in ('azure', 'aiohttp', 'numpy', 'structlog', 'yaml', 'pluggy', 'inspect') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_help_imports_no_plugin_machinery():
    loaded = modules_after(["--help"])
    assert {"pluggy", "inspect", "yaml", "dataclasses"} & loaded == set()
    assert "voicepipe.cli" in loaded  # it did run


def test_a_command_s_parser_alone_parses_and_helps_as_the_whole_parser_does(capsys):
    from voicepipe.cli import build_parser

    whole = build_parser()
    commands = next(a for a in whole._actions if a.dest == "command").choices
    for name, parser in commands.items():
        alone = build_parser(only=name)
        assert next(a for a in alone._actions if a.dest == "command").choices.keys() == {name}
        with pytest.raises(SystemExit):
            alone.parse_args([name, "--help"])
        assert capsys.readouterr().out == parser.format_help()
    assert build_parser(only="vaildate").format_help() == whole.format_help()  # no such command: all of them
    with pytest.raises(SystemExit) as done:
        main(["vaildate", "x"])
    assert done.value.code == 2
    assert "invalid choice: 'vaildate' (choose from 'run', 'validate'," in capsys.readouterr().err


def run_program(*args: str) -> list:
    """``voicepipe ARGS`` through the program's entry; its exit code, whether the heap was frozen
    and the collector's first threshold at the end."""
    code = (
        "import gc, sys\nfrom voicepipe.cli import program\n"
        "try:\n    program()\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, gc.get_freeze_count() > 0, gc.get_threshold()[0], file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    return result.stderr.split()[-3:]


def test_the_program_keeps_the_collector_out_of_a_command_that_only_prints(tmp_path):
    from voicepipe.cli import PRINT_ONLY_GC_THRESHOLD

    threshold = str(PRINT_ONLY_GC_THRESHOLD)
    assert run_program("validate", str(PROFILES / "ava.yaml")) == ["0", "True", threshold]
    assert run_program("validate", str(tmp_path / "missing.yaml")) == ["2", "True", threshold]
    assert run_program("--version") == ["0", "True", threshold]
    # a command that writes files exits with the collector as it is
    code, frozen, first = run_program("report", str(tmp_path / "no-run-folder"))
    assert code == "2" and frozen == "False" and first != threshold


#: what `voicepipe validate` has no use for: a session's modules (asyncio brings ssl and
#: concurrent.futures), entry-point discovery's (importlib.metadata brings email, zipfile, csv)
#: when no installed distribution declares voicepipe plugins, the SDK, audio and logging libraries;
#: logging (a full playback queue's warning) and difflib (did-you-mean hints) only when used
VALIDATE_NEVER_IMPORTS = ("asyncio", "ssl", "concurrent.futures", "email", "zipfile", "csv", "azure", "aiohttp",
                          "numpy", "soxr", "sounddevice", "pyaudio", "structlog", "jsonschema", "dotenv",
                          "logging", "difflib")


def modules_after(args: list, extra_path: str = "") -> set:
    code = (
        "import sys, runpy\n"
        f"sys.path[:0] = [p for p in [{extra_path!r}] if p]\n"
        f"sys.argv = ['voicepipe', *{args!r}]\n"
        "try:\n    runpy.run_module('voicepipe', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                            env={**os.environ, "VOICEPIPE_DISABLE_PLUGIN_AUTOLOAD": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stderr.split())


def test_validate_imports_only_what_validating_needs():
    from voicepipe.plugins import ENTRY_POINT_GROUP, _may_declare_entry_points

    loaded = modules_after(["validate", str(PROFILES / "ava.yaml")])
    heavy = {name for name in VALIDATE_NEVER_IMPORTS if any(m == name or m.startswith(name + ".") for m in loaded)}
    assert heavy == set(), f"voicepipe validate imported {sorted(heavy)}"
    assert {"voicepipe.builtin.audio", "voicepipe.builtin.recorder", "yaml", "pluggy"} <= loaded  # it did validate
    if not _may_declare_entry_points(ENTRY_POINT_GROUP):  # an installed voicepipe plugin needs the real lookup
        assert "importlib.metadata" not in loaded


def test_an_installed_plugin_is_still_found_without_importlib_metadata_imported_up_front(tmp_path):
    (tmp_path / "vp_installed_plugin.py").write_text("import sys\ndef voicepipe_session_end(ctx, reason):\n    pass\n")
    dist = tmp_path / "vp_installed_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vp-installed-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n\n[voicepipe]\ninstalled = vp_installed_plugin\n")
    loaded = modules_after(["validate", str(PROFILES / "ava.yaml")], extra_path=str(tmp_path))
    assert "vp_installed_plugin" in loaded and "importlib.metadata" in loaded


def test_the_entry_point_pre_check_reads_sections_not_words(tmp_path, monkeypatch):
    from voicepipe.plugins import _may_declare_entry_points

    dist = tmp_path / "other-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[console_scripts]\nvoicepipe = voicepipe.cli:main\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert not _may_declare_entry_points("voicepipe")
    (dist / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n[ voicepipe ]\nmine = mine\n")
    assert _may_declare_entry_points("voicepipe")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "plugins.zip")])
    (tmp_path / "plugins.zip").write_bytes(b"PK")
    assert _may_declare_entry_points("voicepipe")  # a zip on the path: ask importlib.metadata


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("voicepipe ")


def test_validate_every_shipped_profile(capsys):
    profiles = [str(path) for path in shipped_profiles()]
    assert len(profiles) >= 4
    assert main(["validate", *profiles]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok") == len(profiles)


def test_validate_reports_every_problem_with_its_location_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("session:\n  voice:\n    name: x\n    type: azure-standard\n    temprature: 0.5\n  modalities: [txt]\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"{bad}:5:5: session.voice.temprature:") and "temperature" in err[0]
    assert err[1].startswith(f"{bad}:6:") and "session.modalities" in err[1]


def test_show_prints_the_quickstart_session_exactly(capsys):
    assert main(["show", str(PROFILES / "ava.yaml")]) == 0
    out = capsys.readouterr().out
    header, _, body = out.partition("\n")
    assert header.startswith("# connection: ")
    payload = json.loads(body)
    assert payload == {
        "type": "session.update",
        "session": {
            "instructions": "You are a helpful AI assistant responding in natural, engaging language.",
            "modalities": ["text", "audio"],
            "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard", "temperature": 0.8},
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": {
                "type": "azure_semantic_vad",
                "threshold": 0.3,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 200,
                "remove_filler_words": False,
                "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 2},
            },
            "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
            "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
        },
    }


def test_show_applies_set_overrides(capsys):
    assert main(["show", str(PROFILES / "ava.yaml"), "--set", "session.voice.name=en-US-Emma:DragonHDLatestNeural"]) == 0
    payload = json.loads(capsys.readouterr().out.partition("\n")[2])
    assert payload["session"]["voice"]["name"] == "en-US-Emma:DragonHDLatestNeural"


def test_set_on_a_key_that_does_not_exist(capsys):
    assert main(["show", str(PROFILES / "ava.yaml"), "--set", "session.voice.nmae=x"]) == 2
    err = capsys.readouterr().err
    assert "session.voice.nmae" in err and "name" in err


def test_plugins_lists_builtins_and_local_plugins(capsys):
    assert main(["plugins", str(PROFILES / "demo.yaml")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert {"audio", "transcript", "recorder", "metrics", "console", "tools", "keyword_alert"} <= set(lines)
    assert "built-in" in lines["transcript"]
    assert "keyword_alert.py" in lines["keyword_alert"] and "event" in lines["keyword_alert"]


def test_run_missing_profile_is_one_line_exit_2():
    result = run_cli("run", "profiles/nope.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "profiles/nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_run_without_endpoint_says_what_to_set():
    result = run_cli("run", "profiles/ava.yaml")
    assert result.returncode == 2
    assert "AZURE_VOICELIVE_ENDPOINT" in result.stderr and "Traceback" not in result.stderr


def test_run_with_api_key_auth_but_no_key_exits_2():
    result = run_cli(
        "run", "profiles/ava.yaml", "--set", "connection.auth=api-key",
        env={"AZURE_VOICELIVE_ENDPOINT": "https://example.invalid/"},
    )
    assert result.returncode == 2
    assert "AZURE_VOICELIVE_API_KEY" in result.stderr and "Traceback" not in result.stderr


class SilentServer:
    """Accepts TCP connections and never answers: a handshake that cannot complete."""

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start():
            self.server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()))
        self.thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_unreachable_endpoint_ends_in_bounded_time_with_exit_1(tmp_path):
    with SilentServer() as server:
        result = run_cli(
            "run", "profiles/ava.yaml", "--log-dir", str(tmp_path),
            "--set", "connection.connect_timeout_s=1",
            "--set", "audio.input.backend=null", "--set", "audio.output.backend=null",
            env={"AZURE_VOICELIVE_ENDPOINT": f"http://127.0.0.1:{server.port}", "AZURE_VOICELIVE_API_KEY": "k-123456789"},
            timeout=60,  # the bound that matters is in the message; this only stops a hang
        )
    assert result.returncode == 1
    assert "could not connect" in result.stderr and "within 1 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_refused_connection_exit_1(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli(
        "run", "profiles/ava.yaml", "--log-dir", str(tmp_path),
        "--set", "audio.input.backend=null", "--set", "audio.output.backend=null",
        env={"AZURE_VOICELIVE_ENDPOINT": f"http://127.0.0.1:{port}", "AZURE_VOICELIVE_API_KEY": "k-123456789"},
    )
    assert result.returncode == 1
    assert "could not connect" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_audio_device_is_a_usage_error_with_one_line_before_connecting(tmp_path):
    result = run_cli(
        "run", "profiles/demo.yaml", "--log-dir", str(tmp_path), "--set", "connection.emulator.speed=0",
        "--set", 'audio.output={backend: pyaudio, device: "No Such Speaker"}',
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("voicepipe: audio.output: pyaudio: device 'No Such Speaker': ")
    assert "Traceback" not in result.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name for p in run_dir.iterdir()] == ["voicepipe.log.jsonl"]  # the log of the failed start
    events = [json.loads(line)["event"] for line in (run_dir / "voicepipe.log.jsonl").read_text().splitlines()]
    assert "audio_error" in events and "connecting" not in events  # checked before any connection
