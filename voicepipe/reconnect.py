"""What the runtime does when a connection drops: when to try again, what to tell the new connection.

The profile's ``connection.reconnect`` section sets the bounds (all optional)::

    connection:
      reconnect:
        attempts: 5            # connection attempts within window_s; 0 ends the session instead
        window_s: 300          # attempts older than this no longer count
        initial_delay_s: 0.5   # the first wait; each next one doubles, capped, with jitter
        max_delay_s: 15
        history_items: 20      # newest transcript entries re-sent as conversation items
        history_chars: 8000    # and at most this many characters of them
        buffer_audio_s: 0      # captured audio kept while disconnected (the rest is dropped)
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

#: client-chosen ids of re-seeded items start with this, so plugins can tell them from new turns
SEED_ITEM_PREFIX = "vpseed"


@dataclass(frozen=True)
class ReconnectPolicy:
    """The bounds of reconnecting, from ``connection.reconnect``."""

    attempts: int = 5
    window_s: float = 300.0
    initial_delay_s: float = 0.5
    max_delay_s: float = 15.0
    history_items: int = 20
    history_chars: int = 8000
    buffer_audio_s: float = 0.0

    @classmethod
    def from_profile(cls, profile: Any) -> "ReconnectPolicy":
        section = profile.connection.get("reconnect") or {}
        return cls(**{key: value for key, value in section.items() if key in cls.__dataclass_fields__})

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before connection attempt ``attempt`` (1-based): exponential backoff,
        drawn from the upper half of the step so that many clients dropped together spread out."""
        step = min(self.max_delay_s, self.initial_delay_s * 2 ** (attempt - 1))
        return step * (0.5 + 0.5 * rng())


class AttemptBudget:
    """Connection attempts within the policy's window: a connection that is configured and then
    drops again does not start the count over, so a server that keeps accepting and dropping the
    session ends it after ``attempts`` tries, each waiting longer than the one before."""

    def __init__(self, policy: ReconnectPolicy):
        self.policy = policy
        self._times: collections.deque[float] = collections.deque()

    def take(self, now: float) -> int:
        """Count an attempt made at ``now``; its number within the window (1-based), or 0 when
        the budget is spent."""
        while self._times and now - self._times[0] >= self.policy.window_s:
            self._times.popleft()
        if len(self._times) >= self.policy.attempts:
            return 0
        self._times.append(now)
        return len(self._times)


def seed_events(history: Iterable[Mapping[str, Any]], policy: ReconnectPolicy, generation: int) -> list[dict]:
    """``conversation.item.create`` events for the newest history entries within the policy's bounds.

    Entries that are not user or assistant text are skipped; item ids are
    ``vpseed_<generation>_<n>``, so they cannot collide across reconnects.
    """
    picked: list[tuple[str, str]] = []
    chars = 0
    for entry in reversed(list(history)):
        if len(picked) >= policy.history_items:
            break
        role, text = entry.get("role"), entry.get("text")
        if role not in ("user", "assistant") or not isinstance(text, str) or not text.strip():
            continue
        if chars + len(text) > policy.history_chars:
            break
        picked.append((role, text.strip()))
        chars += len(text)
    picked.reverse()
    return [
        {
            "type": "conversation.item.create",
            "item": {
                "id": f"{SEED_ITEM_PREFIX}_{generation}_{number}",
                "type": "message",
                "role": role,
                "content": [{"type": "input_text" if role == "user" else "text", "text": text}],
            },
        }
        for number, (role, text) in enumerate(picked, 1)
    ]


class AudioGap:
    """Captured audio appended while there is no connection: the newest ``limit_s`` seconds are
    kept to send when the connection is back, older chunks are dropped; both are counted."""

    def __init__(self, limit_s: float, sample_rate: int):
        # the appends carry base64 text: 4 characters per 3 bytes, 2 bytes per sample
        self._chars_per_s = sample_rate * 2 * 4 / 3
        self._limit = limit_s * self._chars_per_s
        self._kept: collections.deque[dict] = collections.deque()
        self._kept_chars = 0
        self.dropped_chars = 0

    def add(self, append: Mapping[str, Any]) -> None:
        audio = append.get("audio")
        size = len(audio) if isinstance(audio, str) else 0
        self._kept.append(dict(append))
        self._kept_chars += size
        while self._kept and self._kept_chars > self._limit:
            old = self._kept.popleft()
            old_size = len(old.get("audio") or "")
            self._kept_chars -= old_size
            self.dropped_chars += old_size

    def take(self) -> list[dict]:
        """The kept appends, oldest first; the gap is empty afterwards."""
        kept = list(self._kept)
        self._kept.clear()
        self._kept_chars = 0
        return kept

    @property
    def kept_s(self) -> float:
        return self._kept_chars / self._chars_per_s

    @property
    def dropped_s(self) -> float:
        return self.dropped_chars / self._chars_per_s
