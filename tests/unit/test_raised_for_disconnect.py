"""``raised_for_disconnect`` finds our ``ClientDisconnected`` behind what a framework makes of
it: its own exception raised ``from`` it, also when a task group wrapped it in an
ExceptionGroup (Litestar's streaming response: "Exception caught after response started"
was logged at ERROR for a client that left an endless event stream)."""

from __future__ import annotations

from tricorn.errors import ClientDisconnected
from tricorn.server.http_stream import raised_for_disconnect


def _raised_from(cause: BaseException) -> BaseException:
    try:
        raise RuntimeError("Exception caught after response started") from cause
    except RuntimeError as error:
        return error


def test_a_disconnect_behind_a_framework_exception_and_an_exception_group() -> None:
    disconnect = ClientDisconnected("stream 1: the client has gone away")
    assert raised_for_disconnect(disconnect)
    assert raised_for_disconnect(_raised_from(disconnect))
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ValueError("x"), disconnect])
    assert raised_for_disconnect(_raised_from(group))


def test_other_errors_are_app_errors() -> None:
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ValueError("x")])
    assert not raised_for_disconnect(_raised_from(group))
    assert not raised_for_disconnect(ValueError("y"))
