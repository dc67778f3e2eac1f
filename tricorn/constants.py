"""Protocol constants every layer may use: logger names, WebSocket close codes.

Standard library only, and no other tricorn import, so that ``protocols/`` (sans-IO),
``server/`` and ``config/`` can all import it. HTTP/2 error codes are h2's
``h2.errors.ErrorCodes`` (an ``IntEnum``); they are not repeated here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

#: The error log: server events, protocol errors of peers, app failures, our own bugs.
ERROR_LOGGER: Final = "tricorn.error"
#: The access log: one line per response.
ACCESS_LOGGER: Final = "tricorn.access"


class WSCloseCode(IntEnum):
    """WebSocket close codes (RFC 6455 7.4.1, IANA registry) that tricorn sends or reports.

    An ``IntEnum`` like h2's ``ErrorCodes``: an ``int`` on the wire and in ASGI messages.
    """

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    #: Reported only, never sent: no status code was present in the close frame.
    NO_STATUS_RECEIVED = 1005
    #: Reported only, never sent: the connection ended without a close frame.
    ABNORMAL_CLOSURE = 1006
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
