"""Protocol constants every layer may use: logger names, WebSocket close codes.

Standard library only, and no other tricorn import, so that ``protocols/`` (sans-IO),
``server/`` and ``config/`` can all import it. HTTP/2 error codes are h2's
``h2.errors.ErrorCodes`` (an ``IntEnum``); they are not repeated here.
"""

from __future__ import annotations

from typing import Final

#: The error log: server events, protocol errors of peers, app failures, our own bugs.
ERROR_LOGGER: Final = "tricorn.error"
#: The access log: one line per response.
ACCESS_LOGGER: Final = "tricorn.access"


class WSCloseCode:
    """WebSocket close codes (RFC 6455 7.4.1, IANA registry) that tricorn sends or reports."""

    NORMAL_CLOSURE: Final = 1000
    GOING_AWAY: Final = 1001
    PROTOCOL_ERROR: Final = 1002
    UNSUPPORTED_DATA: Final = 1003
    #: Reported only, never sent: no status code was present in the close frame.
    NO_STATUS_RECEIVED: Final = 1005
    #: Reported only, never sent: the connection ended without a close frame.
    ABNORMAL_CLOSURE: Final = 1006
    INVALID_PAYLOAD: Final = 1007
    POLICY_VIOLATION: Final = 1008
    MESSAGE_TOO_BIG: Final = 1009
    MANDATORY_EXTENSION: Final = 1010
    INTERNAL_ERROR: Final = 1011
