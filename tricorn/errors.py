"""tricorn's exceptions: one hierarchy rooted in ``TricornError``."""

from __future__ import annotations


class TricornError(Exception):
    """Base class of every error tricorn raises on purpose."""


class ConfigError(TricornError):
    """A setting is unknown, of the wrong type or impossible; the message is one line."""


class AppLoadError(TricornError):
    """The application named on the command line could not be found or is no app."""


class LocalProtocolError(TricornError):
    """We (the server or the app through it) misused a protocol object.

    Raised by ``send`` on a sans-IO protocol: data before a head, a second head, an event
    for a stream that does not exist. The message names the stream and the event.
    """


class ClientDisconnected(OSError, TricornError):
    """Raised by an ASGI ``send`` once the client has gone away (ASGI spec 2.4)."""
