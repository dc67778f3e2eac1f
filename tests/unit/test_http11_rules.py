"""HTTP/1.1's rule checks (``tricorn.protocols.http11_rules``), each by name.

Every parser calls these; ``test_http11.py`` shows the same rules on the wire for both parsers.
Here each check is fed the smallest input that passes and the ones that break it.
"""

from __future__ import annotations

import pytest

from tricorn.errors import LocalProtocolError
from tricorn.protocols.http11_rules import (
    NO_OPTIONS,
    PeerError,
    ResponseState,
    State,
    check_authority_form,
    check_chunk_end,
    check_chunk_line,
    check_chunk_line_prefix,
    check_chunked_body_limit,
    check_content_length,
    check_content_length_limit,
    check_field_line,
    check_final_status,
    check_head_limits,
    check_head_lines,
    check_header_name,
    check_host,
    check_informational_status,
    check_no_injection,
    check_no_obs_fold,
    check_partial_head_bytes,
    check_request_line,
    check_response_content_length,
    check_response_framing,
    check_response_transfer_encoding,
    check_trailer_field,
    check_trailer_size,
    check_transfer_encoding,
    choose_upgrade,
    request_options,
)


def status_of(error: pytest.ExceptionInfo[PeerError]) -> int:
    return error.value.status


def test_states_are_ordered_as_the_reader_compares_them() -> None:
    assert State.HEAD < State.LENGTH_BODY < State.TRAILERS < State.DONE < State.CLOSED
    assert ResponseState.NONE < ResponseState.BODY < ResponseState.DONE


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET / HTTP/1.1", (b"GET", b"/", False)),
        (b"GET /a?b HTTP/1.0", (b"GET", b"/a?b", True)),
        (b"CONNECT example.com:443 HTTP/1.1", (b"CONNECT", b"example.com:443", False)),
    ],
)
def test_check_request_line_returns_method_target_and_http10(
    line: bytes, expected: tuple[bytes, bytes, bool]
) -> None:
    assert check_request_line(line, 8192) == expected


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET  / HTTP/1.1", 400),
        (b"GET / HTTP/1.1 ", 400),
        (b"G(T / HTTP/1.1", 400),
        (b"GET / HTTP/2.0", 505),
        (b"GET /", 505),
        (b"CONNECT /path HTTP/1.1", 400),
        (b"GET /" + b"a" * 100 + b" HTTP/1.1", 414),
    ],
)
def test_check_request_line_refuses(line: bytes, status: int) -> None:
    with pytest.raises(PeerError) as error:
        check_request_line(line, 50)
    assert status_of(error) == status


@pytest.mark.parametrize("target", [b"example.com:0", b"example.com:65536", b"[::1]", b":80"])
def test_check_authority_form_refuses_targets_without_a_valid_port(target: bytes) -> None:
    with pytest.raises(PeerError) as error:
        check_authority_form(target)
    assert status_of(error) == 400


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nA: \x00",
        b"GET /\r HTTP/1.1",
        b"GET /\n",
        b"GET / HTTP/1.1\r\nA: b\r",  # a bare CR just before the head's end
        b"GET / HTTP/1.1\r\nA: b\n",
        b"GET / HTTP/1.1\r\r\nA: b",
        b"GET / HTTP/1.1\r\nA: \x7f",
    ],
)
def test_check_head_lines_refuses_control_bytes_and_bare_cr_or_lf(head: bytes) -> None:
    with pytest.raises(PeerError) as error:
        check_head_lines(head.split(b"\r\n"))
    assert status_of(error) == 400


def test_check_head_lines_accepts_htab_and_obs_text() -> None:
    check_head_lines(b"GET / HTTP/1.1\r\nA: b\tc\xff".split(b"\r\n"))


def test_check_partial_head_bytes_lets_a_final_cr_wait_for_its_lf() -> None:
    check_partial_head_bytes(b"GET / HTTP/1.1\r", 0)
    with pytest.raises(PeerError):
        check_partial_head_bytes(b"GET / HTTP/1.1\rX", 0)


def test_check_head_limits_answers_431_for_size_and_field_count() -> None:
    check_head_limits(100, 10, 100, 10)
    for size, fields in ((101, 10), (100, 11)):
        with pytest.raises(PeerError) as error:
            check_head_limits(size, fields, 100, 10)
        assert status_of(error) == 431


def test_check_field_line_tells_obs_fold_from_a_line_without_colon() -> None:
    with pytest.raises(PeerError, match="obs-fold"):
        check_field_line(b" folded")
    with pytest.raises(PeerError, match="without a colon"):
        check_field_line(b"nocolon")
    with pytest.raises(PeerError, match="obs-fold"):
        check_no_obs_fold(b"GET / HTTP/1.1\r\nA: b\r\n\tc")


@pytest.mark.parametrize("name", [b"", b"Name ", b" Name", b"Na(me"])
def test_check_header_name_refuses_non_tokens_and_whitespace(name: bytes) -> None:
    with pytest.raises(PeerError) as error:
        check_header_name(name)
    assert status_of(error) == 400


def test_check_header_name_lower_cases() -> None:
    assert check_header_name(b"X-Rule-Check") == b"x-rule-check"


@pytest.mark.parametrize(
    ("value", "length"),
    [(b"0", 0), (b"08", 8), (b"5, 5", 5), (b"5,05", 5), (b"9" * 18, 10**18 - 1)],
)
def test_check_content_length_reads_one_decimal_value(value: bytes, length: int) -> None:
    assert check_content_length(value) == length


@pytest.mark.parametrize(
    "value", [b"", b"-1", b"+1", b"1.0", b"5, 6", b"0x10", b"9" * 20, b"9223372036854775808"]
)
def test_check_content_length_refuses(value: bytes) -> None:
    with pytest.raises(PeerError) as error:
        check_content_length(value)
    assert status_of(error) == 400


def test_check_content_length_refuses_a_value_other_than_an_earlier_field() -> None:
    assert check_content_length(b"05", 5) == 5
    with pytest.raises(PeerError, match="conflicting"):
        check_content_length(b"6", 5)


def test_check_host_wants_exactly_one_except_for_http10() -> None:
    check_host(1, False)
    check_host(0, True)
    for hosts, http10 in ((0, False), (2, False), (2, True)):
        with pytest.raises(PeerError) as error:
            check_host(hosts, http10)
        assert status_of(error) == 400


@pytest.mark.parametrize(
    ("codings", "http10", "length", "status"),
    [
        ([b"chunked"], True, None, 400),
        ([b"chunked"], False, 5, 400),
        ([b"gzip", b"chunked"], False, None, 501),
        ([b"chunked", b"chunked"], False, None, 400),
    ],
)
def test_check_transfer_encoding_refuses(
    codings: list[bytes], http10: bool, length: int | None, status: int
) -> None:
    with pytest.raises(PeerError) as error:
        check_transfer_encoding(codings, http10, length)
    assert status_of(error) == status


def test_body_limits_answer_413_and_zero_means_no_limit() -> None:
    check_content_length_limit(10**12, 0)
    check_chunked_body_limit(10, 10)
    with pytest.raises(PeerError) as error:
        check_content_length_limit(11, 10)
    assert status_of(error) == 413
    with pytest.raises(PeerError) as error:
        check_chunked_body_limit(11, 10)
    assert status_of(error) == 413


def test_request_options_reads_lists_case_insensitively_over_repeated_fields() -> None:
    options = request_options(
        [
            (b"connection", b"Keep-Alive"),
            (b"connection", b"Upgrade"),
            (b"expect", b"foo, 100-Continue"),
            (b"upgrade", b"websocket"),
            (b"http2-settings", b"AAA"),
        ]
    )
    assert (options.close, options.keep_alive, options.upgrade_option) == (False, True, True)
    assert options.expect_continue and options.upgrade == b"websocket"
    assert options.http2_settings == 1
    assert request_options([(b"host", b"x")]) == NO_OPTIONS


def test_choose_upgrade_takes_h2c_only_with_one_http2_settings() -> None:
    assert choose_upgrade(b"foo, WebSocket", 0) == b"websocket"
    assert choose_upgrade(b"h2c", 1) == b"h2c"
    assert choose_upgrade(b"h2c", 0) == b""
    assert choose_upgrade(b"h2c", 2) == b""


@pytest.mark.parametrize(
    ("line", "size"), [(b"0", 0), (b"1a", 26), (b"5;ext", 5), (b'5 ; a = "q"', 5)]
)
def test_check_chunk_line_returns_the_size(line: bytes, size: int) -> None:
    assert check_chunk_line(b"xx" + line + b"\r\n", 2, 2 + len(line)) == size


@pytest.mark.parametrize("line", [b"", b"g", b"5;", b"-1", b"1" * 17])
def test_check_chunk_line_refuses(line: bytes) -> None:
    with pytest.raises(PeerError) as error:
        check_chunk_line(line, 0, len(line))
    assert status_of(error) == 400


def test_check_chunk_line_prefix_refuses_a_slow_drip_of_digits_early() -> None:
    check_chunk_line_prefix(b"f" * 16)
    with pytest.raises(PeerError, match="16 hex digits"):
        check_chunk_line_prefix(b"f" * 17)
    with pytest.raises(PeerError, match="too long"):
        check_chunk_line_prefix(b"5;" + b"a" * 5000)


def test_check_chunk_end_wants_crlf_after_the_data() -> None:
    check_chunk_end(b"")
    check_chunk_end(b"\r")
    with pytest.raises(PeerError):
        check_chunk_end(b"xy")


def test_trailer_rules() -> None:
    check_trailer_field(b"name: value")
    check_trailer_size(100, 10, 100, 10)
    for line in (b"no colon", b"na me: v", b"name: \x01"):
        with pytest.raises(PeerError) as error:
            check_trailer_field(line)
        assert status_of(error) == 400
    with pytest.raises(PeerError) as error:
        check_trailer_size(101, 1, 100, 10)
    assert status_of(error) == 431


def test_response_status_rules() -> None:
    check_final_status(200, 1)
    check_final_status(999, 1)
    check_informational_status(103, 1)
    for status in (199, 1000):
        with pytest.raises(LocalProtocolError):
            check_final_status(status, 1)
    for status in (101, 200, 99):
        with pytest.raises(LocalProtocolError):
            check_informational_status(status, 1)


def test_response_framing_rules() -> None:
    assert check_response_content_length(b"13", None, 1) == 13
    assert check_response_content_length(b"13", 13, 1) == 13
    for value, previous in ((b"-1", None), (b"1 3", None), (b"14", 13)):
        with pytest.raises(LocalProtocolError, match="invalid content-length"):
            check_response_content_length(value, previous, 1)
    check_response_transfer_encoding(b"Chunked", 1)
    with pytest.raises(LocalProtocolError, match="only chunked"):
        check_response_transfer_encoding(b"gzip", 1)
    check_response_framing(5, False, 1)
    with pytest.raises(LocalProtocolError, match="both"):
        check_response_framing(5, True, 1)


def test_check_no_injection_counts_the_head_lines() -> None:
    check_no_injection(b"HTTP/1.1 200 OK\r\na: b\r\n\r\n", 3, 1)
    for head in (
        b"HTTP/1.1 200 OK\r\na: b\r\nc: d\r\n\r\n",
        b"HTTP/1.1 200 OK\r\na: \0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\na: b\rc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\na: b\nc\r\n\r\n",
    ):
        with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
            check_no_injection(head, 3, 1)
