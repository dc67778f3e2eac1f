"""HTTP/2 rule checks by name (``http2_frames``, ``http2_request``), and what becomes of an
exception inside one: a peer's violation is a protocol error, our own bug is an internal error."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

import pytest
from h2.errors import ErrorCodes

from tests.unit.test_http2 import GET, Pair, frame, goaway_code, of
from tricorn.constants import ERROR_LOGGER
from tricorn.protocols import http2, http2_frames, http2_request
from tricorn.protocols.events import ConnectionClosed, ProtocolError, Request
from tricorn.protocols.http2_frames import ConnectionViolation
from tricorn.protocols.http2_request import HeaderListTooLarge, Malformed, RequestHead


def head(**pseudo: bytes) -> RequestHead:
    result = RequestHead()
    for name, value in pseudo.items():
        setattr(result, name, value)
    return result


# --- frame rules: each named check, one violation each ----------------------------------

FRAME_VIOLATIONS: list[tuple[str, Callable[[], object], int]] = [
    ("check_preface", lambda: http2_frames.check_preface(b"GET / HTTP/1.1", 0, 14), 0x1),
    ("check_first_frame", lambda: http2_frames.check_first_frame(6, 0), 0x1),
    ("check_first_frame ACK", lambda: http2_frames.check_first_frame(4, 1), 0x1),
    ("check_frame_size", lambda: http2_frames.check_frame_size(16385, 16384), 0x6),
    ("check_frame_order interleaved", lambda: http2_frames.check_frame_order(0, 1, 1), 0x1),
    ("check_frame_order other stream", lambda: http2_frames.check_frame_order(9, 3, 1), 0x1),
    ("check_frame_order stray", lambda: http2_frames.check_frame_order(9, 1, 0), 0x1),
    ("check_frame_order push", lambda: http2_frames.check_frame_order(5, 1, 0), 0x1),
    (
        "check_settings window",
        lambda: http2_frames.check_settings(struct.pack(">HL", 4, 1 << 31), 0, 6),
        0x3,
    ),
    (
        "check_settings push",
        lambda: http2_frames.check_settings(struct.pack(">HL", 2, 2), 0, 6),
        0x1,
    ),
    ("check_settings_ack", lambda: http2_frames.check_settings_ack(6), 0x6),
    ("check_priority_stream", lambda: http2_frames.check_priority_stream(0), 0x1),
    ("check_priority_update stream", lambda: http2_frames.check_priority_update(1, 4), 0x1),
    ("check_priority_update short", lambda: http2_frames.check_priority_update(0, 3), 0x6),
    (
        "block_fragment padding",
        lambda: http2_frames.block_fragment(frame(1, 0x8, 1, b"\x05ab"), 0, 3, 0x8),
        0x1,
    ),
    (
        "data_payload padding",
        lambda: http2_frames.data_payload(frame(0, 0x8, 1, b"\x03ab"), 0, 3, 0x8),
        0x1,
    ),
]


@pytest.mark.parametrize(
    ("rule", "check", "code"), FRAME_VIOLATIONS, ids=[row[0] for row in FRAME_VIOLATIONS]
)
def test_frame_rule_raises_its_connection_error(
    rule: str, check: Callable[[], object], code: int
) -> None:
    with pytest.raises(ConnectionViolation) as raised:
        check()
    assert raised.value.error_code == code


def test_frame_rules_accept_what_the_rfc_allows() -> None:
    http2_frames.check_preface(http2.PREFACE[:5], 0, 5)
    http2_frames.check_first_frame(4, 0)
    http2_frames.check_frame_size(16384, 16384)
    http2_frames.check_frame_order(9, 1, 1)
    http2_frames.check_frame_order(1, 1, 0)
    http2_frames.check_settings(struct.pack(">HL", 4, (1 << 31) - 1), 0, 6)
    http2_frames.check_settings_ack(0)
    http2_frames.check_priority_stream(1)
    http2_frames.check_priority_update(0, 4)
    assert http2_frames.block_fragment(frame(1, 0x8, 1, b"\x01abX"), 0, 4, 0x8) == b"ab"
    assert http2_frames.data_payload(frame(0, 0x8, 1, b"\x01abX"), 0, 4, 0x8) == (10, 12)
    assert http2_frames.is_self_dependent(
        frame(1, 0x20, 3, struct.pack(">LB", 3, 0)), 0, 5, 0x20, 3
    )


# --- request rules --------------------------------------------------------------------

REQUEST_VIOLATIONS: list[tuple[str, Callable[[], object], type[Exception]]] = [
    ("check_field_value NUL", lambda: http2_request.check_field_value(b"a", b"x\x00y"), Malformed),
    ("check_field_value space", lambda: http2_request.check_field_value(b"a", b" x"), Malformed),
    ("check_field_name upper", lambda: http2_request.check_field_name(b"Accept"), Malformed),
    ("check_field_name empty", lambda: http2_request.check_field_name(b""), Malformed),
    ("check_field_name connection", lambda: http2_request.check_field_name(b"upgrade"), Malformed),
    (
        "check_pseudo_header unknown",
        lambda: http2_request.check_pseudo_header(RequestHead(), b":status", b"200"),
        Malformed,
    ),
    (
        "check_pseudo_header duplicate",
        lambda: http2_request.check_pseudo_header(head(path=b"/"), b":path", b"/"),
        Malformed,
    ),
    ("check_te", lambda: http2_request.check_te(RequestHead(), b"gzip"), Malformed),
    ("check_host twice", lambda: http2_request.check_host(head(host=b"a"), b"a"), Malformed),
    (
        "check_host differs",
        lambda: http2_request.check_host(head(authority=b"a"), b"b"),
        Malformed,
    ),
    (
        "check_content_length conflict",
        lambda: http2_request.check_content_length(head(content_length=b"1"), b"2"),
        Malformed,
    ),
    (
        "check_header_list_size",
        lambda: http2_request.check_header_list_size(1025, 1024),
        HeaderListTooLarge,
    ),
    (
        "check_request_target no method",
        lambda: http2_request.check_request_target(head(scheme=b"https", path=b"/"), True),
        Malformed,
    ),
    (
        "check_request_target empty path",
        lambda: http2_request.check_request_target(
            head(method=b"GET", scheme=b"https", path=b""), True
        ),
        Malformed,
    ),
    (
        "check_request_target CONNECT with path",
        lambda: http2_request.check_request_target(
            head(method=b"CONNECT", authority=b"a:1", path=b"/"), True
        ),
        Malformed,
    ),
    (
        "check_request_target :protocol off",
        lambda: http2_request.check_request_target(
            head(method=b"CONNECT", scheme=b"https", path=b"/", authority=b"a", protocol=b"x"),
            False,
        ),
        Malformed,
    ),
    (
        "check_request_target :protocol on GET",
        lambda: http2_request.check_request_target(
            head(method=b"GET", scheme=b"https", path=b"/", protocol=b"websocket"), True
        ),
        Malformed,
    ),
    (
        "check_body_length not a number",
        lambda: http2_request.check_body_length(head(content_length=b"1e3"), False),
        Malformed,
    ),
    (
        "check_body_length without a body",
        lambda: http2_request.check_body_length(head(content_length=b"3"), True),
        Malformed,
    ),
]


@pytest.mark.parametrize(
    ("rule", "check", "error"), REQUEST_VIOLATIONS, ids=[row[0] for row in REQUEST_VIOLATIONS]
)
def test_request_rule_raises(
    rule: str, check: Callable[[], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        check()


def test_request_rules_accept_what_the_rfc_allows() -> None:
    assert http2_request.check_te(RequestHead(), b"Trailers")
    assert not http2_request.check_host(head(authority=b"a"), b"a")  # dropped: from :authority
    assert http2_request.check_host(RequestHead(), b"a")
    connect = head(method=b"CONNECT", authority=b"a:443")
    assert http2_request.check_request_target(connect, False) == b"a:443"
    assert http2_request.check_body_length(head(content_length=b"0"), True) == 0
    assert http2_request.check_body_length(RequestHead(), False) is None
    assert http2_request.check_trailer_field(b"x-sum", b"1")
    assert not http2_request.check_trailer_field(b":path", b"/")
    request = http2_request.read_request_head(
        [*GET, (b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")], 65536
    )
    assert request.headers() == [
        (b"host", b"example.com"),
        (b"cookie", b"a=1; b=2"),
        (b"accept", b"*/*"),
    ]


# --- a bug inside a rule check vs. a peer's bad frame -------------------------------------


def _boom(*args: object) -> None:
    raise RuntimeError("a bug in a rule check")


def _goaway_debug(frames: list[tuple[int, int, int, bytes]]) -> bytes:
    return next(payload[8:] for frame_type, _, _, payload in frames if frame_type == 7)


@pytest.mark.parametrize(
    ("module", "check", "trigger"),
    [
        (http2, "check_request_target", "request"),
        (http2_frames, "check_settings", "settings"),
    ],
    ids=["request rule", "frame rule"],
)
def test_bug_in_a_rule_check_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    module: object,
    check: str,
    trigger: str,
) -> None:
    pair = Pair()
    monkeypatch.setattr(module, check, _boom)
    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        if trigger == "request":
            _, events = pair.request(GET)
        else:
            events = pair.raw(frame(4, 0, 0, struct.pack(">HL", 3, 10)))
    frames = pair.server_frames()
    assert goaway_code(frames) == ErrorCodes.INTERNAL_ERROR
    assert _goaway_debug(frames) == b"internal error"  # the details stay in the log
    [error] = of(events, ProtocolError)
    assert error.error_code == ErrorCodes.INTERNAL_ERROR
    assert error.message.startswith("internal error: RuntimeError")
    assert of(events, ConnectionClosed)
    assert not of(events, Request)
    [record] = [r for r in caplog.records if r.name == ERROR_LOGGER]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert pair.server.closed


def test_a_peers_bad_frame_stays_a_protocol_error(caplog: pytest.LogCaptureFixture) -> None:
    pair = Pair()
    with caplog.at_level(logging.DEBUG, logger=ERROR_LOGGER):
        events = pair.raw(frame(2, 0, 0, b"\x00\x00\x00\x01\x10"))  # PRIORITY on stream 0
    assert goaway_code(pair.server_frames()) == ErrorCodes.PROTOCOL_ERROR
    [error] = of(events, ProtocolError)
    assert error.error_code == ErrorCodes.PROTOCOL_ERROR
    assert not error.message.startswith("internal error")
    assert not [r for r in caplog.records if r.name == ERROR_LOGGER]


def test_a_malformed_request_stays_a_stream_error(caplog: pytest.LogCaptureFixture) -> None:
    pair = Pair()
    pair.client.config.validate_outbound_headers = False
    with caplog.at_level(logging.DEBUG, logger=ERROR_LOGGER):
        _, events = pair.request([*GET, (b"te", b"gzip")])
    [error] = of(events, ProtocolError)
    assert error.stream_id == 1 and error.error_code == ErrorCodes.PROTOCOL_ERROR
    assert not pair.server.closed
    assert not [r for r in caplog.records if r.name == ERROR_LOGGER]
