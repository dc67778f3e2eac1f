"""Request heads on HTTP/2: the rules of RFC 9113 section 8.2/8.3 (and RFC 8441), one
function each, and the one pass over the decoded header list that applies them.

A rule check raises ``Malformed`` (a stream error of type PROTOCOL_ERROR: the protocol
resets that stream and keeps the connection) or ``HeaderListTooLarge`` (answered 431).
``read_request_head`` collects what the rules need on the way, so the list is walked once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .events import Headers

__all__ = [
    "CONNECTION_SPECIFIC",
    "NOT_IN_RESPONSES",
    "SENSITIVE_FIELDS",
    "HeaderListTooLarge",
    "Malformed",
    "RequestHead",
    "check_body_length",
    "check_content_length",
    "check_field_name",
    "check_field_value",
    "check_header_list_size",
    "check_host",
    "check_pseudo_header",
    "check_request_target",
    "check_te",
    "check_trailer_field",
    "read_request_head",
]

# RFC 9113 8.2.1: field names are lower-case tokens; values carry no NUL, CR, LF and no
# leading or trailing whitespace.
INVALID_NAME = re.compile(rb"[^a-z0-9!#$%&'*+\-.^_`|~]")
INVALID_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
#: RFC 9113 8.2.2: fields that only mean something on one HTTP/1.1 connection.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade")
)
#: What a response (head, trailers, 1xx) or a pushed request on HTTP/2 or HTTP/3 never
#: carries (RFC 9113 8.2.2, RFC 9114 4.2): the connection-specific fields, and ``te``,
#: which only a request may hold (and only as ``trailers``).
NOT_IN_RESPONSES = CONNECTION_SPECIFIC | {b"te"}
#: Fields HPACK (and QPACK) must not put in the dynamic table (RFC 7541 7.1.3, RFC 9204
#: 7.1.3): a peer sharing the connection could guess their values from the compressed size
#: (CRIME-like). Short cookies too: a short value is the easiest to guess.
SENSITIVE_FIELDS = frozenset((b"set-cookie", b"cookie", b"authorization", b"proxy-authorization"))
#: The request pseudo-headers (RFC 9113 8.3.1, RFC 8441 4) and the attribute each fills.
_PSEUDO_HEADERS = {
    b":method": "method",
    b":scheme": "scheme",
    b":path": "path",
    b":authority": "authority",
    b":protocol": "protocol",
}

_invalid_name = INVALID_NAME.search
_invalid_value = INVALID_VALUE.search


class Malformed(Exception):
    """A request head breaks RFC 9113 section 8: a stream error of type PROTOCOL_ERROR."""


class HeaderListTooLarge(Exception):
    """The decoded header list is larger than the SETTINGS_MAX_HEADER_LIST_SIZE we sent."""


class RequestHead:
    """A request head as the rules read it: pseudo-headers, the fields that have rules of
    their own, and the regular fields in order (cookies not yet joined, no host yet)."""

    __slots__ = (
        "authority",
        "content_length",
        "cookie_at",
        "cookies",
        "expect_continue",
        "fields",
        "host",
        "method",
        "path",
        "priority",
        "protocol",
        "scheme",
    )

    def __init__(self) -> None:
        self.method: bytes | None = None
        self.scheme: bytes | None = None
        self.path: bytes | None = None
        self.authority: bytes | None = None
        self.protocol: bytes | None = None
        self.host: bytes | None = None
        self.content_length: bytes | None = None
        self.priority: bytes | None = None
        self.expect_continue = False
        self.fields: Headers = []
        self.cookies: list[bytes] = []
        self.cookie_at = -1

    def headers(self) -> Headers:
        """The header list the app sees: ``host`` first (from ``:authority``), the cookie
        fields joined into one where the first was (RFC 9113 8.2.3)."""
        headers = self.fields
        if self.cookies:
            # Empty crumbs are left out: "a" and "" would join to "a; ", a value ending in
            # whitespace, which RFC 9113 8.2.1 forbids (found by tests/property).
            crumbs = [crumb for crumb in self.cookies if crumb] or self.cookies[:1]
            headers.insert(self.cookie_at, (b"cookie", b"; ".join(crumbs)))
        if self.authority is not None:
            headers.insert(0, (b"host", self.authority))
        return headers


# --- the rules, one field at a time -------------------------------------------------------


def check_field_value(name: bytes, value: bytes) -> None:
    """RFC 9113 8.2.1: no NUL, CR or LF, no leading or trailing space or tab."""
    if _invalid_value(value):
        raise Malformed(f"invalid value of {name!r}")


def check_field_name(name: bytes) -> None:
    """RFC 9113 8.2.1 (a lower-case token) and 8.2.2 (no connection-specific field)."""
    if not name or _invalid_name(name):
        raise Malformed(f"invalid header name {name!r}")
    if name in CONNECTION_SPECIFIC:
        raise Malformed(f"connection-specific header {name!r}")


def check_pseudo_header(head: RequestHead, name: bytes, value: bytes) -> None:
    """RFC 9113 8.3.1: only the request pseudo-headers, each at most once."""
    attribute = _PSEUDO_HEADERS.get(name)
    if attribute is None:
        raise Malformed(f"pseudo-header {name!r} not allowed in a request")
    if getattr(head, attribute) is not None:
        raise Malformed(f"duplicate {name.decode('latin-1')}")
    setattr(head, attribute, value)


def check_te(head: RequestHead, value: bytes) -> bool:
    """RFC 9113 8.2.2: ``te`` may only say ``trailers``."""
    if value.lower() != b"trailers":
        raise Malformed("te header other than 'trailers'")
    return True


def check_host(head: RequestHead, value: bytes) -> bool:
    """RFC 9113 8.3.1: one ``host``, equal to ``:authority`` when both are present (then
    dropped: the ``host`` the app sees is made from ``:authority``)."""
    if head.host is not None:
        raise Malformed("duplicate host header")
    head.host = value
    if head.authority is not None:
        if value != head.authority:
            raise Malformed("host header differs from :authority")
        return False
    return True


def check_content_length(head: RequestHead, value: bytes) -> bool:
    """RFC 9110 8.6: repeated ``content-length`` fields must agree."""
    if head.content_length is not None and value != head.content_length:
        raise Malformed("conflicting content-length headers")
    head.content_length = value
    return True


def _take_cookie(head: RequestHead, value: bytes) -> bool:
    if head.cookie_at < 0:
        head.cookie_at = len(head.fields)
    head.cookies.append(value)
    return False


def _take_priority(head: RequestHead, value: bytes) -> bool:
    head.priority = value
    return True


def _take_expect(head: RequestHead, value: bytes) -> bool:
    head.expect_continue = value.lower() == b"100-continue"
    return True


#: Regular fields with a rule or a use of their own; True: keep the field in the list.
_FIELD_RULES: dict[bytes, Callable[[RequestHead, bytes], bool]] = {
    b"cookie": _take_cookie,
    b"te": check_te,
    b"host": check_host,
    b"content-length": check_content_length,
    b"priority": _take_priority,
    b"expect": _take_expect,
}


def check_header_list_size(size: int, limit: int) -> None:
    """RFC 9113 6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE (sizes as HPACK counts them)."""
    if size > limit:
        raise HeaderListTooLarge


def read_request_head(
    raw_headers: Iterable[tuple[bytes, bytes]], max_header_list_size: int
) -> RequestHead:
    """Apply the per-field rules to a decoded header list, in one pass."""
    head = RequestHead()
    fields = head.fields
    rules = _FIELD_RULES
    regular = False
    size = 0
    for name, value in raw_headers:
        size += len(name) + len(value) + 32
        check_field_value(name, value)
        if name[:1] == b":":
            if regular:  # RFC 9113 8.3: pseudo-headers come first
                raise Malformed(f"pseudo-header {name!r} after a regular header")
            check_pseudo_header(head, name, value)
            continue
        regular = True
        check_field_name(name)
        rule = rules.get(name)
        if rule is None or rule(head, value):
            fields.append((name, value))
    check_header_list_size(size, max_header_list_size)
    return head


# --- the rules on the whole head ------------------------------------------------------------


def check_request_target(head: RequestHead, enable_connect_protocol: bool) -> bytes:
    """RFC 9113 8.3.1 (the pseudo-headers a request needs), 8.5 (CONNECT) and RFC 8441 4
    (extended CONNECT); return the request target (``:path``, or ``:authority`` for CONNECT)."""
    method = head.method
    if method is None:
        raise Malformed("missing :method")
    path = head.path
    if method == b"CONNECT":
        if head.protocol is not None:
            if not enable_connect_protocol:
                raise Malformed(":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL")
            if head.scheme is None or not path or head.authority is None:
                raise Malformed("extended CONNECT needs :scheme, :path and :authority")
            return path
        if head.scheme is not None or path is not None or head.authority is None:
            raise Malformed("CONNECT takes :authority and no :scheme or :path")
        return head.authority
    if head.protocol is not None:
        raise Malformed(":protocol outside extended CONNECT")
    if head.scheme is None or path is None:
        raise Malformed("missing :scheme or :path")
    if not path:
        raise Malformed("empty :path")
    return path


def check_body_length(head: RequestHead, ended: bool) -> int | None:
    """RFC 9113 8.1.1: the announced body length (None: none announced, or a tunnel), a
    decimal number, and 0 when the HEADERS frame ended the stream."""
    if head.content_length is None or head.protocol is not None:
        return None
    if not head.content_length.isdigit():
        raise Malformed("invalid content-length")
    length = int(head.content_length)
    if ended and length:
        raise Malformed("content-length without a body")
    return length


def check_trailer_field(name: bytes, value: bytes) -> bool:
    """RFC 9113 8.1 and 8.2: a trailer field is a valid regular field (no pseudo-header)."""
    return not (
        not name
        or name[:1] == b":"
        or _invalid_name(name)
        or _invalid_value(value)
        or name in CONNECTION_SPECIFIC
    )
