"""Differential test: our HTTP/1.1 parser and the ones on h11 and llhttp must agree on every input.

A seeded generator writes valid requests and hostile ones (request smuggling shapes, bad
bytes, absurd chunk sizes, odd versions), pipelines a few, cuts them at random byte boundaries
and feeds the same pieces to ``HTTP11Protocol`` and ``H11Protocol``, answering like a server.
Both must serve the same requests (heads and bodies) and answer the same responses with the
same exact statuses (a 431 where the other says 400 is a disagreement); neither may raise or
stop making progress. ``HTTPToolsProtocol`` (llhttp) keeps HTTP/1.0 connections alive as ours
does, so its transcripts are compared whole.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from fuzz import harness
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.http11_httptools import HTTPToolsProtocol

Protocol = HTTP11Protocol | H11Protocol
SEEDS = [1, 2, 3, 4, 5, 6]
CASES_PER_SEED = 300

# --- the generator -----------------------------------------------------------------------

METHODS = [b"GET", b"GET", b"POST", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS"]
NAMES = [b"Accept", b"User-Agent", b"Cookie", b"X-Trace", b"accept-language", b"X-Empty"]
VALUES = [b"*/*", b"curl/8.0", b"a=1; b=2", b"abc def", b"", b"\xc3\xa9t\xc3\xa9", b'"q"']
AUTHORITIES = [b"example.com:443", b"[::1]:8443", b"192.0.2.1:80", b"a:1"]
BAD_AUTHORITIES = [b"/", b"example.com", b"a:", b":80", b"a:0", b"a:65536", b"a:1/x", b"[::1:80"]
# Content-Length values, "%d" standing for the body's length: lists, leading zeros (08 is 8,
# RFC 9110 8.6), and more digits than 2**63-1 has (400 even when the value is small).
CONTENT_LENGTHS = [b"%d, %d", b"%d,%d", b"+%d", b"%d ", b"0%d", b"%d.0", b"1e%d", b"%d, 0%d"]
CONTENT_LENGTHS += [b"0" * 18 + b"%d", b"0" * 19 + b"%d", b"9" * 19 + b"%d"]
EXPECTS = [b"100-continue", b"100-Continue", b"foo, 100-CONTINUE", b"100-continue,", b"foo"]
CHUNK_SIZES = [
    b"1" + b"0" * 16,  # 17 digits
    b"0" * 16 + b"5",  # 17 digits, small value
    b"F" * 16,
    b"8000000000000000",  # 2**63
    b"7FFFFFFFFFFFFFFF",
    b"F" * 20,  # h11's own maximum
    b"F" * 21,
    b"-1",
    b"+5",
    b"0x5",
    b"5 ",
    b" 5",
    b"5;",
    b"5;a=",
    b'5;a="b',
    b"5 ;a=b",
    b"5;a = b",
    b"5\t;a",
    b"",
]
CODINGS = [
    b"chunked, chunked",
    b" chunked",
    b"Chunked",
    b"CHUNKED",
    b"gzip, chunked",
    b"chunked, gzip",
    b"xchunked",
    b"chunked\t",
    b"identity",
    b"",
    b"chunked;q=1",
    b"chunked,",
    b",chunked",
]


@dataclass
class Message:
    """A request as parts, so that mutations can reach each of them."""

    method: bytes = b"GET"
    target: bytes = b"/"
    version: bytes = b"HTTP/1.1"
    fields: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""  # already framed (Content-Length bytes or chunked encoding)
    line_end: bytes = b"\r\n"

    def encode(self) -> bytes:
        end = self.line_end
        head = [b"%s %s %s" % (self.method, self.target, self.version)]
        head += [name + b": " + value for name, value in self.fields]
        return end.join(head) + end + end + self.body


def random_bytes(rng: random.Random, size: int) -> bytes:
    return bytes(rng.choice(b"abcxyz0123456789 \r\n\x00\xff") for _ in range(size))


def chunked(rng: random.Random, data: bytes, trailers: bool) -> bytes:
    out = b""
    while data:
        size = rng.randint(1, max(1, len(data)))
        piece, data = data[:size], data[size:]
        extension = rng.choice([b"", b"", b";a=b", b';name="x;y"', b" ; a"])
        size_text = b"%x" % len(piece) if rng.random() < 0.8 else b"%X" % len(piece)
        out += size_text + extension + b"\r\n" + piece + b"\r\n"
    out += b"0\r\n"
    if trailers:
        out += rng.choice([b"X-Trailer: 1\r\n", b"Expires: never\r\nX: y\r\n"])
    return out + b"\r\n"


def valid_message(rng: random.Random) -> Message:
    message = Message()
    message.method = rng.choice(METHODS)
    message.target = rng.choice([b"/", b"/a/b?c=d", b"*", b"http://example.com/x", b"/%20"])
    if rng.random() < 0.05:
        message.method = b"CONNECT"
        message.target = rng.choice(AUTHORITIES)
    http10 = rng.random() < 0.15
    message.version = b"HTTP/1.0" if http10 else b"HTTP/1.1"
    if not http10 or rng.random() < 0.5:
        message.fields.append((rng.choice([b"Host", b"host", b"HOST"]), b"example.com"))
    for _ in range(rng.randrange(4)):
        message.fields.append((rng.choice(NAMES), rng.choice(VALUES)))
    if rng.random() < 0.2:
        options = [b"close", b"keep-alive", b"Keep-Alive, x", b"upgrade"]
        message.fields.append((b"Connection", rng.choice(options)))
    if rng.random() < 0.05:
        message.fields += [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
    data = random_bytes(rng, rng.randrange(1, 40))
    framing = rng.choice(["none", "none", "length", "chunked"])
    if framing == "length" or (framing == "chunked" and http10):
        message.fields.append((b"Content-Length", b"%d" % len(data)))
        message.body = data
    elif framing == "chunked":
        message.fields.append((b"Transfer-Encoding", b"chunked"))
        message.body = chunked(rng, data, trailers=rng.random() < 0.3)
    if framing != "none" and rng.random() < 0.2:
        message.fields.append((b"Expect", rng.choice(EXPECTS)))
    rng.shuffle(message.fields)
    return message


def insert(rng: random.Random, data: bytes, extra: bytes, start: int = 0) -> bytes:
    position = rng.randint(min(start, len(data)), len(data))
    return data[:position] + extra + data[position:]


def mutate(rng: random.Random, message: Message) -> bytes:
    """One hostile change to a valid request; returns the request's bytes."""
    fields = message.fields
    kind = rng.randrange(22)
    if kind == 0:  # CL.TE and TE.CL
        fields.append((b"Content-Length", b"%d" % rng.randrange(0, 9)))
        fields.append((b"Transfer-Encoding", b"chunked"))
        rng.shuffle(fields)
        message.body = message.body or b"0\r\n\r\n"
    elif kind == 1:  # duplicated Content-Length, the same value maybe spelled otherwise (08)
        length = len(message.body)
        other = rng.choice([length, length + 1, 0])
        spelling = rng.choice([b"%d", b"0%d", b"000%d"])
        fields += [(b"Content-Length", b"%d" % length), (b"Content-Length", spelling % other)]
    elif kind == 2:  # Content-Length lists and odd numbers, leading zeros, too many digits
        value = rng.choice(CONTENT_LENGTHS)
        count = value.count(b"%")
        fields.append((b"Content-Length", value % ((len(message.body),) * count)))
    elif kind == 3:  # Transfer-Encoding variants
        fields.append((b"Transfer-Encoding", rng.choice(CODINGS)))
        if rng.random() < 0.3:
            fields.append((b"Transfer-Encoding", b"chunked"))
        message.body = chunked(rng, b"hello", trailers=False)
    elif kind == 4:  # Transfer-Encoding on HTTP/1.0
        message.version = b"HTTP/1.0"
        fields.append((b"Transfer-Encoding", b"chunked"))
        message.body = chunked(rng, b"hello", trailers=False)
    elif kind == 5:  # obs-fold
        fields.insert(rng.randrange(len(fields) + 1), (b"X-Folded", b"a\r\n folded"))
    elif kind == 6:  # bare LF line ends
        message.line_end = rng.choice([b"\n", b"\r\r\n"])
    elif kind == 7:  # a bare CR, LF, NUL or control byte in the head
        data = message.encode()
        head_end = data.index(b"\r\n\r\n")
        bad = rng.choice([b"\r", b"\n", b"\x00", b"\x01", b"\x7f", b"\x0b", b"\t"])
        return insert(rng, data[:head_end], bad, 1) + data[head_end:]
    elif kind == 8:  # whitespace around the colon or inside the name
        name = rng.choice([b"Host ", b"Host\t", b" Host", b"Ho st", b"Host\x00"])
        fields.append((name, b"example.com"))
    elif kind == 9:  # huge or malformed chunk sizes
        fields.append((b"Transfer-Encoding", b"chunked"))
        size = rng.choice(CHUNK_SIZES)
        message.body = size + b"\r\n" + b"hello\r\n0\r\n\r\n"
    elif kind == 10:  # chunk data not followed by CRLF
        fields.append((b"Transfer-Encoding", b"chunked"))
        message.body = b"5\r\nhello" + rng.choice([b"\n", b"XX", b"\r", b"\n\r"]) + b"0\r\n\r\n"
    elif kind == 11:  # request lines of other versions and shapes
        message.version = rng.choice(
            [b"HTTP/2.0", b"HTTP/0.9", b"", b"HTTP/1.2", b"HTTP/1.10", b"http/1.1", b"HTTP/1"]
        )
    elif kind == 12:  # Host missing, repeated, empty
        fields[:] = [(name, value) for name, value in fields if name.lower() != b"host"]
        fields += rng.choice([[], [(b"Host", b"a"), (b"Host", b"b")], [(b"Host", b"")]])
    elif kind == 13:  # method and target shapes
        message.method = rng.choice([b"G(T", b"get", b"GET\x00", b"PRI", b"M" * 300, b"CONNECT"])
        message.target = rng.choice(
            [b"/", b"/\xff", b"/a b", b"/" + b"a" * 300, rng.choice(BAD_AUTHORITIES)]
        )
    elif kind == 14:  # a body of other length than announced
        fields[:] = [
            (name, value) for name, value in fields if name.lower() not in harness.FRAMING_FIELDS
        ]
        fields.append((b"Content-Length", b"%d" % rng.randrange(0, 60)))
        message.body = random_bytes(rng, rng.randrange(0, 40))
    elif kind == 15:  # trailer shapes
        fields[:] = [
            (name, value) for name, value in fields if name.lower() not in harness.FRAMING_FIELDS
        ]
        fields.append((b"Transfer-Encoding", b"chunked"))
        trailer = rng.choice(
            [b"X: 1", b"no colon", b" X: folded", b"X : 1", b"Content-Length: 5", b"X: a\x01"]
        )
        message.body = b"3\r\nabc\r\n0\r\n" + trailer + b"\r\n\r\n"
    elif kind == 16:  # many or long fields
        fields += [(b"X-Many", b"v" * rng.randrange(1, 400))] * rng.randrange(1, 12)
    elif kind == 17:  # the smuggled request hidden in a body
        hidden = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        fields.append((b"Content-Length", b"%d" % rng.choice([0, 5, len(hidden)])))
        fields.append((b"Transfer-Encoding", rng.choice([b"chunked", b"identity", b"x"])))
        message.body = b"0\r\n\r\n" + hidden
    data = message.encode()
    if kind >= 18:  # random byte-level damage
        position = rng.randrange(len(data))
        if kind == 18:
            return data[:position] + bytes([rng.randrange(256)]) + data[position + 1 :]
        if kind == 19:
            return data[:position] + data[position + 1 :]
        if kind == 20:
            return data[:position]
        return insert(rng, data, rng.choice([b"\r\n", b"\r\n\r\n", b":", b" ", b";"]))
    return data


def generate(rng: random.Random) -> tuple[list[bytes], dict[str, int]]:
    """A pipelined sequence cut into pieces, and the limits to build both protocols with."""
    data = b""
    for _ in range(rng.randint(1, 3)):
        message = valid_message(rng)
        if rng.random() < 0.1:
            data += b"\r\n" * rng.randint(1, 2)
        data += mutate(rng, message) if rng.random() < 0.5 else message.encode()
    limits: dict[str, int] = {}
    if rng.random() < 0.3:
        limits = {
            "max_request_line_size": rng.choice([16, 64, 8192]),
            "max_head_size": rng.choice([64, 256, 16384]),
            "max_headers": rng.choice([2, 8, 100]),
            "max_request_body_size": rng.choice([0, 4, 16]),
        }
    if rng.random() < 0.05:
        pieces = [data[index : index + 1] for index in range(len(data))]
    else:
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(5)))
        pieces = [
            data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)
        ]
    return [piece for piece in pieces if piece], limits


# --- driving a protocol like the server does: fuzz/harness.py's driver ---------------------
#
# ``harness.drive_http1`` feeds the pieces as the server does (then EOF), answers every
# request ``200 ok`` (``405`` to odd CONNECTs: a 2xx would open a tunnel, which no parser
# offers) and declines upgrades; ``harness.comparable`` is what h11 and our parser must agree
# on. The atheris target ``http1_diff`` uses the same two.

Transcript = harness.HTTP1Transcript


def drive(
    protocol_class: type[Protocol], pieces: list[bytes], limits: dict[str, int]
) -> Transcript:
    return harness.drive_http1(protocol_class, pieces, limits)


comparable = harness.comparable


def run_case(seed: int, case: int) -> tuple[Transcript, Transcript, list[bytes], dict[str, int]]:
    rng = random.Random(seed * 1_000_003 + case)
    pieces, limits = generate(rng)
    ours = drive(HTTP11Protocol, pieces, limits)
    theirs = drive(H11Protocol, pieces, limits)
    return ours, theirs, pieces, limits


@pytest.mark.parametrize("seed", SEEDS)
def test_both_parsers_serve_the_same_requests_and_answer_the_same_errors(seed: int) -> None:
    disagreements = []
    for case in range(CASES_PER_SEED):
        ours, theirs, pieces, limits = run_case(seed, case)
        if comparable(ours) != comparable(theirs):
            disagreements.append((case, b"".join(pieces)[:300], limits, ours, theirs))
    assert not disagreements, disagreements[:3]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_llhttp_parser_serves_and_answers_exactly_like_ours(seed: int) -> None:
    disagreements = []
    for case in range(CASES_PER_SEED):
        rng = random.Random(seed * 1_000_003 + case)
        pieces, limits = generate(rng)
        ours = drive(HTTP11Protocol, pieces, limits)
        theirs = drive(HTTPToolsProtocol, pieces, limits)
        if ours != theirs:
            disagreements.append((case, b"".join(pieces)[:300], limits, ours, theirs))
    assert not disagreements, disagreements[:3]


# Heads llhttp takes or refuses where tricorn's rules say otherwise, each with our answer.
LLHTTP_DIFFERENCES = [
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # llhttp takes two spaces
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),  # llhttp takes the version
    (b"GET /\r\nHost: a\r\n\r\n", 505),  # HTTP/0.9: llhttp takes it
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 200),  # llhttp: 400
    (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 200),  # llhttp refuses methods it does not know
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: b \t\r\n\r\n", 200),  # llhttp keeps trailing OWS
    (b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400),
    (b"CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
]


@pytest.mark.parametrize(("head", "status"), LLHTTP_DIFFERENCES)
def test_where_llhttp_differs_the_answer_is_ours(head: bytes, status: int) -> None:
    ours = drive(HTTP11Protocol, [head], {})
    theirs = drive(HTTPToolsProtocol, [head], {})
    assert theirs == ours
    assert (theirs.statuses or [0])[0] == status


def test_the_generator_reaches_both_served_requests_and_each_error_status() -> None:
    """Guard against a generator that only produces garbage (or never any)."""
    served = 0
    errors: set[int] = set()
    for seed in SEEDS:
        for case in range(CASES_PER_SEED):
            rng = random.Random(seed * 1_000_003 + case)
            pieces, limits = generate(rng)
            ours = drive(HTTP11Protocol, pieces, limits)
            served += sum(1 for item in ours.requests if item[0] == "body")
            if ours.error:
                errors.add(ours.error)
    assert served > len(SEEDS) * CASES_PER_SEED // 2
    assert {400, 413, 414, 431, 501, 505} <= errors
