"""h2's stream state machine, moved by us on the common path of a request.

Every request stream takes four inputs of h2's ``H2StreamStateMachine``: RECV_HEADERS (and
RECV_END_STREAM for a request without a body), SEND_HEADERS and SEND_END_STREAM. Its
``process_input`` checks the input's type, looks the transition up, calls the transition's
function and builds an event object that we (who frame HEADERS and DATA ourselves) throw
away: about 5% of an h2c hello-world request. The functions here make the same changes
(state, flags, ``stream_closed_by``) for the transitions of that path, written from h2's
transition table, and hand any other state or input to ``process_input`` unchanged, so
errors and the rare paths stay h2's. ``tests/unit/test_http2_states.py`` compares every
function with ``process_input`` on every state.
"""

from __future__ import annotations

from typing import Any

from h2.stream import StreamClosedBy, StreamInputs, StreamState

__all__ = ["receive_head", "send_end", "send_head"]

_IDLE = StreamState.IDLE
_OPEN = StreamState.OPEN
_HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_REMOTE
_HALF_CLOSED_LOCAL = StreamState.HALF_CLOSED_LOCAL
_CLOSED = StreamState.CLOSED
_RECV_HEADERS = StreamInputs.RECV_HEADERS
_RECV_END_STREAM = StreamInputs.RECV_END_STREAM
_SEND_HEADERS = StreamInputs.SEND_HEADERS
_SEND_END_STREAM = StreamInputs.SEND_END_STREAM
_CLOSED_BY_US = StreamClosedBy.SEND_END_STREAM


def receive_head(machine: Any, ended: bool) -> None:
    """RECV_HEADERS on a new stream, then RECV_END_STREAM if ``ended``: a request head."""
    if machine.state is not _IDLE or machine.headers_received or machine.trailers_received:
        machine.process_input(_RECV_HEADERS)
        if ended:
            machine.process_input(_RECV_END_STREAM)
        return
    # (IDLE, RECV_HEADERS) -> OPEN, request_received; (OPEN, RECV_END_STREAM) ->
    # HALF_CLOSED_REMOTE, which only makes an event.
    machine.client = False
    machine.headers_received = True
    machine.state = _HALF_CLOSED_REMOTE if ended else _OPEN


def send_head(machine: Any) -> None:
    """SEND_HEADERS: a response head (trailers, and any other state, go to h2)."""
    state = machine.state
    if (
        (state is _HALF_CLOSED_REMOTE or state is _OPEN)
        and not machine.headers_sent
        and machine.client is False
    ):
        machine.headers_sent = True  # response_sent; the state stays
        return
    machine.process_input(_SEND_HEADERS)


def send_end(machine: Any) -> None:
    """SEND_END_STREAM: the last frame of a response."""
    state = machine.state
    if state is _HALF_CLOSED_REMOTE:
        machine.state = _CLOSED
        machine.stream_closed_by = _CLOSED_BY_US  # send_end_stream
    elif state is _OPEN:
        machine.state = _HALF_CLOSED_LOCAL  # no function in h2's table
    else:
        machine.process_input(_SEND_END_STREAM)
