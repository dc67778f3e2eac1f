"""HTTP/1.1 server protocol with request heads parsed by llhttp (``httptools``), sans-IO.

The same face and events as ``HTTP11Protocol``, of which it is a subclass: finding the end of
a head, the h2c preface, the checks on an unfinished head (414/431/400 before it is
complete), Content-Length and chunked bodies and the trailer section stay our reader's
(httptools reports neither chunk sizes nor extensions, so tricorn's chunk rules could not be
applied to what llhttp decodes). Only a complete head is handed to llhttp, one at a time, so
pipelined bytes wait in the buffer as with the other parsers.

llhttp is both more lenient and stricter than tricorn's rules (``http11_rules``), so the
answer is kept the same this way:

- a head llhttp accepts gets the checks llhttp lacks, on what it reports: the head's bytes
  (``check_head_bytes``), the request line rebuilt from llhttp's method, target and version
  must be the line received (llhttp takes ``GET  /``, ``HTTP/2.0`` and a bare ``GET /``),
  the size and count limits, header names through ``check_header_name``, values stripped of
  trailing whitespace (llhttp keeps it), then Content-Length, Host and Transfer-Encoding as
  our parser checks them;
- a head llhttp refuses, or one whose report does not match the bytes, is decided by our own
  parser (``HTTP11Protocol._parse_head``): it answers the status tricorn answers, or serves
  the request where the rules accept what llhttp does not (a method llhttp does not know,
  such as ``FOO`` or ``QUERY``).
"""

from __future__ import annotations

from typing import Unpack

import httptools

from tricorn.protocols.events import Event, Headers
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_base import HTTP11Limits
from tricorn.protocols.http11_rules import (
    REQUEST_NAMES,
    check_content_length,
    check_head_bytes,
    check_head_limits,
    check_header_name,
    check_host,
    check_transfer_encoding,
    comma_tokens,
)

__all__ = ["HTTPToolsProtocol"]

_VERSIONS = {"1.1": (b" HTTP/1.1", False), "1.0": (b" HTTP/1.0", True)}
_OPTION_FIELDS = frozenset((b"connection", b"expect", b"upgrade", b"http2-settings"))


class _Sink:
    """What llhttp reports for one head (httptools calls these methods)."""

    __slots__ = ("complete", "fields", "url")

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_message_complete(self) -> None:
        self.complete = True


class _Mismatch(Exception):
    """llhttp's report cannot be taken as is: our own parser decides the head."""


class HTTPToolsProtocol(HTTP11Protocol):
    """One HTTP/1.1 server connection whose request heads llhttp parses; see the module."""

    __slots__ = ("_llhttp", "_sink")

    def __init__(self, **limits: Unpack[HTTP11Limits]) -> None:
        super().__init__(**limits)
        self._sink = _Sink()
        self._llhttp: httptools.HttpRequestParser | None = None

    def _parse_head(self, head: bytes, buffer: bytes, body_start: int, events: list[Event]) -> None:
        try:
            parsed = self._llhttp_head(head, buffer, body_start)
        except _Mismatch:
            super()._parse_head(head, buffer, body_start, events)
            return
        start, headers, length, chunked, options = parsed
        self._begin_request(start, headers, length, chunked, options, buffer, body_start, events)

    def _llhttp_head(
        self, head: bytes, buffer: bytes, body_start: int
    ) -> tuple[tuple[bytes, bytes, bool], Headers, int | None, bool, Headers | None]:
        """llhttp's parse of the head, checked by tricorn's rules in their order.

        Raises ``_Mismatch`` where our parser must decide, ``PeerError`` for a rule broken.
        """
        line_ends = head.count(b"\r\n")
        check_head_bytes(head, line_ends)  # first rule: same answer as our parser's
        sink = self._sink
        sink.url = b""
        sink.fields.clear()
        sink.complete = False
        parser = self._llhttp
        if parser is None:
            parser = httptools.HttpRequestParser(sink)
        self._llhttp = None  # reused below only when it ended cleanly between messages
        try:
            parser.feed_data(memoryview(buffer)[body_start - len(head) - 4 : body_start])
        except httptools.HttpParserUpgrade:
            pass  # CONNECT or Upgrade: the base decides; this parser is spent
        except httptools.HttpParserError:
            raise _Mismatch from None
        method = parser.get_method()
        version = _VERSIONS.get(parser.get_http_version())
        fields = sink.fields
        line_end = head.find(b"\r\n")
        line = head if line_end < 0 else head[:line_end]
        if (
            version is None
            or len(line) > self._max_line
            or method == b"CONNECT"  # its authority-form target: check_request_line's
            or len(fields) != line_ends
            or line != method + b" " + sink.url + version[0]
        ):
            raise _Mismatch
        if sink.complete and parser.should_keep_alive():
            self._llhttp = parser
        http10 = version[1]
        check_head_limits(len(head) + 4, line_ends, self._max_head, self._max_headers)
        headers, length, chunked, options = _checked_fields(fields, http10)
        return (method, sink.url, http10), headers, length, chunked, options


def _checked_fields(
    fields: list[tuple[bytes, bytes]], http10: bool
) -> tuple[Headers, int | None, bool, Headers | None]:
    """llhttp's fields through our field rules, as ``HTTP11Protocol._parse_head`` checks them:
    (headers with lower-case names and stripped values, length, chunked, option fields)."""
    headers: Headers = []
    length: int | None = None
    codings: list[bytes] | None = None
    hosts = 0
    options: Headers | None = None
    names = REQUEST_NAMES
    for name, raw in fields:
        lower = names.get(name)
        if lower is None:
            lower = check_header_name(name)
        value = raw.strip(b" \t")  # llhttp strips the leading OWS, not the trailing
        headers.append((lower, value))
        if lower == b"host":
            hosts += 1
        elif lower == b"content-length":
            length = check_content_length(value, length)
        elif lower == b"transfer-encoding":
            codings = [*(codings or ()), *comma_tokens(value)]
        elif lower in _OPTION_FIELDS:
            if options is None:
                options = [(lower, value)]
            else:
                options.append((lower, value))
    if hosts != 1:
        check_host(hosts, http10)
    if codings is not None:
        check_transfer_encoding(codings, http10, length)
    return headers, length, codings is not None, options
