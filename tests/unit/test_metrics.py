"""The counters (``tricorn.server.metrics``) without sockets: what each hook counts, the
labels the protocols' own rejections get, snapshots, merging, the Prometheus rendering (read
back with prometheus_client's parser) and the statsd lines."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest
from h2.errors import ErrorCodes
from hpack import Encoder
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_http2 import GET, Pair, frame
from tricorn.protocols.events import ProtocolError, Request
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.server.metrics import (
    DURATION_BUCKETS,
    STATSD_MAX_TIMINGS,
    Metrics,
    abuse_limit,
    http1_error_kind,
    merge,
    snapshot_from_json,
    snapshot_to_json,
    tls_failure_reason,
)
from tricorn.server.metrics_export import (
    StatsdSender,
    batch,
    families,
    render_prometheus,
    scrape_response,
)

PING, SETTINGS, PRIORITY, HEADERS, CONTINUATION = 6, 4, 2, 1, 9
END_STREAM, END_HEADERS = 0x1, 0x4


def head(method: str, version: str) -> Request:
    """A request head as the protocols give it (the labels are read from it)."""
    return Request(1, method.encode(), b"/", [], version)


def request(metrics: Metrics, method: str, status: int, version: str = "1.1") -> None:
    metrics.response_done(head(method, version), status, metrics.clock())


def test_requests_are_counted_by_protocol_method_and_status_class() -> None:
    metrics = Metrics()
    request(metrics, "GET", 200)
    request(metrics, "GET", 204)
    request(metrics, "BREW", 418)  # not a standard method: "other"
    request(metrics, "POST", 503, "2")
    request(metrics, "GET", 999)  # out of 1xx..5xx: "other"
    snapshot = metrics.snapshot()
    assert snapshot["requests_total"] == {
        ("http/1.1", "GET", "2xx", "ok"): 2,
        ("http/1.1", "other", "4xx", "ok"): 1,
        ("h2", "POST", "5xx", "ok"): 1,
        ("http/1.1", "GET", "other", "ok"): 1,
    }
    histogram = snapshot["request_duration_seconds"][("http/1.1",)]
    assert len(histogram) == len(DURATION_BUCKETS) + 2  # the buckets, +Inf, the sum
    assert sum(histogram[:-1]) == 4


def test_requests_cut_short_or_refused_are_counted_by_outcome() -> None:
    metrics = Metrics()
    metrics.response_cut({"http_version": "1.1", "method": "GET"}, 200, "client_gone", 0.0)
    metrics.response_cut({"http_version": "2", "method": "POST"}, 0, "shutdown", 0.0)
    metrics.request_ended(0, None, 400, "rejected", 0.0)
    metrics.request_ended(0, "PUT", 413, "rejected", 0.0)
    snapshot = metrics.snapshot()
    assert snapshot["requests_total"] == {
        ("http/1.1", "GET", "2xx", "client_gone"): 1,
        ("h2", "POST", "none", "shutdown"): 1,  # no response head was sent
        ("http/1.1", "other", "4xx", "rejected"): 1,
        ("http/1.1", "PUT", "4xx", "rejected"): 1,
    }
    # The histogram holds every request counted, whatever its outcome.
    assert sum(snapshot["request_duration_seconds"][("http/1.1",)][:-1]) == 3
    assert sum(snapshot["request_duration_seconds"][("h2",)][:-1]) == 1


def test_proxy_protocol_results_are_counted() -> None:
    metrics = Metrics()
    for result in ("proxy", "proxy", "local", "malformed", "closed", "not_allowed", "timeout"):
        metrics.proxy_protocol_result(result)
    assert metrics.snapshot()["proxy_protocol_connections_total"] == {
        ("proxy",): 2,
        ("local",): 1,
        ("malformed",): 1,
        ("closed",): 1,
        ("not_allowed",): 1,
        ("timeout",): 1,
    }


def test_duration_lands_in_its_bucket() -> None:
    metrics = Metrics()
    now = 0.0
    metrics.clock = lambda: now
    # The first three buckets are found by compares, the rest by bisection: both edges.
    durations = (0.0005, 0.001, 0.0011, 0.0025, 0.004, 0.005, 0.0051, 0.02, 100.0)
    for seconds in durations:
        metrics.response_done(head("GET", "1.1"), 200, now - seconds)
    histogram = metrics.snapshot()["request_duration_seconds"][("http/1.1",)]
    assert histogram[0] == 2  # le=0.001 holds 0.0005 and 0.001 itself
    assert histogram[DURATION_BUCKETS.index(0.0025)] == 2  # 0.0011, 0.0025
    assert histogram[DURATION_BUCKETS.index(0.005)] == 2  # 0.004, 0.005
    assert histogram[DURATION_BUCKETS.index(0.01)] == 1  # 0.0051
    assert histogram[DURATION_BUCKETS.index(0.025)] == 1
    assert histogram[len(DURATION_BUCKETS)] == 1  # +Inf
    assert sum(histogram[:-1]) == len(durations)
    assert histogram[-1] == pytest.approx(sum(durations))


def test_requests_and_durations_add_up_by_labels_and_by_protocol() -> None:
    """Each request is one count by its labels and its duration's bucket together: the
    snapshot adds the buckets up for ``requests_total`` and the labels up for each
    protocol's histogram, with the requests cut short (counted apart) in both."""
    metrics = Metrics()
    now = 1000.0
    metrics.clock = lambda: now
    answered = [
        ("1.1", "GET", 200, 0.0004),  # bucket 0 (le 0.001)
        ("1.1", "GET", 204, 0.3),  # le 0.5
        ("1.0", "GET", 200, 7.0),  # le 10; HTTP/1.0 counts as http/1.1
        ("2", "POST", 404, 0.002),  # le 0.0025
        ("2", "GET", 200, 0.0004),
        ("3", "BREW", 500, 100.0),  # +Inf; a method of "other"
    ]
    for version, method, status, seconds in answered:
        metrics.response_done(head(method, version), status, now - seconds)
    metrics.response_cut({"http_version": "2", "method": "GET"}, 200, "client_gone", now - 0.3)
    metrics.request_ended(0, None, 400, "rejected", 0.0)
    snapshot = metrics.snapshot()
    assert snapshot["requests_total"] == {
        ("http/1.1", "GET", "2xx", "ok"): 3,
        ("h2", "POST", "4xx", "ok"): 1,
        ("h2", "GET", "2xx", "ok"): 1,
        ("h3", "other", "5xx", "ok"): 1,
        ("h2", "GET", "2xx", "client_gone"): 1,
        ("http/1.1", "other", "4xx", "rejected"): 1,
    }

    def bucket(bound: float) -> int:
        return DURATION_BUCKETS.index(bound)

    histograms = snapshot["request_duration_seconds"]
    expected = {
        ("http/1.1",): {0: 2, bucket(0.5): 1, bucket(10.0): 1},
        ("h2",): {0: 1, bucket(0.0025): 1, bucket(0.5): 1},
        ("h3",): {len(DURATION_BUCKETS): 1},
    }
    assert set(histograms) == set(expected)
    for protocol, counts in expected.items():
        histogram = histograms[protocol]
        assert len(histogram) == len(DURATION_BUCKETS) + 2
        assert {i: n for i, n in enumerate(histogram[:-1]) if n} == counts, protocol
    assert histograms[("http/1.1",)][-1] == pytest.approx(0.0004 + 0.3 + 7.0)
    assert histograms[("h2",)][-1] == pytest.approx(0.002 + 0.0004 + 0.3)
    assert histograms[("h3",)][-1] == pytest.approx(100.0)


def test_connections_websockets_and_in_flight() -> None:
    """The requests in flight are what the servers counting here say runs at the snapshot
    (``ServerState.running_streams``), summed; HTTP/2 streams are the h2 connections'
    count (``HTTP2Connection._spawn_stream``)."""
    metrics = Metrics()
    running = {"first": 0, "second": 0}
    metrics.running.append(lambda: running["first"])
    metrics.running.append(lambda: running["second"])
    metrics.connection_opened(0)
    metrics.connection_closed(0, handed_off=True)  # the h2c upgrade's HTTP/1.1 part
    metrics.connection_opened(1)
    metrics.protocols[1].streams_started += 1
    metrics.websocket_accepted()
    running["first"], running["second"] = 1, 2
    snapshot = metrics.snapshot()
    assert snapshot["connections_open"] == {("http/1.1",): 0, ("h2",): 1, ("h3",): 0}
    assert snapshot["requests_in_flight"] == {(): 3}
    assert snapshot["http2_streams_total"] == {(): 1}
    assert snapshot["websocket_connections_open"] == {(): 1}
    metrics.ws_open -= 1  # Connection._on_stream_done, for an accepted WebSocket
    running["first"], running["second"] = 0, 0
    metrics.connection_closed(1, handed_off=False)
    snapshot = metrics.snapshot()
    assert snapshot["connections_total"] == {("http/1.1",): 0, ("h2",): 1, ("h3",): 0}
    assert snapshot["requests_in_flight"] == {(): 0}
    assert snapshot["websocket_connections_open"] == {(): 0}
    assert snapshot["websocket_connections_total"] == {(): 1}


# --- the protocols' rejections, as the parsers report them --------------------------------


@pytest.mark.parametrize("parser", [HTTP11Protocol, H11Protocol], ids=["tricorn", "h11"])
@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "bad_request"),  # no Host
        (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         "smuggling"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
         "smuggling"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "smuggling"),  # obs-fold
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n", "smuggling", id="space-colon"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "smuggling"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "smuggling"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n", "body_too_large"),
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 600 + b"\r\n\r\n", "head_too_large"),
        (b"GET / HTTP/2.1\r\nHost: x\r\n\r\n", "version_not_supported"),
    ],
)  # fmt: skip
def test_http11_rejections_get_their_kind(
    parser: type[HTTP11Protocol | H11Protocol], data: bytes, kind: str
) -> None:
    if parser is H11Protocol and b"X : a" in data:
        kind = "bad_request"  # h11's own message ("illegal header line") says no more
    protocol = parser(max_request_line_size=256, max_head_size=512, max_request_body_size=100)
    errors = [event for event in protocol.receive_data(data) if isinstance(event, ProtocolError)]
    assert len(errors) == 1
    metrics = Metrics()
    metrics.http1_error(errors[0])
    assert metrics.snapshot()["protocol_errors_total"] == {("http/1.1", kind): 1}
    assert http1_error_kind(errors[0].status, errors[0].message) == kind


def flood_events(options: dict[str, int], data: bytes) -> list[ProtocolError]:
    pair = Pair(**options)
    return [event for event in pair.raw(data) if isinstance(event, ProtocolError)]


def test_http2_abuse_limits_get_their_names() -> None:
    encoder = Encoder()
    rapid = b"".join(
        frame(HEADERS, END_STREAM | END_HEADERS, 2 * n + 1, encoder.encode(GET))
        + frame(3, 0, 2 * n + 1, (8).to_bytes(4, "big"))
        for n in range(30)
    )
    continuation = (
        frame(HEADERS, 0, 1, Encoder().encode(GET)[:3])
        + frame(CONTINUATION, 0, 1, b"") * 2
        + b"".join(frame(CONTINUATION, 0, 1, b"\x00") for _ in range(10))
    )
    cases = {
        "ping_flood": ({"max_pings_per_window": 5}, frame(PING, 0, 0, b"\0" * 8) * 10),
        "settings_flood": ({"max_settings_per_window": 5}, frame(SETTINGS, 0, 0) * 10),
        "priority_flood": (
            {"max_priority_frames_per_window": 5},
            b"".join(frame(PRIORITY, 0, 2 * n + 1, b"\0\0\0\0\x0f") for n in range(10)),
        ),
        "rapid_reset": ({"max_resets_per_window": 10}, rapid),
        "glitch_budget": (
            {"max_glitches_per_window": 5},
            b"".join(frame(0x20, 0, 0, b"") for _ in range(10)),
        ),
        "continuation_frames": ({"max_continuation_frames": 3}, continuation),
    }
    for name, (options, data) in cases.items():
        errors = [error for error in flood_events(options, data) if error.stream_id is None]
        assert errors, name
        assert errors[-1].error_code == ErrorCodes.ENHANCE_YOUR_CALM, (name, errors[-1])
        metrics = Metrics()
        metrics.h2_error(errors[-1])
        snapshot = metrics.snapshot()
        assert snapshot["abuse_limit_triggers_total"] == {(name,): 1}, errors[-1].message
        assert snapshot["http2_goaways_sent_total"] == {("ENHANCE_YOUR_CALM",): 1}


def test_http2_errors_count_resets_and_goaways_sent() -> None:
    metrics = Metrics()
    metrics.h2_error(ProtocolError(3, "malformed request", error_code=ErrorCodes.PROTOCOL_ERROR))
    metrics.h2_error(ProtocolError(5, "refused", error_code=ErrorCodes.REFUSED_STREAM))
    metrics.h2_error(ProtocolError(7, "header list too large; answered 431", status=431))
    metrics.h2_error(ProtocolError(None, "bad frame", error_code=ErrorCodes.FRAME_SIZE_ERROR))
    metrics.reset("received", 99)
    snapshot = metrics.snapshot()
    assert snapshot["http2_resets_sent_total"] == {("PROTOCOL_ERROR",): 1, ("REFUSED_STREAM",): 1}
    assert snapshot["http2_resets_received_total"] == {("UNKNOWN",): 1}
    assert snapshot["http2_goaways_sent_total"] == {("FRAME_SIZE_ERROR",): 1}
    assert snapshot["abuse_limit_triggers_total"] == {}
    assert snapshot["protocol_errors_total"] == {
        ("h2", "stream_error"): 1,
        ("h2", "refused_stream"): 1,
        ("h2", "head_too_large"): 1,
        ("h2", "connection_error"): 1,
    }


def test_labels_of_free_text_stay_bounded() -> None:
    assert abuse_limit("something new") == "other"
    assert http1_error_kind(400, "a message nobody wrote yet") == "bad_request"
    assert http1_error_kind(None, "x") == "other"
    assert tls_failure_reason("TimeoutError") == "timeout"
    assert tls_failure_reason("[SSL: WRONG_VERSION_NUMBER] wrong version number") == "tls_error"
    assert tls_failure_reason("EndOfStream") == "closed"


# --- snapshots, merging, rendering -----------------------------------------------------


def busy_metrics() -> Metrics:
    metrics = Metrics()
    request(metrics, "GET", 200)
    request(metrics, "PUT", 404, "2")
    metrics.connection_opened(0)
    metrics.reset("sent", ErrorCodes.CANCEL)
    metrics.protocol_error("http/1.1", "smuggling")
    return metrics


def test_snapshot_survives_json() -> None:
    snapshot = busy_metrics().snapshot()
    assert snapshot_from_json(snapshot_to_json(snapshot)) == snapshot


def test_snapshot_from_json_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        snapshot_from_json(b"[1, 2]")
    with pytest.raises(ValueError):
        snapshot_from_json(b'{"requests_total": [["only one label", 1]]}')


def test_merge_adds_counters_and_histograms_and_leaves_gauges_out_if_asked() -> None:
    one, two = busy_metrics().snapshot(), busy_metrics().snapshot()
    total = merge([one, two])
    assert total["requests_total"][("http/1.1", "GET", "2xx", "ok")] == 2
    assert total["connections_open"][("http/1.1",)] == 2
    hist = total["request_duration_seconds"][("h2",)]
    assert sum(hist[:-1]) == 2
    assert "connections_open" not in merge([one], gauges=False)
    assert one["requests_total"][("http/1.1", "GET", "2xx", "ok")] == 1  # inputs untouched


def parse(text: bytes) -> dict[str, float]:
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_prometheus_rendering_parses_back() -> None:
    metrics = busy_metrics()
    text = render_prometheus(lambda: families([({}, metrics.snapshot())]))
    samples = parse(text)
    labels = [("method", "GET"), ("outcome", "ok"), ("protocol", "http/1.1"), ("status", "2xx")]
    assert samples[f"tricorn_requests_total{labels}"] == 1
    assert samples["tricorn_connections_open[('protocol', 'http/1.1')]"] == 1
    assert samples["tricorn_http2_resets_sent_total[('error_code', 'CANCEL')]"] == 1
    assert samples["tricorn_request_duration_seconds_count[('protocol', 'h2')]"] == 1
    assert (
        samples["tricorn_request_duration_seconds_bucket[('le', '+Inf'), ('protocol', 'h2')]"] == 1
    )
    assert b"# TYPE tricorn_request_duration_seconds histogram" in text


def test_per_worker_families_hold_every_worker() -> None:
    one, two = busy_metrics().snapshot(), busy_metrics().snapshot()
    parts = [({"worker": "0"}, one), ({"worker": "1"}, two)]
    text = render_prometheus(lambda: families(parts, prefix="tricorn_worker_"))
    assert text.count(b"# TYPE tricorn_worker_requests_total counter") == 1
    samples = parse(text)
    for worker in ("0", "1"):
        key = [
            ("method", "GET"),
            ("outcome", "ok"),
            ("protocol", "http/1.1"),
            ("status", "2xx"),
            ("worker", worker),
        ]
        assert samples[f"tricorn_worker_requests_total{key}"] == 1


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x", 200),
        (b"GET /metrics?name[]=x HTTP/1.0", 200),
        (b"GET / HTTP/1.1", 404),
        (b"GET /metricsx HTTP/1.1", 404),
        (b"DELETE /metrics HTTP/1.1", 405),
        (b"GET /metrics", 400),
        (b"\x00\x01", 400),
    ],
)
def test_scrape_response(head: bytes, status: int) -> None:
    answer = scrape_response(head, lambda: b"body\n")
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nconnection: close\r\n" in answer


# --- statsd ------------------------------------------------------------------------------


def test_statsd_counters_are_differences_and_gauges_values() -> None:
    metrics = Metrics(timings=STATSD_MAX_TIMINGS)
    sender = StatsdSender("app.", gauge_labels={"worker": "1"})
    request(metrics, "GET", 200)
    request(metrics, "GET", 200)
    metrics.connection_opened(1)
    lines = sender.lines(metrics.snapshot(), *metrics.take_timings())
    assert "app.requests.http_1_1.GET.2xx.ok:2|c" in lines
    assert "app.connections_open.1.h2:1|g" in lines
    assert sum(line.startswith("app.request_duration:") for line in lines) == 2
    request(metrics, "GET", 200)
    lines = sender.lines(metrics.snapshot(), *metrics.take_timings())
    assert "app.requests.http_1_1.GET.2xx.ok:1|c" in lines
    lines = sender.lines(metrics.snapshot(), *metrics.take_timings())
    assert not any(line.endswith("|c") for line in lines)  # nothing new: no counter line
    assert not any("|ms" in line for line in lines)


def test_dogstatsd_tags_and_sampled_timings() -> None:
    metrics = Metrics(timings=STATSD_MAX_TIMINGS)
    for _ in range(STATSD_MAX_TIMINGS * 2):
        request(metrics, "GET", 200)
    sender = StatsdSender("", dogstatsd=True, tags=["env:prod"])
    lines = sender.lines(metrics.snapshot(), *metrics.take_timings())
    counted = [line for line in lines if line.startswith("requests:")]
    assert counted == [
        f"requests:{STATSD_MAX_TIMINGS * 2}|c|#env:prod,protocol:http/1.1,method:GET,"
        "status:2xx,outcome:ok"
    ]
    timings = [line for line in lines if "|ms" in line]
    # Full at 1,000, then one of each two: 500 and 500 more, full again at the last.
    assert len(timings) == STATSD_MAX_TIMINGS
    assert all("|ms|@0.5|#env:prod" in line for line in timings)


def _offer(metrics: Metrics, milliseconds: float, inline: bool) -> None:
    """One duration for the statsd sample: through a request (``response_done``, which
    inlines the sampling; the clock made to give that duration) or ``sample_timing``."""
    if inline:
        metrics.clock = lambda: 0.0
        metrics.response_done(head("GET", "1.1"), 200, -milliseconds / 1e3)
    else:
        metrics.sample_timing(milliseconds)


@pytest.mark.parametrize("inline", [True, False])
def test_statsd_sample_is_uniform_over_the_interval_and_counts_every_duration(
    inline: bool,
) -> None:
    random.seed(12)  # the sample's draws: this test always sees the same sample
    metrics = Metrics(timings=STATSD_MAX_TIMINGS)
    offered = STATSD_MAX_TIMINGS * 20
    for value in range(offered):
        _offer(metrics, float(value), inline)
    timings, seen = metrics.take_timings()
    assert seen == offered
    # Full at 1,000, 2,000, 4,000, 8,000 and 16,000 durations, halved each time: at the
    # end 500 from windows of 32 and one from each of the 125 windows of 32 after.
    assert len(timings) == 625
    values = [round(value) for value in timings]
    assert len(set(values)) == len(values) and set(values) <= set(range(offered))
    # Uniform: one duration from each window of 32 in a row, so every tenth of the
    # interval (62.5 windows) holds 62 or 63 of them, and the mean is about the middle.
    assert all(value // 32 == index for index, value in enumerate(sorted(values)))
    tenths = Counter(value * 10 // offered for value in values)
    assert sorted(tenths) == list(range(10))
    assert all(61 <= count <= 64 for count in tenths.values()), tenths
    assert abs(statistics.mean(values) - offered / 2) < offered * 0.02
    # The next interval's windows are as long as would have taken 4/5 of the sample from
    # the last one: 25 here, so the same number of durations fills it without a halving.
    for value in range(offered):
        _offer(metrics, float(value), inline)
    timings, seen = metrics.take_timings()
    assert (seen, len(timings)) == (offered, 800)
    assert all(value // 25 == index for index, value in enumerate(sorted(timings)))
    # An interval with no request, then one: windows of one again, every duration in.
    assert metrics.take_timings() == ([], 0)
    _offer(metrics, 5.0, inline)
    assert metrics.take_timings() == ([5.0], 1)
    assert metrics.take_timings() == ([], 0)


def test_statsd_sample_halving_keeps_every_duration_equally_likely() -> None:
    """Over many intervals of 1,500 durations (full at 1,000, then windows of two: the
    halving and the first window of a pair split at random), every position of the
    interval is in the sample about as often: 750 times in 1,500 intervals."""
    random.seed(3)
    taken = Counter[int]()
    intervals = 1500
    for _ in range(intervals):
        metrics = Metrics(timings=STATSD_MAX_TIMINGS)
        for value in range(1500):
            metrics.sample_timing(float(value))
        timings, _ = metrics.take_timings()
        assert len(timings) == 750
        taken.update(round(value) for value in timings)
    # Each position is in with probability 1/2: a binomial count of mean 750, deviation
    # about 19; the first 1,000 and the last 500 alike.
    assert all(650 <= taken[position] <= 850 for position in range(1500)), taken.most_common(3)
    first = statistics.mean(taken[position] for position in range(1000))
    last = statistics.mean(taken[position] for position in range(1000, 1500))
    assert abs(first - 750) < 5 and abs(last - 750) < 5


def test_statsd_sample_keeps_everything_up_to_its_size() -> None:
    metrics = Metrics(timings=STATSD_MAX_TIMINGS)
    for value in range(STATSD_MAX_TIMINGS):
        metrics.sample_timing(float(value))
    assert metrics.take_timings() == ([float(v) for v in range(STATSD_MAX_TIMINGS)], 1000)
    unsampled = Metrics()
    unsampled.sample_timing(1.0)
    assert unsampled.take_timings() == ([], 0)


def test_batch_keeps_datagrams_under_the_size() -> None:
    lines = [f"name.{index}:{index}|c" for index in range(500)]
    datagrams = batch(lines, 200)
    assert all(len(datagram) <= 200 for datagram in datagrams)
    assert b"\n".join(datagrams).decode().split("\n") == lines
