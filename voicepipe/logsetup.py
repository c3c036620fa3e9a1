"""The technical log: structlog through the standard library, to a JSON-lines file and the console.

Two sinks share one pipeline (structlog's ``ProcessorFormatter`` route):

* ``<run folder>/voicepipe.log.jsonl``: one JSON object per line, written and flushed as it
  happens, DEBUG and up by default, tracebacks as dicts;
* the console (stderr): a readable rendering, INFO and up by default, colours only on a terminal.

Every line carries the session id and turn once :func:`bind_session` has set them. A process that
serves many sessions (``voicepipe serve``) sets up the console only, with ``session_files=True``,
and gives each session its own file with :func:`session_log_file`: a line goes to the file of the
session whose task logged it. The Azure SDK
(and ``msal``, ``aiohttp``, ``asyncio``) log through the standard library; their records pass the same
processors and are capped at ``azure_level`` (WARNING by default: the SDK's DEBUG dumps every
WebSocket frame, base64 audio included). Secrets are masked on every line of both sinks by
:data:`voicepipe.redact.REDACTOR`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO

import structlog

from voicepipe import terminal
from voicepipe.redact import REDACTOR

LOG_FILE_NAME = "voicepipe.log.jsonl"
#: standard-library loggers capped at ``azure_level``
THIRD_PARTY_LOGGERS = ("azure", "msal", "aiohttp", "urllib3", "websockets", "asyncio")

# A mutable holder in a context variable: set once where a session begins (configure_logging or
# session_scope), filled in later by bind_session from whichever task learns the session id, and
# seen by every task created in between, since tasks copy the context but share the holder.
_session_tags: contextvars.ContextVar[Optional[dict]] = contextvars.ContextVar("voicepipe_session", default=None)
_handlers: list[logging.Handler] = []
#: the run-folder log of the session running in this context (``voicepipe serve``)
_session_file: contextvars.ContextVar[Optional[logging.Handler]] = contextvars.ContextVar(
    "voicepipe_session_file", default=None
)


def configure_logging(
    run_dir: Optional[Path],
    *,
    console_level: str | int = "INFO",
    file_level: str | int = "DEBUG",
    azure_level: str | int = "WARNING",
    console_stream: Optional[TextIO] = None,
    session_files: bool = False,
) -> Any:
    """Set up logging for one run and return the ``voicepipe`` logger.

    ``run_dir`` ``None`` logs to the console only, plus, with ``session_files``, to the file of
    whichever :func:`session_log_file` is open where a line is logged. ``console_stream``
    defaults to whatever ``sys.stderr`` is when a line is written. Calling it again replaces the
    previous set-up.
    """
    shutdown_logging(fallback=False)
    REDACTOR.refresh_env()
    console_level_no = _level(console_level, "console_level")
    file_level_no = _level(file_level, "file_level")
    azure_level_no = _level(azure_level, "azure_level")

    shared = _shared_processors()
    _mask_records_of_other_libraries()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            _masked,  # before the record exists: every handler gets it masked, not only ours
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # configure_logging may run again (tests, several runs)
    )

    handlers: list[logging.Handler] = []
    console = _ConsoleHandler(console_stream)
    console.setLevel(console_level_no)
    console.setFormatter(_console_formatter(shared, console))
    handlers.append(console)
    if run_dir is not None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        file = _RunLogHandler(run_dir / LOG_FILE_NAME)
        file.setLevel(file_level_no)
        file.setFormatter(_json_formatter(shared))
        handlers.append(file)
    if session_files:
        router = _SessionFiles()
        router.setLevel(file_level_no)
        handlers.append(router)

    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    _handlers.extend(handlers)
    root.setLevel(min(h.level for h in handlers))
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(azure_level_no)
    logging.captureWarnings(True)

    session_scope()
    return get_logger()


class _SessionFiles(logging.Handler):
    """Hands each record to the run-folder log of the session that logged it, if any."""

    def emit(self, record: logging.LogRecord) -> None:
        target = _session_file.get()
        if target is not None:
            target.handle(record)


@contextlib.contextmanager
def session_log_file(run_dir: Path, level: str | int = "DEBUG") -> Iterator[None]:
    """Within this block (and the tasks it starts), lines also go to ``run_dir``'s log file.

    For processes that run many sessions: set up with ``configure_logging(None,
    session_files=True)``, then run each session inside its own block.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG_FILE_NAME, mode="a", encoding="utf-8")
    handler.setLevel(_level(level, "file_level"))
    handler.setFormatter(_json_formatter(_shared_processors()))
    token = _session_file.set(handler)
    try:
        yield
    finally:
        _session_file.reset(token)
        handler.close()


def _masked(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: the event with every secret masked."""
    return _MaskedEventDict(REDACTOR.redact_obj(event_dict))


class _MaskedEventDict(dict):
    """An event dict, as the record's ``msg``, whose text is masked too.

    Its string values are masked already, but not what other objects in it print: an exception
    under ``exc_info`` keeps its message for voicepipe's own formatters to render (and mask), and a
    handler voicepipe does not own (pytest's capture) prints the record as ``str(msg)``. Only that
    rendering pays; structlog's formatter copies the dict into a plain one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return REDACTOR.redact(dict.__repr__(self))

    __str__ = __repr__


def _mask_records_of_other_libraries() -> None:
    """Mask the text of every stdlib log record as it is made (the Azure SDK's, aiohttp's), so that
    handlers voicepipe does not own (pytest's capture, an embedding application's) never see a
    secret. Installed once; records below a logger's level are never made, so they cost nothing.

    A record carrying an exception (``exc_info``) gets its traceback rendered here, once, and masked
    into ``exc_text``, which ``logging.Formatter`` prints instead of rendering the exception itself.
    voicepipe's own formatters ignore ``exc_text`` and render ``exc_info`` (masking the result), so
    their output is unchanged."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "voicepipe_masks", False):
        return

    def make_masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if record.exc_info and not record.exc_text:
            _mask_traceback(record)
        if isinstance(record.msg, str):
            if record.args:
                # an argument may be an object whose str() holds the secret (a URL): mask the text
                try:
                    record.msg, record.args = record.getMessage(), None
                except Exception:  # a broken format string is the logging module's to report
                    return record
            record.msg = REDACTOR.redact(record.msg)
        return record

    make_masked_record.voicepipe_masks = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_masked_record)


_TRACEBACKS = logging.Formatter()


def _mask_traceback(record: logging.LogRecord) -> None:
    """Set ``record.exc_text`` to the record's traceback, masked, if it holds a secret (otherwise
    each handler's formatter renders it its own way, as usual)."""
    try:
        text = _TRACEBACKS.formatException(record.exc_info)  # type: ignore[arg-type]
    except Exception:  # not an exception the logging module can render: its formatter's to report
        return
    masked = REDACTOR.redact(text)
    if masked is not text:
        record.exc_text = masked


def shutdown_logging(*, fallback: bool = True) -> None:
    """Flush and close the handlers :func:`configure_logging` installed. Safe to call twice.

    Lines logged afterwards still pass the redacting console formatter (WARNING and up, stderr),
    unless ``fallback`` is false (new handlers are about to be installed).
    """
    root = logging.getLogger()
    while _handlers:
        handler = _handlers.pop()
        root.removeHandler(handler)
        try:
            handler.flush()
            handler.close()
        except Exception:  # a closed stream at interpreter exit must not raise here
            pass
    if fallback and structlog.is_configured():
        handler = _ConsoleHandler(None)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(_console_formatter(_shared_processors(), handler))
        root.addHandler(handler)
        _handlers.append(handler)


def get_logger(name: str = "voicepipe", **initial: Any) -> Any:
    """A structlog logger (cheap: no caller inspection). ``initial`` fields are bound to it."""
    logger = structlog.get_logger(name)
    return logger.bind(**initial) if initial else logger


def session_scope() -> dict:
    """Start a fresh set of session tags in the current context (one per concurrently running
    session; :func:`configure_logging` starts one). Tasks created afterwards share it."""
    tags: dict = {}
    _session_tags.set(tags)
    return tags


def bind_session(session_id: Optional[str] = None, turn: Optional[int] = None) -> None:
    """Add ``session_id`` and/or ``turn`` to every line logged from now on in this session's scope
    (arguments left ``None`` keep their current value)."""
    tags = _session_tags.get()
    if tags is None:
        tags = session_scope()
    if session_id is not None:
        tags["session_id"] = session_id
    if turn is not None:
        tags["turn"] = turn


def clear_session() -> None:
    """Forget the session id and turn of the current scope."""
    tags = _session_tags.get()
    if tags is not None:
        tags.clear()


# -- processors ------------------------------------------------------------------------------------


def _add_session_tags(logger: Any, method: str, event_dict: dict) -> dict:
    tags = _session_tags.get()
    if tags:
        for key, value in tags.items():
            event_dict.setdefault(key, value)
    return event_dict


def _redact(logger: Any, method: str, event_dict: dict) -> dict:
    return REDACTOR.redact_obj(event_dict)


_FIRST_KEYS = ("timestamp", "level", "logger", "event", "session_id", "turn")


def _first_keys_first(logger: Any, method: str, event_dict: dict) -> dict:
    """JSON lines start with when, how bad, who and what; the details follow."""
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _local_time(logger: Any, method: str, event_dict: dict) -> dict:
    """Console lines show the local time of day; the file keeps the full UTC timestamp."""
    stamp = event_dict.get("timestamp")
    if isinstance(stamp, str):
        try:
            event_dict["timestamp"] = datetime.fromisoformat(stamp).astimezone().strftime("%H:%M:%S.%f")[:-3]
        except ValueError:
            pass
    return event_dict


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        _add_session_tags,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _json_formatter(shared: list) -> logging.Formatter:
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False, use_rich=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            tracebacks,
            _redact,
            _first_keys_first,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
    )


def _console_formatter(shared: list, handler: "_ConsoleHandler") -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            _local_time,
            _ConsoleRenderer(handler),
        ],
    )


class _ConsoleRenderer:
    """structlog's console renderer, with colours only when the stream is a terminal."""

    def __init__(self, handler: "_ConsoleHandler"):
        self.handler = handler
        self._plain = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=24)
        self._colored: Optional[structlog.dev.ConsoleRenderer] = None

    def __call__(self, logger: Any, method: str, event_dict: dict) -> str:
        if self.handler.is_tty():
            if self._colored is None:
                self._colored = structlog.dev.ConsoleRenderer(colors=True, pad_event_to=24)
            return self._colored(logger, method, event_dict)
        return self._plain(logger, method, event_dict)


class _RunLogHandler(logging.StreamHandler):
    """The run folder's technical log: each record one whole line, on disk when ``emit`` returns.
    When the disk refuses a write, the log stops (what it holds stays whole) and the session is
    told (:func:`voicepipe.diskwrite.report`), instead of a traceback for every record after."""

    def __init__(self, path: Path):
        from voicepipe.diskwrite import LineFile

        super().__init__(LineFile(path))
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        try:
            self.stream.write(self.format(record) + self.terminator)
        except OSError as exc:
            from voicepipe.diskwrite import is_write_failure, report

            if not is_write_failure(exc):
                self.handleError(record)
                return
            self.failed = True
            report(exc)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            super().close()


class _ConsoleHandler(logging.StreamHandler):
    """A stream handler whose default stream is the current ``sys.stderr`` (which tests replace)."""

    def __init__(self, stream: Optional[TextIO]):
        super().__init__(stream if stream is not None else sys.stderr)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # StreamHandler.__init__ assigns it; the property decides

    def is_tty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):
            return False

    def emit(self, record: logging.LogRecord) -> None:
        # above the console's status line, never through it
        with terminal.above_status():
            super().emit(record)

    def close(self) -> None:
        # never close the caller's stream or sys.stderr
        logging.Handler.close(self)


def _level(value: str | int, what: str) -> int:
    if isinstance(value, int):
        return value
    number = logging.getLevelName(str(value).upper())
    if not isinstance(number, int):
        from voicepipe.errors import UsageError

        raise UsageError(
            f"logging.{what}: unknown level {value!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)"
        )
    return number
