"""The ``voicepipe`` command. Imports stay inside the subcommands so that ``--help`` is fast."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Iterator, Optional, Sequence

from voicepipe import __version__, eventloop

DESCRIPTION = """\
Run Azure AI Voice Live sessions described by YAML profiles, through plugins.

examples:
  voicepipe init my-agent                      a starter project: profile, plugin and its test
  voicepipe run builtin:demo.yaml              offline demo: local emulator, WAV in and out
  voicepipe run profiles/ava.yaml              microphone and speakers against Azure
  voicepipe run profiles/ava.yaml --set session.voice.name=en-US-Emma:DragonHDLatestNeural
  voicepipe validate profiles/*.yaml           check profiles without connecting
  voicepipe show profiles/ava.yaml             the session.update that would be sent
  voicepipe schema -o profile.schema.json      the profile's JSON Schema, for editor completion
  voicepipe replay logs/<run folder>           feed a recorded session through the plugins again
  voicepipe test conversations/                run the conversation tests, offline
  voicepipe report logs/<run folder>           one HTML file: timeline, latency, transcript
  voicepipe serve profiles/web-demo.yaml       a session of the profile for every caller, in a browser

Azure: set AZURE_VOICELIVE_ENDPOINT, then either `az login` (Entra ID) or AZURE_VOICELIVE_API_KEY.
"""


SERVE_DESCRIPTION = """\
Serve profiles to callers: every media connection (a browser at http://HOST:PORT/<name>/) runs one
session of the profile, with its own run folder, exactly as `voicepipe run` would.

The media endpoint needs the token held in $VOICEPIPE_SERVE_TOKEN (serve.token_env), sent as
`Authorization: Bearer <token>` or the WebSocket subprotocol `voicepipe.token.<token>`; a profile
on the emulator endpoint needs none unless it is set. Limits, origins and the drain time are in the
profile's serve: section. /healthz, /readyz (503 draining or full) and /metrics (Prometheus).
SIGTERM or Ctrl+C drains (sessions run up to serve.drain_timeout_s); a second one ends at once.

examples:
  voicepipe serve profiles/web-demo.yaml                   offline demo, no credentials
  voicepipe serve profiles/ava.yaml --host 0.0.0.0 --workers 2
"""


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only``, a command's name, the other commands are left out
    (parsing one command's arguments needs no other's parser, and making them all took a few
    milliseconds of ``voicepipe validate``'s start). A name that is no command gets the whole
    parser, whose error lists them all."""
    parser = argparse.ArgumentParser(
        prog="voicepipe", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"voicepipe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> Any:
        if only is not None and name != only:
            return _LeftOut()
        return commands.add_parser(name, **kwargs)

    def profile_overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a profile key, e.g. --set session.voice.temperature=0.7 (repeatable)",
        )

    run = command("run", help="run a voice session", description="Run a voice session from a profile. "
                  "Stop it with q + Enter, Ctrl+C or SIGTERM; files are complete however it ends.")
    run.add_argument("profile", metavar="PROFILE", help="path to a YAML profile")
    profile_overrides(run)
    run.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    run.add_argument("--quiet", action="store_true", help="print only each turn's final words")
    run.add_argument("-v", "--verbose", action="count", default=0,
                     help="show the technical log on the console too: -v info, -vv debug (it is always in the run folder)")
    run.add_argument("--log-dir", metavar="DIR", help="where run folders go (default: the profile's logging.dir, else logs/)")

    validate = command("validate", help="check profiles without connecting (exit 0 or 2)")
    validate.add_argument("profiles", nargs="+", metavar="PROFILE")
    profile_overrides(validate)

    show = command("show", help="print the session.update a profile sends, and where it connects")
    show.add_argument("profile", metavar="PROFILE")
    profile_overrides(show)

    plugins = command("plugins", help="list plugins: name, origin, hooks")
    plugins.add_argument("profile", nargs="?", metavar="PROFILE", help="include the plugins this profile loads")

    emulator = command("emulator", help="serve the local Voice Live emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    emulator.add_argument("--scenario", metavar="FILE", help="YAML scenario: turns, tool calls, faults")
    emulator.add_argument(
        "--speed",
        type=float,
        help="audio pacing: 1 real time, N times faster, 0 unpaced (default: like the service, a burst then 4x)",
    )
    emulator.add_argument("--burst-ms", type=float, help="audio sent at once when an answer starts, then --speed")
    emulator.add_argument("--api-key-env", metavar="VAR", help="accept only the key held in this environment variable")

    profiles = command(
        "profiles", help="list the profiles shipped with voicepipe (use them as builtin:NAME)",
        description="The profiles shipped with voicepipe. Run one (voicepipe run builtin:demo.yaml) or "
        "start your own from it (extends: builtin:ava.yaml).",
    )
    profiles.add_argument("--path", action="store_true", help="print the folder they are in")

    schema = command(
        "schema", help="print the profile's JSON Schema, for editor completion",
        description="Print a JSON Schema (draft 2020-12) of a profile, with each key's meaning and default. "
        "Save it and name it on a profile's first line for completion and checking in editors that use "
        "the YAML language server: # yaml-language-server: $schema=profile.schema.json",
    )
    schema.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of printing it")

    init = command(
        "init", help="write a starter project: a profile, an example plugin with its test, .env.example",
        description="Write a starter project into DIR (default: the current folder): profiles/my-agent.yaml "
        "(offline, against the local emulator), plugins/keyword_alert.py with tests/test_keyword_alert.py, "
        ".env.example and profile.schema.json for editor completion. Existing files are left alone unless --force.",
    )
    init.add_argument("folder", nargs="?", default=".", metavar="DIR")
    init.add_argument("--force", action="store_true", help="overwrite files that are already there")

    serve = command(
        "serve",
        help="serve profiles to callers (a session for each), with health, readiness and metrics",
        description=SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("profiles", nargs="+", metavar="PROFILE", help="profiles to serve, each at /<name>/")
    profile_overrides(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="processes sharing the port (needs voicepipe-live[serve]: gunicorn; default 1)")
    serve.add_argument("--max-sessions", type=int, metavar="N",
                       help="sessions at once per process (default: the sum of the profiles' serve.max_sessions)")
    serve.add_argument("--log-dir", metavar="DIR", help="where run folders go (default: each profile's logging.dir, else logs/)")

    devices = command("devices", help="list audio input and output devices")
    devices.add_argument("--backend", choices=["pyaudio", "sounddevice"], help="only this backend")

    replay = command("replay", help="feed a recorded session through the plugins, offline")
    replay.add_argument("source", metavar="RUN_FOLDER_OR_EVENTS", help="a run folder, its events.jsonl, or a recorded cassette")
    replay.add_argument("--profile", metavar="PROFILE", help="profile whose plugins to use (default: built-ins)")
    replay.add_argument("--log-dir", metavar="DIR", help="where the replay's run folder goes")

    test = command(
        "test", help="run conversation tests: scripted calls and what the answers must show",
        description="Run conversation files (*.conversation.yaml, or the files named): each turn is said, "
        "typed or played to the profile's session, and its answer checked. Prints pass/fail per turn; exit 0 "
        "when all pass, 1 when one fails, 2 for a file that is not valid.")
    test.add_argument("paths", nargs="+", metavar="PATH", help="conversation files or folders (searched for "
                      "*.conversation.yaml)")
    profile_overrides(test)
    test.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="run N conversations at a time (default 1)")
    test.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    test.add_argument("--pace", choices=["auto", "fast", "realtime"], help="override every file's pace")
    test.add_argument("--log-dir", metavar="DIR", help="where run folders go (default: the profile's logging.dir, else logs/)")
    test.add_argument("--no-report", action="store_true", help="do not write report.html into each run folder")

    report = command("report", help="write a run folder's report.html (timeline, latency, transcript)")
    report.add_argument("run_folder", metavar="RUN_FOLDER")
    report.add_argument("-o", "--output", metavar="FILE", help="where to write it (default RUN_FOLDER/report.html)")
    if only is not None and only not in commands.choices:
        return build_parser()
    return parser


class _LeftOut:
    """A command :func:`build_parser` leaves out: its arguments go nowhere."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    with _masked_output():
        # a command named first takes every word after it: the others' parsers are not needed
        parser = build_parser(only=words[0] if words and not words[0].startswith("-") else None)
        args = parser.parse_args(words)
        if args.command is None:
            parser.print_help()
            return 2
        return _dispatch(globals()[f"cmd_{args.command}"], args)


#: commands that read files and print, and leave nothing open: ``--help``, ``--version`` and usage
#: errors are among them (no command)
PRINT_ONLY_COMMANDS = frozenset({None, "validate", "show", "plugins", "profiles"})
#: the collector's first threshold in those: a collection after every 50 000 new objects instead of
#: every 700 (at most a few megabytes of garbage in reference cycles wait for it)
PRINT_ONLY_GC_THRESHOLD = 50_000


def program() -> None:
    """The ``voicepipe`` program (the console script and ``python -m voicepipe``): :func:`main`,
    and the exit status.

    A command of :data:`PRINT_ONLY_COMMANDS` is a short process whose objects are nearly all
    imported modules' and live to its end, so the collector is kept out of its way: it runs rarely
    (:data:`PRINT_ONLY_GC_THRESHOLD`; at the default it ran a few dozen times while ``voicepipe
    validate`` imported), and what is alive at the end is moved out of its last collections at
    exit (``gc.freeze()``). Together they were a tenth of ``validate``'s time (10-15 ms). What
    those collections at exit are for, finalizers of objects in reference cycles (an unclosed
    file's flush), does not arise in a command that writes no file; any other command runs and
    exits with the collector as it is.
    """
    import gc

    argv = sys.argv[1:]
    print_only = _command_of(argv) in PRINT_ONLY_COMMANDS
    if print_only:
        gc.set_threshold(PRINT_ONLY_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        code = main(argv)
    finally:
        if print_only:
            gc.freeze()
    raise SystemExit(code)


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand ``argv`` names (the first word not an option: the top level's options take
    no value), ``None`` for none."""
    return next((word for word in argv if not word.startswith("-")), None)

#: the commands that run an event loop (see voicepipe.eventloop)
LOOP_COMMANDS = ("run", "serve", "replay", "test", "emulator")


def _dispatch(handler: Any, args: argparse.Namespace) -> int:
    from voicepipe.errors import ProfileError, VoicepipeError

    try:
        if args.command not in ("init", "profiles", "devices", "schema"):
            _read_dotenv()
        if args.command in LOOP_COMMANDS:
            eventloop.chosen()  # a bad VOICEPIPE_LOOP ends here, before a run folder is made
        return handler(args)
    except ProfileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except VoicepipeError as exc:
        print(f"voicepipe: {_redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("voicepipe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`voicepipe show ... | head`); keep the interpreter's final flush quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _read_dotenv() -> None:
    """Variables from ``.env`` in the working directory, as the SDK samples read them: set only
    where the environment has no value of its own; the names are said, never the values."""
    from pathlib import Path

    path = Path(".env")
    if not path.is_file():
        return
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"voicepipe: .env not read: {exc}", file=sys.stderr)
        return
    taken = []
    for name, value in values.items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            taken.append(name)
    if taken:
        from voicepipe.redact import REDACTOR

        REDACTOR.refresh_env()  # a key from .env is masked like one from the environment
        print(f"voicepipe: from .env: {', '.join(sorted(taken))}", file=sys.stderr)


class _MaskedStream:
    """``sys.stdout`` / ``sys.stderr`` with secrets masked in everything written, whoever writes
    it: every command masks, whatever a plugin's error message or a file name holds."""

    def __init__(self, stream: Any, redact: Any):
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        self._stream.write(self._redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _masked_output() -> Iterator[None]:
    try:
        from voicepipe.redact import REDACTOR
    except ImportError:
        yield
        return
    REDACTOR.refresh_env()
    saved = sys.stdout, sys.stderr
    sys.stdout = _MaskedStream(saved[0], REDACTOR.redact)  # type: ignore[assignment]
    sys.stderr = _MaskedStream(saved[1], REDACTOR.redact)  # type: ignore[assignment]
    try:
        yield
    finally:
        if isinstance(sys.stdout, _MaskedStream):
            sys.stdout = saved[0]
        if isinstance(sys.stderr, _MaskedStream):
            sys.stderr = saved[1]


def _redact(text: str) -> str:
    try:
        from voicepipe.redact import REDACTOR
    except ImportError:
        return text
    return REDACTOR.redact(text)


def _load(path: str, overrides: Sequence[str]):
    from voicepipe.profile import load_profile

    profile = load_profile(path, overrides)
    for warning in profile.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return profile


def cmd_run(args: argparse.Namespace) -> int:
    from voicepipe.connection import resolve_target
    from voicepipe.logsetup import configure_logging, shutdown_logging
    from voicepipe.plugins import configure_plugins, make_plugin_manager
    from voicepipe.rundir import make_run_dir
    from voicepipe.runtime import SessionRunner

    import signal

    # until the session's own handlers take over: SIGTERM while starting up ends like Ctrl+C
    signal.signal(signal.SIGTERM, _interrupted)
    overrides = list(args.set) + (["console.quiet=true", "metrics.table=false"] if args.quiet else [])
    profile = _load(args.profile, overrides)
    pm = make_plugin_manager(profile)
    configure_plugins(pm, profile)
    resolve_target(profile)  # credential and endpoint problems end here, before any file is written
    run_dir = make_run_dir(profile, base=args.log_dir)
    settings = profile.logging
    console_level = {0: settings.get("level", "WARNING"), 1: "INFO"}.get(args.verbose, "DEBUG")
    log = configure_logging(
        run_dir,
        console_level="ERROR" if args.quiet else console_level,
        file_level=settings.get("file_level", "DEBUG"),
        azure_level=settings.get("azure_level", "WARNING"),
    )
    where = f"run folder: {_redact(str(run_dir))}"
    runner = SessionRunner(
        profile, pm, run_dir, log, duration=args.duration, handle_signals=True, watch_stdin=True,
        on_connected=None if args.quiet else lambda: print(where, file=sys.stderr, flush=True),
    )
    try:
        return eventloop.run(runner.run())
    finally:
        shutdown_logging()
        if runner.connected and (profile.section("report") or {}).get("enabled", True):
            _write_report(run_dir)
        if not args.quiet:  # said once for a start that failed: the folder holds its log
            print(where + ("" if runner.connected else " (the log of the failed start)"), file=sys.stderr)


def _write_report(run_dir) -> None:
    """report.html in the run folder; a report that cannot be made is a warning, not a failure of
    the session (everything it is made from is on disk)."""
    from voicepipe.errors import VoicepipeError
    from voicepipe.report import write_report

    try:
        write_report(run_dir)
    except (VoicepipeError, OSError, ValueError) as exc:
        print(f"warning: no report.html: {_redact(str(exc))} (voicepipe report {run_dir} tries again)", file=sys.stderr)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_validate(args: argparse.Namespace) -> int:
    from voicepipe.errors import ProfileError, VoicepipeError
    from voicepipe.plugins import configure_plugins, make_plugin_manager

    failed = False
    for path in args.profiles:
        try:
            profile = _load(path, args.set)
            configure_plugins(make_plugin_manager(profile), profile)
        except ProfileError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        except VoicepipeError as exc:
            failed = True
            print(f"{path}: {exc}" if not str(exc).startswith(path) else str(exc), file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 2 if failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    import json

    from voicepipe.plugins import configure_plugins, make_plugin_manager
    from voicepipe.profile import build_request_session

    profile = _load(args.profile, args.set)
    pm = make_plugin_manager(profile)
    configure_plugins(pm, profile)
    session = build_request_session(profile)
    pm.hook.voicepipe_session_config(profile=profile, session=session)  # what plugins add (tools, ...)
    conn = profile.connection
    target = {key: conn[key] for key in ("endpoint", "model", "api_version", "auth", "agent") if key in conn}
    print("# connection: " + _redact(json.dumps(target, sort_keys=True)))
    print(_redact(json.dumps({"type": "session.update", "session": session.as_dict()}, indent=2)))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from voicepipe.plugins import make_plugin_manager

    profile = _load(args.profile, []) if args.profile else None
    pm = make_plugin_manager(profile)
    rows = [(info.name, info.source, ", ".join(h.removeprefix("voicepipe_") for h in info.hooks)) for info in pm.describe()]
    width = [max(len(r[i]) for r in rows + [("name", "from", "")]) for i in range(2)]
    print(f"{'name':<{width[0]}}  {'from':<{width[1]}}  hooks")
    for name, source, hooks in rows:
        print(f"{name:<{width[0]}}  {source:<{width[1]}}  {hooks}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    import os

    from voicepipe.emulator import serve
    from voicepipe.errors import UsageError

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise UsageError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    return serve(args.host, args.port, args.scenario, api_key, args.speed, args.burst_ms)


def cmd_profiles(args: argparse.Namespace) -> int:
    from voicepipe import shipped

    if args.path:
        print(shipped.root() / "profiles")
        return 0
    names = shipped.list_profiles()
    width = max(len(name) for name in names)
    for name in names:
        print(f"builtin:{name:<{width}}  {shipped.describe(name)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from voicepipe.errors import UsageError
    from voicepipe.profile.editorschema import schema_text

    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from voicepipe import starter

    folder = Path(args.folder)
    written = starter.init_project(folder, force=args.force)
    for path in written:
        print(f"wrote {path}")
    where = "" if folder.resolve() == Path.cwd() else f"cd {args.folder} && "
    print(f"\nnext: {where}voicepipe run profiles/my-agent.yaml      (offline: the local emulator answers)")
    print("      pytest tests/                          (the plugin's test)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from voicepipe.errors import UsageError
    from voicepipe.logsetup import configure_logging, get_logger, shutdown_logging
    from voicepipe.serve.server import ServeOptions, describe, make_host, print_lines

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0 to 65535, got {args.port}")
    if args.workers < 1:
        raise UsageError(f"--workers: expected 1 or more, got {args.workers}")
    if args.max_sessions is not None and args.max_sessions < 1:
        raise UsageError(f"--max-sessions: expected 1 or more, got {args.max_sessions}")
    options = ServeOptions(list(args.profiles), list(args.set), args.host, args.port, args.workers, args.log_dir,
                           args.max_sessions)
    temporary_metrics = None
    if args.workers > 1:
        try:
            from voicepipe.serve import workers
        except ImportError:
            raise UsageError("--workers needs gunicorn: pip install 'voicepipe-live[serve]' (or leave out --workers)") from None
    if args.workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from voicepipe.serve.metrics import metrics_folder

        folder, temporary = metrics_folder()  # before prometheus_client is imported
        temporary_metrics = folder if temporary else None
    configure_logging(None, session_files=True)
    try:
        host, guard = make_host(options, get_logger(), metrics=args.workers == 1)
        for served in host.profiles.values():  # each loaded once, by make_host
            for warning in served.profile.warnings:
                print(f"warning: {warning}", file=sys.stderr)
        announce = lambda port: print_lines(describe(host, guard, args.host, port))  # noqa: E731
        if args.workers > 1:
            return workers.run_workers(options, host.drain_timeout_s, announce)
        from voicepipe.serve.server import serve

        return eventloop.run(serve(host, guard, args.host, args.port, announce))
    finally:
        shutdown_logging()
        if temporary_metrics is not None:
            from voicepipe.serve.metrics import remove_metrics_folder

            remove_metrics_folder(temporary_metrics)


def cmd_devices(args: argparse.Namespace) -> int:
    from voicepipe.audio.devices import format_devices, list_devices

    print(format_devices(list_devices(args.backend)))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from voicepipe.errors import UsageError
    from voicepipe.logsetup import configure_logging, shutdown_logging
    from voicepipe.plugins import configure_plugins, make_plugin_manager
    from voicepipe.replay import replay
    from voicepipe.rundir import make_run_dir

    source = Path(args.source)
    if not source.exists():
        raise UsageError(f"{source}: no such run folder or events file")
    profile = _load(args.profile, []) if args.profile else _replay_profile()
    # recorded playback milestones stand in for the audio plugin; recorded tool calls are not run again
    pm = make_plugin_manager(profile, without=("audio", "tools"))
    configure_plugins(pm, profile)
    run_dir = make_run_dir(profile, base=args.log_dir)
    configure_logging(run_dir)
    try:
        return eventloop.run(replay(profile, source, run_dir, pm=pm))
    finally:
        shutdown_logging()
        print(f"replayed {source} into {_redact(str(run_dir))}", file=sys.stderr)


def _replay_profile():
    from voicepipe.profile import Profile

    return Profile.empty("replay")


def cmd_test(args: argparse.Namespace) -> int:
    from voicepipe.conversation.output import print_result, print_summary
    from voicepipe.conversation.runner import run_many
    from voicepipe.conversation.spec import collect, load_conversation
    from voicepipe.errors import ProfileError, UsageError
    from voicepipe.logsetup import configure_logging, shutdown_logging

    if args.jobs < 1:
        raise UsageError(f"--jobs: expected a number >= 1, got {args.jobs}")
    files = collect(args.paths)
    if not files:
        raise UsageError(f"no conversation files (*.conversation.yaml) in {' '.join(args.paths)}")
    conversations, bad = [], False
    for path in files:
        try:
            conversations.append(load_conversation(path))
        except ProfileError as exc:
            bad = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        except UsageError as exc:
            bad = True
            print(str(exc), file=sys.stderr)
    if bad:
        return 2
    configure_logging(None, console_level="WARNING", session_files=True)
    try:
        results = eventloop.run(run_many(conversations, jobs=args.jobs, on_result=print_result, overrides=args.set,
                                       pace=args.pace, log_dir=args.log_dir, report=not args.no_report))
    finally:
        shutdown_logging()
    if args.junit:
        from voicepipe.conversation.junit import write_junit

        write_junit(results, args.junit)
    return print_summary(results)


def cmd_report(args: argparse.Namespace) -> int:
    from voicepipe.report import write_report

    print(write_report(args.run_folder, args.output))
    return 0
