"""HTTP/1.1's rules as small named checks, shared by every HTTP/1.1 parser and the writer.

Each ``check_*`` function is one rule of RFC 9110/9112 (or one limit tricorn promises): it
returns the value it validated and raises :class:`PeerError` (the status we answer) for a
peer's request, or ``LocalProtocolError`` for the app's response. The parsers
(``http11.py`` on our own reader, ``http11_h11.py`` on h11) call them in the same order, so
every parser answers a given bad request with the same status. The states both the reader
and the writer move through are :class:`State`, :class:`ResponseState` and :class:`Framing`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum
from http import HTTPStatus
from typing import NamedTuple

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import Headers

#: The HTTP/2 connection preface (RFC 9113 3.4), sent first by prior-knowledge h2c clients.
H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class State(IntEnum):
    """Where the request reader is. Ordered: the code compares ranges (``< DONE``)."""

    HEAD = 0  # waiting for (the rest of) a request head
    LENGTH_BODY = 1  # reading a Content-Length body
    CHUNK_SIZE = 2  # waiting for a chunk-size line
    CHUNK_DATA = 3  # reading chunk data
    CHUNK_END = 4  # waiting for the CRLF after chunk data
    TRAILERS = 5  # reading the trailer section of a chunked body
    DONE = 6  # request complete; paused until its response has been sent
    UPGRADE = 7  # upgrade request seen; paused until accept_upgrade/decline_upgrade
    CLOSED = 8  # nothing more is read or produced; close once data_to_send is written
    SWITCHED = 9  # the connection now belongs to another protocol


class ResponseState(IntEnum):
    """Where the response to the current request is."""

    NONE = 0  # no response started
    BODY = 1  # head sent, body in progress
    DONE = 2  # response complete (or the connection failed)


class Framing(IntEnum):
    """How the response body is delimited on the wire."""

    NONE = 0  # no body allowed (HEAD, 1xx, 204, 304): body bytes are dropped
    LENGTH = 1
    CHUNKED = 2
    CLOSE = 3  # delimited by closing the connection (HTTP/1.0 without a length)


class PeerError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what we answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# RFC 9112 7.1: a chunk-size of more than 16 hex digits cannot be a sane 64-bit size.
MAX_CHUNK_SIZE_DIGITS = 16
MAX_SIZE = 2**63 - 1
# Longest chunk-size line (size plus extensions) we wait for before answering 400.
MAX_CHUNK_LINE = 4096
# RFC 9110 8.6: Content-Length is 1*DIGIT; more digits than 2**63-1 has are refused unparsed.
MAX_LENGTH_DIGITS = 19
# Header names seen so far, raw -> lower-case; bounded so hostile names cannot grow it.
NAME_CACHE_LIMIT = 1024

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
TOKEN_RE = re.compile(_TOKEN)
REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+)(?: HTTP/([0-9])\.([0-9]))?")
# Control characters other than HTAB, and CR or LF that are not part of a CRLF pair.
BAD_HEAD_BYTE_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")
# Bytes allowed in a request head besides CR and LF pairs: HTAB, SP, VCHAR, obs-text.
HEAD_ALLOWED = bytes(byte for byte in range(256) if byte in (9, 10, 13) or 32 <= byte != 127)
# A translation table that keeps every byte a head's line may hold (HEAD_ALLOWED but CR and
# LF) and turns the others into SP: a line is clean when the table leaves it as it was.
_LINE_BYTES = bytes(
    byte if byte in HEAD_ALLOWED and byte not in b"\r\n" else 32 for byte in range(256)
)
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*"
)
HEX_DIGITS = b"0123456789abcdefABCDEF"
# RFC 9112 3.2.3 authority-form (uri-host ":" port), the only target CONNECT may carry; the
# host is an IP-literal or a non-empty reg-name (which includes IPv4 addresses).
_AUTHORITY_RE = re.compile(
    rb"(?:\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+):([0-9]{1,5})"
)

REQUEST_NAMES: dict[bytes, bytes] = {}
RESPONSE_NAMES: dict[bytes, bytes] = {}


def comma_tokens(value: bytes) -> list[bytes]:
    """A comma-separated list's members, lower-cased, without surrounding whitespace."""
    return [item.strip(b" \t") for item in value.lower().split(b",")]


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii"))


# --- request heads ----------------------------------------------------------------------


def check_head_lines(lines: list[bytes]) -> None:
    """RFC 9112 2.2: no control bytes (but HTAB), no CR or LF outside a CRLF pair, in a head
    given as ``head.split(b"\\r\\n")``: a CR or LF left in a line is a bare one.

    One translation without deletion of the joined lines (a deletion builds its table on
    every call: twice the instructions for a hello-world head).
    """
    joined = b"".join(lines)
    if joined.translate(_LINE_BYTES) != joined:
        raise PeerError(400, "invalid byte (control, bare CR or LF) in the request head")


def check_partial_head_bytes(buffer: bytes, start: int) -> None:
    """:func:`check_head_lines` on an incomplete head from ``start``; a final CR may wait."""
    bad = BAD_HEAD_BYTE_RE.search(buffer, start)
    if bad is not None and not (bad.start() == len(buffer) - 1 and buffer[-1] == 13):
        raise PeerError(400, "invalid byte (control, bare CR or LF) in the request head")


def first_head_fault(head: bytes, max_line: int, max_head: int) -> PeerError | None:
    """The verdict on a request head's first bytes that does not depend on the chunking.

    The head's own checks (bad bytes, the request line, the size) run in a fixed order on
    what has arrived; a head with two faults would get the first check's answer when whole
    and the other's when cut before its first fault (a 414 or 400 for one request; found by
    fuzzing, tests/property/test_http11_properties.py). Called once a check failed: the
    fault whose byte comes first wins (at one byte: bad byte, request line, size). ``head``
    starts at the request line; complete with its final CRLFCRLF, or what arrived so far.
    """
    faults: list[tuple[int, int, PeerError]] = []
    bad = BAD_HEAD_BYTE_RE.search(head)
    if bad is not None:
        index = bad.start()
        if head[index] == 13:  # a bare CR is known by the byte after it
            index += 1
        if index < len(head):
            error = PeerError(400, "invalid byte (control, bare CR or LF) in the request head")
            faults.append((index, 0, error))
    line_end = head.find(b"\r\n", 0, max_line + 2)
    if line_end < 0:
        if len(head) > max_line + 1:
            error = PeerError(414, f"request line longer than {max_line} bytes")
            faults.append((max_line + 1, 1, error))
    else:
        try:
            check_request_line(head[:line_end], max_line)
        except PeerError as line_error:
            faults.append((line_end + 1, 1, line_error))
    if len(head) > max_head:
        faults.append((max_head, 2, PeerError(431, f"request head larger than {max_head} bytes")))
    if not faults:
        return None
    return min(faults, key=lambda fault: fault[:2])[2]


def check_request_line(line: bytes, max_line: int) -> tuple[bytes, bytes, bool]:
    """RFC 9112 3: ``method SP target SP HTTP/1.x``; return (method, target, is HTTP/1.0).

    414 past ``max_line``, 400 when malformed, 505 for a version other than 1.x (HTTP/0.9's
    bare ``GET /`` included); a CONNECT target must be authority-form.
    """
    if len(line) > max_line:
        raise PeerError(414, f"request line longer than {max_line} bytes")
    match = REQUEST_LINE_RE.fullmatch(line)
    if match is None:
        raise PeerError(400, f"malformed request line {line[:100]!r}")
    method, target, major, minor = match.groups()
    if major != b"1":
        version = "0.9" if major is None else f"{major.decode()}.{minor.decode()}"
        raise PeerError(505, f"HTTP version {version} not supported")
    if method == b"CONNECT":
        check_authority_form(target)
    return method, target, minor == b"0"


def check_request_line_size(size: int, max_line: int) -> None:
    """414 once an unfinished request line is longer than ``max_line`` (and its CR)."""
    if size > max_line + 1:
        raise PeerError(414, f"request line longer than {max_line} bytes")


def check_authority_form(target: bytes) -> None:
    """RFC 9110 9.3.6: a CONNECT target is host:port; an empty or invalid port is 400."""
    match = _AUTHORITY_RE.fullmatch(target)
    if match is None:
        raise PeerError(400, f"CONNECT target is not host:port {target[:100]!r}")
    if not 0 < int(match.group(1)) <= 65535:
        raise PeerError(400, f"CONNECT target has an invalid port {target[:100]!r}")


def check_head_size(size: int, max_head: int) -> None:
    """431 for a head (request line, fields and the final CRLFs) over ``max_head`` bytes."""
    if size > max_head:
        raise PeerError(431, f"request head larger than {max_head} bytes")


def check_head_limits(size: int, fields: int, max_head: int, max_headers: int) -> None:
    """431 for a complete head over ``max_head`` bytes (:func:`check_head_size`) or with more
    than ``max_headers`` field lines."""
    if size > max_head or fields > max_headers:
        check_head_size(size, max_head)
        raise PeerError(431, f"more than {max_headers} header fields")


def check_field_line(line: bytes) -> None:
    """A field line without a colon: obs-fold (RFC 9112 5.2, refused) or garbage, both 400."""
    if line[:1] in (b" ", b"\t"):
        raise PeerError(400, "obsolete line folding (obs-fold) in the request head")
    raise PeerError(400, f"header line without a colon {line[:100]!r}")


def check_no_obs_fold(head: bytes) -> None:
    """RFC 9112 5.2 allows rejecting obs-fold (a field line starting with SP or HTAB)."""
    # find, not ``in``: ``bytes in bytes`` first tries the needle as an int and raises
    # (and clears) a TypeError, ~1,900 instructions a time on CPython 3.11.
    if head.find(b"\r\n ") >= 0 or head.find(b"\r\n\t") >= 0:
        raise PeerError(400, "obsolete line folding (obs-fold) in the request head")


def check_header_name(name: bytes) -> bytes:
    """RFC 9110 5.1: a field name is a token, with no whitespace before the colon (RFC 9112
    5.1); return it lower-cased, remembered for the next head."""
    if not name:
        raise PeerError(400, "empty header name")
    if name[-1:] in (b" ", b"\t"):
        raise PeerError(400, "whitespace between header name and colon")
    if name[:1] in (b" ", b"\t"):
        raise PeerError(400, "obsolete line folding (obs-fold) in the request head")
    if TOKEN_RE.fullmatch(name) is None:
        raise PeerError(400, f"invalid header name {name!r}")
    lower = name.lower()
    if len(REQUEST_NAMES) < NAME_CACHE_LIMIT:
        REQUEST_NAMES[name] = lower
    return lower


def _content_length_value(value: bytes) -> int:
    """One Content-Length value: 1*DIGIT, leading zeros allowed (``08`` is 8)."""
    if not value.isdigit():
        raise PeerError(400, f"invalid Content-Length {value[:40]!r}")
    if len(value) > MAX_LENGTH_DIGITS:  # never int() a digit string of hostile length
        raise PeerError(400, f"Content-Length has more than {MAX_LENGTH_DIGITS} digits")
    length = int(value)
    if length > MAX_SIZE:
        raise PeerError(400, "Content-Length larger than 2**63-1")
    return length


def check_content_length(value: bytes, previous: int | None = None) -> int:
    """RFC 9110 8.6: Content-Length is 1*DIGIT; a list of equal values (``5, 5`` or ``5, 05``)
    is one value; a value other than an earlier field's (``previous``) is 400."""
    if value.isdigit() and len(value) <= MAX_LENGTH_DIGITS and int(value) <= MAX_SIZE:
        length = int(value)  # the common case, without a call
    elif value.isdigit():
        length = _content_length_value(value)
    else:
        lengths = {_content_length_value(item.strip(b" \t")) for item in value.split(b",")}
        if len(lengths) != 1:
            raise PeerError(400, "conflicting Content-Length values")
        length = lengths.pop()
    if previous is not None and previous != length:
        raise PeerError(400, "conflicting Content-Length values")
    return length


def check_host(hosts: int, http10: bool) -> None:
    """RFC 9112 3.2: exactly one Host field (HTTP/1.0 may send none)."""
    if hosts != 1 and (hosts or not http10):
        raise PeerError(400, "missing Host header" if not hosts else "more than one Host")


def check_framing_fields(codings: list[bytes], http10: bool, length: int | None) -> None:
    """RFC 9112 6.1/6.3: Transfer-Encoding is refused in HTTP/1.0 and beside Content-Length
    (a smuggling shape), both 400, before its codings are looked at."""
    if http10:
        raise PeerError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if length is not None:
        raise PeerError(400, "both Content-Length and Transfer-Encoding")


def check_transfer_codings(codings: list[bytes]) -> None:
    """RFC 9112 6.1: the only coding served is one ``chunked``: others 501, twice 400."""
    unknown = [coding for coding in codings if coding != b"chunked"]
    if unknown:
        raise PeerError(501, f"unsupported Transfer-Encoding {unknown[0][:40]!r}")
    if len(codings) != 1:
        raise PeerError(400, "chunked applied more than once")


def check_transfer_encoding(codings: list[bytes], http10: bool, length: int | None) -> None:
    """:func:`check_framing_fields` then :func:`check_transfer_codings`."""
    check_framing_fields(codings, http10, length)
    check_transfer_codings(codings)


#: The request fields that decide the body's framing or the connection's options.
REQUEST_SPECIAL = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"expect",
        b"upgrade",
        b"http2-settings",
    )
)


#: What :func:`read_header_fields` returns: the headers (names lower-cased, values without
#: surrounding whitespace), the Content-Length, whether the body is chunked, and the
#: Connection, Expect, Upgrade and HTTP2-Settings fields (None: none). A plain tuple: it is
#: made once per request.
HeaderSection = tuple[Headers, int | None, bool, Headers | None]


def read_header_fields(fields: Iterable[tuple[bytes, bytes, bytes]], http10: bool) -> HeaderSection:
    """A request's field lines, each as ``line.partition(b":")`` splits it, read with the
    field rules in byte order (a line without a colon, the name, Content-Length), then
    Host and Transfer-Encoding. Every parser's head goes through here once (the hot path)."""
    headers: Headers = []
    length: int | None = None
    codings: list[bytes] | None = None
    hosts = 0
    options: Headers | None = None
    names = REQUEST_NAMES
    for name, colon, raw in fields:
        if not colon:
            check_field_line(name)  # partition left the whole line in the name
        lower = names.get(name)
        if lower is None:
            lower = check_header_name(name)
        value = raw.strip(b" \t")
        headers.append((lower, value))
        if lower in REQUEST_SPECIAL:
            if lower == b"content-length":
                length = check_content_length(value, length)
            elif lower == b"transfer-encoding":
                codings = [*(codings or ()), *comma_tokens(value)]
            elif lower == b"host":
                hosts += 1
            elif options is None:
                options = [(lower, value)]
            else:
                options.append((lower, value))
    if hosts != 1:
        check_host(hosts, http10)
    if codings is not None:
        check_transfer_encoding(codings, http10, length)
    return headers, length, codings is not None, options


def check_content_length_limit(length: int | None, limit: int) -> None:
    """413 for an announced Content-Length over ``max_request_body_size`` (0: no limit)."""
    if limit and length is not None and length > limit:
        raise PeerError(413, f"Content-Length {length} over the limit {limit}")


def check_chunked_body_limit(received: int, limit: int) -> None:
    """413 once a chunked body's sizes so far add up to more than ``max_request_body_size``."""
    if limit and received > limit:
        raise PeerError(413, f"request body over the limit {limit}")


class RequestOptions(NamedTuple):
    """What a request's Connection, Expect, Upgrade and HTTP2-Settings fields ask for."""

    close: bool = False  # Connection: close
    keep_alive: bool = False  # Connection: keep-alive (HTTP/1.0)
    upgrade_option: bool = False  # Connection: upgrade
    expect_continue: bool = False  # Expect: 100-continue
    upgrade: bytes | None = None  # the (last) Upgrade field's value
    http2_settings: int = 0  # how many HTTP2-Settings fields


NO_OPTIONS = RequestOptions()


def request_options(fields: Headers) -> RequestOptions:
    """Read the option fields among ``fields`` (lower-case names; others are skipped).

    RFC 9110 7.6.1: Connection options are a case-insensitive list, over all Connection
    fields. RFC 9110 10.1.1: likewise Expect; expectations other than 100-continue are
    ignored (not answered 417).
    """
    connection: list[bytes] = []
    expect: list[bytes] = []
    upgrade: bytes | None = None
    http2_settings = 0
    for name, value in fields:
        if name == b"connection":
            connection += comma_tokens(value)
        elif name == b"expect":
            expect += comma_tokens(value)
        elif name == b"upgrade":
            upgrade = value
        elif name == b"http2-settings":
            http2_settings += 1
    return RequestOptions(
        b"close" in connection,
        b"keep-alive" in connection,
        b"upgrade" in connection,
        b"100-continue" in expect,
        upgrade,
        http2_settings,
    )


def choose_upgrade(upgrade: bytes, http2_settings: int) -> bytes:
    """RFC 9110 7.8: the first protocol offered that we serve (h2c needs one HTTP2-Settings)."""
    for protocol in comma_tokens(upgrade):
        if protocol == b"websocket" or (protocol == b"h2c" and http2_settings == 1):
            return protocol
    return b""


# --- request bodies ---------------------------------------------------------------------


def check_chunk_line_prefix(line: bytes) -> None:
    """Reject an absurd chunk size before its line is complete (slow drip of hex digits)."""
    if len(line) - len(line.lstrip(HEX_DIGITS)) > MAX_CHUNK_SIZE_DIGITS:
        raise PeerError(400, "chunk size has more than 16 hex digits")
    if len(line) > MAX_CHUNK_LINE:
        raise PeerError(400, "chunk-size line too long")


def check_chunk_line(buffer: bytes, start: int, end: int) -> int:
    """RFC 9112 7.1: ``chunk-size [chunk-ext]`` in ``buffer[start:end]``; return the size.

    At most 16 hex digits and 2**63-1; extensions as RFC 9112 7.1.1 writes them (BWS included).
    """
    match = CHUNK_LINE_RE.fullmatch(buffer, start, end)
    if match is None:
        check_chunk_line_prefix(buffer[start:end])
        raise PeerError(400, f"malformed chunk-size line {buffer[start:end][:60]!r}")
    digits = match.group(1)
    if len(digits) > MAX_CHUNK_SIZE_DIGITS:
        raise PeerError(400, "chunk size has more than 16 hex digits")
    size = int(digits, 16)
    if size > MAX_SIZE:
        raise PeerError(400, "chunk size larger than 2**63-1")
    return size


def check_chunk_end(ending: bytes) -> None:
    """RFC 9112 7.1: chunk data is followed by CRLF (a lone CR may still be completed)."""
    if ending and ending != b"\r":
        raise PeerError(400, "chunk data not followed by CRLF")


def check_trailer_size(size: int, lines: int, max_head: int, max_headers: int) -> None:
    """431 for a trailer section over the head limits (size or field count)."""
    if size > max_head or lines > max_headers:
        raise PeerError(431, "trailer section too large")


def check_trailer_field(line: bytes) -> None:
    """RFC 9112 7.1.2: a trailer field line is ``token ":" value`` without control bytes."""
    name, colon, _ = line.partition(b":")
    if not colon or TOKEN_RE.fullmatch(name) is None or BAD_HEAD_BYTE_RE.search(line):
        raise PeerError(400, f"malformed trailer field {line[:100]!r}")


# --- responses (the app's side: LocalProtocolError) ------------------------------------


def check_final_status(status: int, stream_id: int) -> None:
    """A ``Response`` carries a final status (200-999; 1xx go as InformationalResponse)."""
    if not 200 <= status <= 999:
        raise LocalProtocolError(
            f"stream {stream_id}: Response status {status} is not a final status"
        )


def check_informational_status(status: int, stream_id: int) -> None:
    """An ``InformationalResponse`` is 1xx other than 101 (sent by accept_upgrade)."""
    if not 100 <= status < 200 or status == 101:
        raise LocalProtocolError(
            f"stream {stream_id}: InformationalResponse status {status} is not 1xx"
            " (101 is sent by accept_upgrade)"
        )


def check_response_header_name(name: bytes, stream_id: int) -> bytes:
    """A response field name is a token; return it lower-cased, remembered."""
    if TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"stream {stream_id}: Response has invalid header name {name!r}")
    lower = name.lower()
    if len(RESPONSE_NAMES) < NAME_CACHE_LIMIT:
        RESPONSE_NAMES[name] = lower
    return lower


def check_response_content_length(value: bytes, previous: int | None, stream_id: int) -> int:
    """The app's content-length is one decimal, equal to any earlier one."""
    if not value.isdigit() or (previous is not None and int(value) != previous):
        raise LocalProtocolError(
            f"stream {stream_id}: Response has invalid content-length {value!r}"
        )
    return int(value)


def check_response_transfer_encoding(value: bytes, stream_id: int) -> None:
    """The app may only ask for ``chunked``; other codings are not applied by the server."""
    if value.lower().strip() != b"chunked":
        raise LocalProtocolError(
            f"stream {stream_id}: Response transfer-encoding {value!r}"
            " is not supported (only chunked)"
        )


def check_response_framing(length: int | None, chunked: bool, stream_id: int) -> None:
    """RFC 9112 6.1: a response has no Content-Length beside Transfer-Encoding."""
    if length is not None and chunked:
        raise LocalProtocolError(
            f"stream {stream_id}: Response has both content-length and transfer-encoding"
        )


#: CR and NUL as LF, every other byte as itself (``check_no_injection``).
_CR_NUL_AS_LF = bytes(10 if byte in (0, 13) else byte for byte in range(256))


def check_no_injection(head: bytes, lines: int, stream_id: int) -> None:
    """Refuse header values that would inject lines (CR, LF) or carry NUL bytes.

    ``lines`` is the number of CRLF pairs the writer put in ``head``: with CR and NUL
    counted as LF, there are twice as many LFs exactly when no value has any of the three
    (one translation and one count, where three searches cost twice as much).
    """
    if head.translate(_CR_NUL_AS_LF).count(b"\n") != 2 * lines:
        raise LocalProtocolError(
            f"stream {stream_id}: a response header value contains CR, LF or NUL"
        )
