"""Which scenario faults apply to a connection, and when their triggers are reached.

Each fault fires at most once per connection. Counting is per connection: ``after: {event:
response.audio.delta, count: 3}`` fires right after the third audio delta of that connection has
been sent; ``after_client`` right after the matching client event has been handled (so after the
server events it caused were queued); ``after_events: N`` after the N-th server event of any type.
Frames injected by faults themselves (errors, malformed frames) are not counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from voicepipe.emulator.scenario import Fault


def http_status_fault(faults: Sequence[Fault], connection_number: int) -> Optional[Fault]:
    """The ``http_status`` fault for the n-th connection attempt, if the scenario has one."""
    for fault in faults:
        if fault.action == "http_status" and fault.connection in (None, connection_number):
            return fault
    return None


class FaultPlan:
    """The faults still waiting to fire on one connection."""

    def __init__(self, faults: Sequence[Fault], connection_number: int):
        self._waiting = [
            fault for fault in faults if fault.action != "http_status" and fault.connection in (None, connection_number)
        ]
        self._server: Counter[str] = Counter()
        self._client: Counter[str] = Counter()
        self._server_total = 0

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def at_open(self) -> list[Fault]:
        """Faults without a trigger: they fire as soon as the connection is open."""
        return self._take(lambda trigger: trigger is None)

    def server_event_sent(self, event_type: str) -> list[Fault]:
        if not self._waiting:
            return []
        self._server[event_type] += 1
        self._server_total += 1
        count, total = self._server[event_type], self._server_total
        return self._take(
            lambda t: (
                t is not None
                and (
                    (t[0] == "server" and t[1] == event_type and t[2] == count) or (t[0] == "events" and t[2] == total)
                )
            )
        )

    def client_event_handled(self, event_type: str) -> list[Fault]:
        if not self._waiting:
            return []
        self._client[event_type] += 1
        count = self._client[event_type]
        return self._take(lambda t: t is not None and t[0] == "client" and t[1] == event_type and t[2] == count)

    def _take(self, matches) -> list[Fault]:
        fired = [fault for fault in self._waiting if matches(fault.trigger)]
        if fired:
            self._waiting = [fault for fault in self._waiting if fault not in fired]
        return fired
