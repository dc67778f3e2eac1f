"""The sending order among HTTP/2 streams that have data ready.

Two signals exist. RFC 9218 (the ``priority`` request header and PRIORITY_UPDATE frames)
gives each stream an urgency 0..7 (default 3, lower first) and an incremental flag. The
deprecated RFC 7540 scheme (PRIORITY frames, HEADERS priority) builds a dependency tree with
weights. They combine like this:

- a stream with an RFC 9218 signal is placed by its urgency; within one urgency the
  non-incremental streams go first, in stream-id order, then the incremental ones,
  round-robin (the first one rotates on every call);
- a stream without one has the RFC 9218 default, urgency 3, non-incremental; if the client
  gave it RFC 7540 tree priority (and did not send SETTINGS_NO_RFC7540_PRIORITIES=1), it is
  ordered among the other such streams by the tree (weighted fair queueing), after the
  plain urgency-3 streams and before the incremental ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from priority.priority import PriorityError, PriorityTree

DEFAULT_URGENCY = 3
#: Tree streams share the default urgency; these are their place inside it.
_PLAIN, _TREE, _INCREMENTAL = 0, 1, 2


def parse_priority_field(value: bytes) -> tuple[int, bool] | None:
    """Parse an RFC 9218 Priority field value (``u=1, i``); ``None`` when it says nothing.

    Unknown keys and invalid members are ignored, as RFC 9218 section 4 asks.
    """
    urgency = DEFAULT_URGENCY
    incremental = False
    found = False
    for member in value.split(b","):
        key, _, param = member.strip().partition(b"=")
        key = key.split(b";", 1)[0].strip()
        param = param.split(b";", 1)[0].strip()
        if key == b"u":
            if len(param) == 1 and 0x30 <= param[0] <= 0x37:
                urgency = param[0] - 0x30
                found = True
        elif key == b"i":
            if param in (b"", b"?1"):
                incremental = True
                found = True
            elif param == b"?0":
                incremental = False
                found = True
    return (urgency, incremental) if found else None


class PriorityScheduler:
    """Remembers each stream's priority signals and orders the streams ready to send."""

    __slots__ = ("_cursor", "_signals", "_tree", "_tree_ids", "use_tree")

    def __init__(self, max_tree_streams: int = 1000) -> None:
        self._signals: dict[int, tuple[int, bool]] = {}
        self._tree = PriorityTree(maximum_streams=max_tree_streams)
        self._tree_ids: set[int] = set()
        #: Round-robin position per urgency: the stream id served first last time.
        self._cursor: dict[int, int] = {}
        #: False once the client sent SETTINGS_NO_RFC7540_PRIORITIES=1.
        self.use_tree = True

    def set_field(self, stream_id: int, value: bytes) -> None:
        """Apply an RFC 9218 Priority field value (request header or PRIORITY_UPDATE)."""
        parsed = parse_priority_field(value)
        if parsed is not None:
            self._signals[stream_id] = parsed

    def set_tree(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """Apply RFC 7540 priority (a PRIORITY frame or HEADERS priority fields).

        Tree errors (too many streams in the tree) leave the stream at the default.
        """
        if not self.use_tree or depends_on == stream_id:
            return
        tree = self._tree
        try:
            if depends_on and depends_on not in self._tree_ids:
                tree.insert_stream(depends_on)
                tree.block(depends_on)
                self._tree_ids.add(depends_on)
            if stream_id in self._tree_ids:
                tree.reprioritize(stream_id, depends_on or None, weight, exclusive)
            else:
                tree.insert_stream(stream_id, depends_on or None, weight, exclusive)
                tree.block(stream_id)
                self._tree_ids.add(stream_id)
        except PriorityError:
            return

    def remove(self, stream_id: int) -> None:
        """Forget a closed stream."""
        self._signals.pop(stream_id, None)
        if stream_id in self._tree_ids:
            self._tree_ids.discard(stream_id)
            with contextlib.suppress(PriorityError):
                self._tree.remove_stream(stream_id)

    def order(self, ready: Iterable[int]) -> list[int]:
        """Return the stream ids in ``ready`` in the order they should send."""
        ready = list(ready)
        if len(ready) < 2 or (not self._signals and not self._tree_ids):
            ready.sort()
            return ready
        keyed: list[tuple[int, int, int, int]] = []
        tree_ready: list[int] = []
        incremental: dict[int, list[int]] = {}
        signals = self._signals
        use_tree = self.use_tree
        for stream_id in ready:
            signal = signals.get(stream_id)
            if signal is None:
                if use_tree and stream_id in self._tree_ids:
                    tree_ready.append(stream_id)
                else:
                    keyed.append((DEFAULT_URGENCY, _PLAIN, stream_id, stream_id))
            elif signal[1]:
                incremental.setdefault(signal[0], []).append(stream_id)
            else:
                keyed.append((signal[0], _PLAIN, stream_id, stream_id))
        for position, stream_id in enumerate(self._tree_order(tree_ready)):
            keyed.append((DEFAULT_URGENCY, _TREE, position, stream_id))
        for urgency, stream_ids in incremental.items():
            stream_ids.sort()
            last = self._cursor.get(urgency, 0)
            start = next((i for i, sid in enumerate(stream_ids) if sid > last), 0)
            rotated = stream_ids[start:] + stream_ids[:start]
            self._cursor[urgency] = rotated[0]
            for position, stream_id in enumerate(rotated):
                keyed.append((urgency, _INCREMENTAL, position, stream_id))
        keyed.sort()
        return [key[3] for key in keyed]

    def _tree_order(self, stream_ids: list[int]) -> list[int]:
        if len(stream_ids) < 2:
            return stream_ids
        tree = self._tree
        for stream_id in stream_ids:
            tree.unblock(stream_id)
        seen: dict[int, None] = {}
        try:
            # Weighted fair queueing hands out one stream per step; a heavy stream can come
            # up several times before a light one, so the number of steps is bounded.
            for _ in range(8 * len(stream_ids)):
                seen[tree.next()] = None
                if len(seen) == len(stream_ids):
                    break
        except PriorityError:
            pass
        finally:
            for stream_id in stream_ids:
                tree.block(stream_id)
        order = list(seen)
        order.extend(sorted(set(stream_ids) - seen.keys()))
        return order
