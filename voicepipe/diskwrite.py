"""Writing the run folder so that a full disk loses nothing already written and ends the session.

A write can fail half-way: a full disk (``ENOSPC``), a quota (``EDQUOT``), a file-size limit
(``EFBIG``), a disk gone read-only or failing (``EROFS``, ``EIO``). The files of a run folder are
written a whole line (or, for a WAV file, whole frames) at a time; when a write fails, what it
wrote of the line is cut off again, so every file still ends on a whole line. The failure itself is
not a plugin's bug: the pipeline and the technical log hand it to the session, which ends at once
as a failure with one line saying which file could not be written.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any, Callable

#: the errors that mean the disk (not the program) refused a write
WRITE_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG, errno.EROFS, errno.EIO) if code
)

_listeners: list[Callable[[OSError], None]] = []
_lock = threading.Lock()


def is_write_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def describe(exc: OSError) -> str:
    """``cannot write <file>: <reason>``, one line."""
    where = Path(exc.filename).name if exc.filename else "the run folder"
    return f"cannot write {where}: {exc.strerror or os.strerror(exc.errno or 0)}"


def listen(callback: Callable[[OSError], None]) -> Callable[[], None]:
    """Call ``callback`` when a write of the technical log fails; returns what stops it."""
    with _lock:
        _listeners.append(callback)

    def remove() -> None:
        with _lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return remove


def report(exc: OSError) -> None:
    """Tell the listening sessions that a run-folder write failed."""
    with _lock:
        listeners = list(_listeners)
    for callback in listeners:
        callback(exc)


class LineFile:
    """A text file appended to a whole line at a time, unbuffered: a write that fails is cut off
    again, so the file ends on the last whole line. The failure (an ``OSError`` naming the file)
    is raised."""

    def __init__(self, path: Path):
        self.name = str(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self.closed = False

    def write(self, text: str) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        data = text.encode("utf-8")
        self._size = append_whole(self._fd, data, self._size, self.name)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)

    def __enter__(self) -> "LineFile":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def append_whole(fd: int, data: bytes, size: int, name: str) -> int:
    """Append ``data`` to the file open at ``fd`` (``size`` bytes long, append mode); the new size.
    On failure the file is cut back to ``size`` and the error, naming ``name``, is raised."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise OSError(exc.errno, exc.strerror, name) from None
    return size + len(data)


def write_whole(path: Path, text: str) -> None:
    """Write ``path`` as a whole or not at all (through a temporary file next to it)."""
    temporary = path.with_name(path.name + ".partial")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise OSError(exc.errno, exc.strerror, str(path)) from None
