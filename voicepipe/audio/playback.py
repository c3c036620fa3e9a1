"""The queue every built-in output backend plays from, with per-item accounting.

Audio written for an assistant item waits in the queue until the backend's clock takes it: a device
callback (frames actually handed to the device) or a file's virtual timeline. Whatever takes audio
advances that item's *played* counter, so ``played_ms`` is the backend's own clock and never a
wall-clock guess. The queue is shared between the event loop thread (``write``, ``clear``, the
readers) and a device's callback thread (``take``), so every operation holds one small lock for the
time of a few list operations and one copy.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Optional

from voicepipe.audio.base import ItemPlayback
from voicepipe.audio.pcm import SAMPLE_WIDTH, LazyPCM
from voicepipe.lazyimport import lazy_module

logging = lazy_module("logging", globals())  # for a full queue only: `voicepipe validate` needs none

#: assistant items remembered for ``played_ms``; older ones are forgotten once none of their
#: audio is queued (an item still waiting to be played is never forgotten)
MAX_ITEMS = 256

#: audio the queue holds at most: a server that sends faster than real time (or a hostile one) must
#: not grow it without end; what does not fit is dropped, counted and logged once
MAX_QUEUED_S = 300.0

Milestone = tuple[str, str]  # ("started" | "finished", item_id)


def _queueable(pcm: Any) -> Any:
    """Audio as the queue keeps it: immutable (``bytes``, or a ``LazyPCM`` left undecoded) and a
    whole number of frames long."""
    if type(pcm) is LazyPCM:
        if pcm.nbytes % SAMPLE_WIDTH:
            pcm = pcm.cut(pcm.nbytes - 1)
        return pcm
    if type(pcm) is not bytes:
        pcm = bytes(pcm)  # queued audio is immutable: take() may hand it on as it is
    if len(pcm) % SAMPLE_WIDTH:
        pcm = pcm[: len(pcm) - 1]
    return pcm


class _Item:
    __slots__ = ("written", "played", "queued", "started_at", "finished_at")

    def __init__(self) -> None:
        self.written = 0  # frames
        self.played = 0  # frames
        self.queued = 0  # bytes of it in the queue
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None


class PlaybackQueue:
    """PCM16 mono audio waiting to be played, in write order, tagged with its item id."""

    def __init__(self, rate: int, max_queued_s: float = MAX_QUEUED_S):
        self.rate = int(rate)
        self.max_queued_bytes = int(max_queued_s * self.rate) * SAMPLE_WIDTH
        #: frames dropped because the queue was full (never counted as written)
        self.dropped_frames = 0
        self._lock = threading.Lock()
        # each segment: [item_id or None (a fade, not counted), bytes or LazyPCM, offset]
        self._segments: deque[list] = deque()
        self._queued = 0  # bytes waiting
        self._items: dict[str, _Item] = {}

    # -- loop thread -------------------------------------------------------------------------------

    def write(self, pcm: bytes, item_id: str) -> None:
        """Queue ``pcm`` for ``item_id`` (bytes, or a :class:`~voicepipe.audio.pcm.LazyPCM` that
        stays undecoded until :meth:`take` has to hand its bytes on)."""
        pcm = _queueable(pcm)
        if not pcm:
            return
        with self._lock:
            room = self.max_queued_bytes - self._queued
            if len(pcm) > room:
                pcm = self._overflow(pcm, room)
                if not pcm:
                    return
            item = self._items.get(item_id)
            if item is None:
                item = self._new_item(item_id)
            item.written += len(pcm) // SAMPLE_WIDTH
            item.queued += len(pcm)
            item.finished_at = None
            self._segments.append([item_id, pcm, 0])
            self._queued += len(pcm)

    def play_through(self, pcm: bytes, item_id: str, started_at: float) -> tuple[bytes, list[Milestone]]:
        """:meth:`write` then :meth:`take` of all of it, for a clock that plays each write at once
        (a virtual clock with ``realtime`` false) while nothing is queued: the same accounting,
        played bytes and milestones, without a trip through the queue. A ``LazyPCM`` is handed
        back as it is (still undecoded)."""
        pcm = _queueable(pcm)
        if not pcm:
            return pcm, []
        frames = len(pcm) // SAMPLE_WIDTH
        milestones: list[Milestone] = []
        with self._lock:
            if self._segments:
                raise RuntimeError("play_through() with audio queued: write() and take() it")
            item = self._items.get(item_id)
            if item is None:
                item = self._new_item(item_id)
            item.written += frames
            if item.played == 0 and item.started_at is None:
                item.started_at = started_at
                milestones.append(("started", item_id))
            item.played += frames
            if item.played >= item.written:
                item.finished_at = started_at + frames / self.rate
                milestones.append(("finished", item_id))
        return pcm, milestones

    def clear(self, fade_frames: int = 0) -> Optional[ItemPlayback]:
        """Drop everything queued; return the playback of the item that was at the head, if any.

        With ``fade_frames``, that many frames of what was next are kept with a falling ramp (not
        counted as played), so a device does not click.
        """
        with self._lock:
            head = next((seg[0] for seg in self._segments if seg[0] is not None), None)
            fade = self._fade_out(fade_frames) if fade_frames > 0 else b""
            for item_id, _, _ in self._segments:
                item = self._items.get(item_id) if item_id is not None else None
                if item is not None:
                    item.queued = 0
            self._segments.clear()
            self._queued = 0
            if fade:
                self._segments.append([None, fade, 0])
                self._queued = len(fade)
            return self._snapshot(head) if head in self._items else None

    def played_ms(self, item_id: str) -> float:
        item = self._items.get(item_id)
        return item.played * 1000.0 / self.rate if item is not None else 0.0

    def playback(self, item_id: str) -> Optional[ItemPlayback]:
        with self._lock:
            return self._snapshot(item_id) if item_id in self._items else None

    @property
    def queued_frames(self) -> int:
        return self._queued // SAMPLE_WIDTH

    def frames_to_next_boundary(self) -> int:
        """Frames until the head item's queued audio ends (the next milestone), 0 if empty."""
        with self._lock:
            frames = 0
            head = None
            for index, (item_id, data, offset) in enumerate(self._segments):
                if index and item_id != head:
                    break
                head = item_id
                frames += (len(data) - offset) // SAMPLE_WIDTH
            return frames

    # -- any thread (a device callback) ------------------------------------------------------------

    def take(self, frames: int, started_at: float, audio: bool = True) -> tuple[bytes, list[Milestone]]:
        """The next ``frames`` frames to play (silence where the queue runs dry) and the milestones
        they cross. ``started_at`` is when the first of them is heard, for the items' times.

        A take that is exactly one queued write returns that write's bytes without a copy. With
        ``audio`` false only the accounting moves on and the bytes returned are ``b""``: nothing
        queued is decoded or copied (an output that keeps no audio)."""
        need = frames * SAMPLE_WIDTH
        milestones: list[Milestone] = []
        with self._lock:
            if not self._segments:
                return (bytes(need) if audio else b""), milestones
            parts: list[bytes] = []
            taken = 0
            segments = self._segments
            rate = self.rate
            while need and segments:
                segment = segments[0]
                item_id, data, offset = segment
                size = min(need, len(data) - offset)
                position = taken
                if audio:
                    if type(data) is not bytes:
                        data = segment[1] = bytes(data)  # a LazyPCM: decoded now, once
                    parts.append(data[offset : offset + size] if offset or size < len(data) else data)
                taken += size
                need -= size
                self._queued -= size
                segment[2] = offset + size
                item = self._items.get(item_id) if item_id is not None else None
                if item is not None:
                    if item.played == 0 and item.started_at is None:
                        item.started_at = started_at + position / SAMPLE_WIDTH / rate
                        milestones.append(("started", item_id))
                    item.played += size // SAMPLE_WIDTH
                    item.queued -= size
                if segment[2] >= len(data):
                    segments.popleft()
                    if item is not None and item.played >= item.written:
                        item.finished_at = started_at + taken / SAMPLE_WIDTH / rate
                        milestones.append(("finished", item_id))
            if not audio:
                return b"", milestones
            if need:
                parts.append(bytes(need))
            return (parts[0] if len(parts) == 1 else b"".join(parts)), milestones

    # -- helpers (lock held) -------------------------------------------------------------------------

    def _overflow(self, pcm: Any, room: int) -> Any:
        """What of ``pcm`` fits in ``room`` bytes; the rest is counted as dropped."""
        room = max(room, 0) - max(room, 0) % SAMPLE_WIDTH
        if self.dropped_frames == 0:
            logging.getLogger("voicepipe.audio").warning(
                "playback queue full (%g s of audio waiting): audio beyond it is dropped", self.max_queued_bytes
                / SAMPLE_WIDTH / self.rate)
        self.dropped_frames += (len(pcm) - room) // SAMPLE_WIDTH
        if room == 0:
            return b""
        return pcm.cut(room) if type(pcm) is LazyPCM else pcm[:room]

    def _new_item(self, item_id: str) -> _Item:
        """Remember a new item, forgetting the oldest one with nothing queued when there are too many."""
        item = self._items[item_id] = _Item()
        if len(self._items) > MAX_ITEMS:
            for old_id, old in self._items.items():
                if old.queued == 0 and old is not item:
                    del self._items[old_id]
                    break
        return item

    def _snapshot(self, item_id: str) -> ItemPlayback:
        item = self._items[item_id]
        return ItemPlayback(
            item_id=item_id,
            written_ms=item.written * 1000.0 / self.rate,
            played_ms=item.played * 1000.0 / self.rate,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )

    def _fade_out(self, frames: int) -> bytes:
        import numpy as np

        collected = bytearray()
        for segment in self._segments:
            _, data, offset = segment
            if type(data) is not bytes:
                data = segment[1] = bytes(data)
            collected += data[offset : offset + frames * SAMPLE_WIDTH - len(collected)]
            if len(collected) >= frames * SAMPLE_WIDTH:
                break
        if not collected:
            return b""
        samples = np.frombuffer(bytes(collected), dtype="<i2").astype(np.float32)
        samples *= np.linspace(1.0, 0.0, len(samples), endpoint=False, dtype=np.float32)
        return samples.astype("<i2").tobytes()
