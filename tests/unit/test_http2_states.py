"""``http2_states`` moves h2's stream state machine exactly as ``process_input`` does: the
same state, flags and ``stream_closed_by`` afterwards, or the same error, from every state
and flag combination (h2's own machine is the reference, run on a copy)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from h2.exceptions import ProtocolError
from h2.stream import H2StreamStateMachine, StreamInputs, StreamState

from tricorn.protocols.http2_states import receive_head, send_end, send_head

FLAGS = ("headers_received", "trailers_received", "headers_sent", "trailers_sent")
ATTRIBUTES = ("state", "client", *FLAGS, "stream_closed_by")


def machines() -> list[H2StreamStateMachine]:
    """A machine in every state, with every combination of flags and of ``client``."""
    found = []
    for state in StreamState:
        for client in (None, False, True):
            for values in itertools.product((False, True), repeat=len(FLAGS)):
                machine = H2StreamStateMachine(1)
                machine.state = state
                machine.client = client
                for name, value in zip(FLAGS, values, strict=True):
                    setattr(machine, name, value)
                found.append(machine)
    return found


def outcome(machine: Any, step: Callable[[Any], None]) -> tuple[object, ...]:
    try:
        step(machine)
    except (ProtocolError, AssertionError) as error:  # h2's assertions are its own errors
        return ("raised", type(error).__name__, machine.state)
    return tuple(getattr(machine, name) for name in ATTRIBUTES)


def by_h2(*inputs: StreamInputs) -> Callable[[Any], None]:
    def step(machine: Any) -> None:
        for input_ in inputs:
            machine.process_input(input_)

    return step


CASES = [
    (lambda m: receive_head(m, False), by_h2(StreamInputs.RECV_HEADERS)),
    (
        lambda m: receive_head(m, True),
        by_h2(StreamInputs.RECV_HEADERS, StreamInputs.RECV_END_STREAM),
    ),
    (send_head, by_h2(StreamInputs.SEND_HEADERS)),
    (send_end, by_h2(StreamInputs.SEND_END_STREAM)),
]


@pytest.mark.parametrize(
    ("ours", "h2s"), CASES, ids=["head", "head_ended", "send_head", "send_end"]
)
def test_each_transition_is_h2s_own_in_every_state(
    ours: Callable[[Any], None], h2s: Callable[[Any], None]
) -> None:
    for machine in machines():
        reference = copy.copy(machine)
        assert outcome(machine, ours) == outcome(reference, h2s), vars(reference)


def test_a_request_and_its_response_end_closed_by_us() -> None:
    machine = H2StreamStateMachine(1)
    receive_head(machine, True)
    send_head(machine)
    send_end(machine)
    reference = H2StreamStateMachine(1)
    for input_ in (
        StreamInputs.RECV_HEADERS,
        StreamInputs.RECV_END_STREAM,
        StreamInputs.SEND_HEADERS,
        StreamInputs.SEND_END_STREAM,
    ):
        reference.process_input(input_)
    assert outcome(machine, lambda m: None) == outcome(reference, lambda m: None)
    assert machine.state is StreamState.CLOSED
