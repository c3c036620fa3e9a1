"""The terminal's bottom line: one status line that other output never tears.

The console plugin keeps a status line at the bottom of a terminal (the turn state, the words in
progress, the input level) and rewrites it in place. Anything else printed to the same terminal (a
warning from the log, say) must first take the status line away and put it back after, or the two
end up on one line. The console registers itself here with :func:`claim`; whoever prints
wraps the write in :func:`above_status`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional, Protocol


class StatusLine(Protocol):
    def hide(self) -> None:
        """Take the status line off the screen (leave the cursor at the start of an empty line)."""

    def show(self) -> None:
        """Draw the status line again."""


_owner: Optional[StatusLine] = None
#: held while anything is written to the terminal, by the status line's owner too
lock = threading.RLock()


def claim(status: StatusLine) -> None:
    """Make ``status`` the terminal's status line (one at a time: the last claim wins)."""
    global _owner
    with lock:
        _owner = status


def release(status: StatusLine) -> None:
    global _owner
    with lock:
        if _owner is status:
            _owner = None


@contextlib.contextmanager
def above_status() -> Iterator[None]:
    """Print something above the status line: it is hidden during the block and shown after."""
    with lock:
        owner = _owner
        if owner is None:
            yield
            return
        owner.hide()
        try:
            yield
        finally:
            owner.show()
