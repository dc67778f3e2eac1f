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
  (``check_head_lines``), the request line rebuilt from llhttp's method, target and version
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

from tricorn.protocols.events import Event
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_base import HTTP11Limits
from tricorn.protocols.http11_rules import (
    PeerError,
    check_head_limits,
    check_head_lines,
    read_header_fields,
)

__all__ = ["HTTPToolsProtocol"]

_VERSIONS = {b" HTTP/1.1": False, b" HTTP/1.0": True}


class _Sink:
    """What llhttp reports for one head (httptools calls these methods)."""

    __slots__ = ("fields", "url")

    def __init__(self) -> None:
        self.url = b""
        #: (name, b":", value): a field line as ``bytes.partition`` splits it, the form
        #: ``read_header_fields`` reads for every parser.
        self.fields: list[tuple[bytes, bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, b":", value))


class HTTPToolsProtocol(HTTP11Protocol):
    """One HTTP/1.1 server connection whose request heads llhttp parses; see the module."""

    __slots__ = ("_llhttp", "_sink")

    def __init__(self, **limits: Unpack[HTTP11Limits]) -> None:
        super().__init__(**limits)
        self._sink = _Sink()
        self._llhttp: httptools.HttpRequestParser | None = None

    def _parse_head(self, head: bytes, buffer: bytes, body_start: int, events: list[Event]) -> None:
        """llhttp's parse of the head, checked by tricorn's rules in their order; our parser
        (``super()._parse_head``) decides a head llhttp refuses or misreports."""
        # Long on purpose: once per request on the hot path; each call split off cost ~1%.
        lines = head.split(b"\r\n")
        line_ends = len(lines) - 1
        try:
            check_head_lines(lines)  # the first rule: the same answer as our parser's
        except PeerError as error:  # the first fault in byte order, as our parser answers
            raise self._first_fault(head + b"\r\n\r\n") or error from None
        sink = self._sink
        sink.url = b""
        fields: list[tuple[bytes, bytes, bytes]] = []
        sink.fields = fields
        parser = self._llhttp
        if parser is None:
            parser = httptools.HttpRequestParser(sink)
        self._llhttp = None  # kept below only after a bodiless keep-alive request
        spent = False
        start = body_start - len(head) - 4
        try:
            if start or body_start != len(buffer):
                parser.feed_data(memoryview(buffer)[start:body_start])
            else:
                parser.feed_data(buffer)
        except httptools.HttpParserUpgrade:
            spent = True  # CONNECT or Upgrade: the base decides; this parser is paused
        except httptools.HttpParserError:
            super()._parse_head(head, buffer, body_start, events)
            return
        method = parser.get_method()
        line_end = head.find(b"\r\n")
        line = head if line_end < 0 else head[:line_end]
        http10 = _VERSIONS.get(line[-9:])
        if (
            http10 is None
            or len(line) > self._max_line
            or method == b"CONNECT"  # its authority-form target: check_request_line's
            or len(fields) != line_ends
            or line != method + b" " + sink.url + line[-9:]
        ):
            super()._parse_head(head, buffer, body_start, events)
            return
        if len(head) + 4 > self._max_head or line_ends > self._max_headers:
            try:
                check_head_limits(len(head) + 4, line_ends, self._max_head, self._max_headers)
            except PeerError as error:
                raise self._first_fault(head + b"\r\n\r\n") or error from None
        headers, length, chunked, options = read_header_fields(fields, http10)
        if not (chunked or length or spent) and parser.should_keep_alive():
            self._llhttp = parser  # llhttp is between messages, as we are
        start_line = (method, sink.url, http10)
        self._begin_request(
            start_line, headers, length, chunked, options, buffer, body_start, events
        )
