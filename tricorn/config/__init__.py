"""Settings as data: the one ``Config`` dataclass, with every field typed and documented.

The TOML keys are the field names; the CLI flags are the same names with dashes.
Precedence: defaults < TOML file < CLI flags (see ``tricorn.config.loader``).
Each field's ``metadata`` carries its one-line help and the bounds the loader checks, so
the CLI, the validation and the configuration reference are all generated from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Backend = Literal["auto", "trio", "asyncio", "uvloop"]
Lifespan = Literal["auto", "on", "off"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
VerifyMode = Literal["none", "optional", "required"]
HTTP1Parser = Literal["h11", "tricorn", "httptools"]
Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]
ProxyProtocolMode = Literal["off", "v1", "v2", "auto"]
QuicRetry = Literal["load", "always", "off"]

DEFAULT_ACCESS_LOG_FORMAT = (
    '{client} - "{method} {target} {protocol}" {status} {bytes} {duration_ms:.1f}ms {outcome}'
)
DEFAULT_WS_ACCESS_LOG_FORMAT = (
    '{client} - "{method} {target} {protocol}" {status} {bytes} {duration_ms:.1f}ms {outcome}'
    " close={close_code} messages={messages_in}/{messages_out}"
)
#: The access log fields, as listed in the help of the format settings.
ACCESS_LOG_FIELD_NAMES = (
    "time, client, method, path (no query), target (path?query as sent), query, status, "
    "bytes, duration_ms, protocol, user_agent, referer, request_id (X-Request-ID), outcome "
    "(ok, client_gone, app_error, shutdown, timeout, protocol_error, cancelled, rejected), "
    "close_code, messages_in, messages_out"
)


#: The proxy headers ``forwarded_headers`` may name (tricorn.server.forwarded reads them).
FORWARDED_HEADER_NAMES = (
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "forwarded",
)


def forwarded_header_names(entries: Iterable[str]) -> list[str]:
    """``forwarded_headers`` entries (each may be a comma-separated list) as lower-case
    names; ``ValueError`` naming an entry that is not in ``FORWARDED_HEADER_NAMES``."""
    names: list[str] = []
    for entry in entries:
        for part in entry.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in FORWARDED_HEADER_NAMES:
                raise ValueError(
                    f"{part.strip()!r} is not one of {', '.join(FORWARDED_HEADER_NAMES)}"
                )
            names.append(name)
    return names


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    group: str = "server",
    env: str | None = None,
) -> Any:
    """A ``Config`` field: its default, one line of help, and optional numeric bounds.

    ``env`` names an environment variable that, when set, replaces the default for the
    command line (``tricorn.config.loader.load_config``; a TOML file and flags still win).
    """
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "group": group}
    if env is not None:
        metadata["env"] = env
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(slots=True)
class Config:
    """Every setting of tricorn. Build it directly, or with ``tricorn.config.loader``."""

    # --- application ---------------------------------------------------------------
    app: str = setting(
        "",
        "The app (ASGI or WSGI) as 'module:attribute' (dotted; 'module:factory()' calls a "
        "factory); empty serves the built-in demo app.",
        group="app",
    )
    factory: bool = setting(
        False, "Treat the app as a factory: call it with no arguments to get the app.", group="app"
    )
    app_dir: str = setting(
        ".", "Directory put first on sys.path before the app is imported.", group="app"
    )
    lifespan: Lifespan = setting(  # noqa: RUF009
        "auto",
        "ASGI lifespan: 'on' requires it, 'off' skips it, 'auto' uses it if the app supports it.",
        group="app",
    )
    startup_timeout: float = setting(
        60.0, "Seconds the app's lifespan startup may take.", minimum=0, group="app"
    )
    shutdown_timeout: float = setting(
        60.0, "Seconds the app's lifespan shutdown may take.", minimum=0, group="app"
    )
    root_path: str = setting(
        "", "The ASGI root_path: the prefix under which the app is mounted.", group="app"
    )
    interface: Interface = setting(  # noqa: RUF009
        "auto",
        "How to call the app: 'auto' (read from its signature), 'asgi3', 'asgi2' or 'wsgi' "
        "(PEP 3333, run in worker threads).",
        group="app",
    )
    wsgi_max_threads: int = setting(
        40,
        "Worker threads for a WSGI app: requests beyond this many wait for a free thread.",
        minimum=1,
        group="app",
    )

    # --- binding and running -------------------------------------------------------
    bind: list[str] = setting(  # noqa: RUF009
        ["127.0.0.1:8000"],
        "Addresses to listen on: 'HOST:PORT', '[V6]:PORT', 'unix:PATH' or 'fd://N'; "
        "repeat for several. Port 0 picks a free port.",
    )
    backend: Backend = setting(  # noqa: RUF009
        "auto",
        "Event loop: 'auto' (trio if the app imports trio, else asyncio), 'trio', 'asyncio', "
        "or 'uvloop' (asyncio with uvloop installed).",
    )
    backlog: int = setting(2048, "Listen backlog of each socket.", minimum=1)
    unix_socket_mode: str = setting(
        "660",
        "Permissions of the unix sockets created for 'unix:PATH' binds, in octal; a reverse "
        "proxy running as another user needs its group here (unix_socket_group) or '666'.",
    )
    unix_socket_user: str = setting(
        "", "Owner (name or uid) given to created unix sockets; empty keeps the process's."
    )
    unix_socket_group: str = setting(
        "", "Group (name or gid) given to created unix sockets; empty keeps the process's."
    )
    server_header: str = setting(
        "tricorn", "Value of the Server response header; empty to send none."
    )
    date_header: bool = setting(True, "Send a Date header on every response.")

    # --- behind a proxy ------------------------------------------------------------
    proxy_headers: bool = setting(
        True,
        "Take the client, scheme, host and prefix from the forwarded_headers a peer in "
        "forwarded_allow_ips sends (X-Forwarded-*, Forwarded).",
        group="proxy",
    )
    forwarded_allow_ips: list[str] = setting(  # noqa: RUF009
        ["127.0.0.1", "::1", "unix"],
        "Peers trusted to send proxy headers: addresses, CIDR networks, 'unix' (unix socket "
        "peers) or '*'; comma-separated lists are fine.",
        group="proxy",
        env="FORWARDED_ALLOW_IPS",
    )
    forwarded_headers: list[str] = setting(  # noqa: RUF009
        ["x-forwarded-for", "x-forwarded-proto"],
        "Which proxy headers a trusted peer may set: x-forwarded-for, -proto, -host, -port, "
        "-prefix, forwarded. Name only those your proxy sets or clears (it passes the "
        "others on from the client).",
        group="proxy",
    )

    # --- behind a proxy: the PROXY protocol ----------------------------------------
    proxy_protocol: ProxyProtocolMode = setting(  # noqa: RUF009
        "off",
        "Read a PROXY protocol header (HAProxy's send-proxy / send-proxy-v2) before TLS and "
        "HTTP on connections from proxy_protocol_allow_ips: 'v1', 'v2', 'auto' (either) or "
        "'off'. Those peers must send one; other peers are served as direct clients.",
        group="proxy",
    )
    proxy_protocol_allow_ips: list[str] = setting(  # noqa: RUF009
        ["127.0.0.1", "::1", "unix"],
        "Peers whose PROXY protocol header is read: addresses, CIDR networks, 'unix' (peers "
        "of unix socket binds) or '*' (everyone); a PROXY header from any other peer closes "
        "its connection.",
        group="proxy",
    )
    proxy_protocol_v2_max_size: int = setting(
        4096,
        "Largest PROXY protocol v2 header accepted, in bytes (16 fixed bytes, addresses and "
        "TLVs); a larger one closes the connection.",
        minimum=232,
        maximum=65551,
        group="proxy",
    )

    # --- time ----------------------------------------------------------------------
    keep_alive_timeout: float = setting(
        5.0, "Seconds an idle keep-alive connection is kept open.", minimum=0, group="limits"
    )
    header_read_timeout: float = setting(
        10.0,
        "Seconds a client has to send a complete request head (slowloris guard).",
        minimum=0,
        group="limits",
    )
    body_read_timeout: float = setting(
        30.0,
        "Seconds a request body may send nothing while the app waits for it (else 408, or "
        "RST_STREAM on HTTP/2); 0 turns it off.",
        minimum=0,
        group="limits",
    )
    body_min_rate: float = setting(
        500.0,
        "Least average request-body rate in bytes/s, over the time the app waits for it, "
        "once body_min_rate_grace is spent (else 408, or RST_STREAM); 0 turns it off.",
        minimum=0,
        group="limits",
    )
    body_min_rate_grace: float = setting(
        10.0,
        "Seconds of waiting a request body gets before body_min_rate applies (with 0 the "
        "app's first wait for bytes not yet sent fails at once).",
        minimum=0,
        group="limits",
    )
    graceful_timeout: float = setting(
        30.0,
        "Seconds in-flight requests get to finish on shutdown before they are cancelled.",
        minimum=0,
        group="limits",
    )
    shutdown_idle_drain: float = setting(
        1.0,
        "Seconds an idle connection is still read once graceful shutdown starts (HTTP/1.1: a "
        "request arriving then is answered with connection: close, not cut; HTTP/2: the most "
        "the final GOAWAY waits for the PING after the first), and the most its close then "
        "waits for the client's FIN; 0 closes idle connections at once.",
        minimum=0,
        group="limits",
    )

    # --- HTTP/1.1 limits -----------------------------------------------------------
    http1_parser: HTTP1Parser = setting(  # noqa: RUF009
        "tricorn",
        "HTTP/1.1 implementation: 'tricorn' (our own strict RFC 9112 parser, the fast one), "
        "'h11' (the h11 library; same behaviour, about 40% fewer requests/s) or 'httptools' "
        "(request heads parsed by llhttp, checked by the same rules; pip install "
        "'tricorn[httptools]').",
        group="limits",
    )
    max_request_line_size: int = setting(
        8192, "Longest request line accepted (else 414).", minimum=16, group="limits"
    )
    max_head_size: int = setting(
        16384, "Largest request head accepted, in bytes (else 431).", minimum=64, group="limits"
    )
    max_headers: int = setting(
        100, "Most header fields accepted in one request (else 431).", minimum=1, group="limits"
    )
    max_request_body_size: int = setting(
        0,
        "Largest request body accepted, in bytes (else 413); 0 for no limit.",
        minimum=0,
        group="limits",
    )
    max_body_buffer: int = setting(
        65536,
        "Request body bytes buffered per stream before the server stops reading.",
        minimum=1,
        group="limits",
    )
    max_unread_body_drain: int = setting(
        1048576,
        "HTTP/1.1: request body bytes still to come that the server reads and drops after a "
        "response that left them unread, to keep the connection; with more (or a chunked "
        "body) the response says connection: close; 0 always closes.",
        minimum=0,
        group="limits",
    )

    # --- logging -------------------------------------------------------------------
    log_level: LogLevel = setting("info", "Level of the error log.", group="logging")  # noqa: RUF009
    access_log: bool = setting(
        True,
        "Write an access log line per HTTP response and per WebSocket session to stdout.",
        group="logging",
    )
    access_log_format: str = setting(
        DEFAULT_ACCESS_LOG_FORMAT,
        "Access log line of an HTTP response, a str.format template; fields: "
        + ACCESS_LOG_FIELD_NAMES
        + ".",
        group="logging",
    )
    ws_access_log_format: str = setting(
        DEFAULT_WS_ACCESS_LOG_FORMAT,
        "Access log line of a WebSocket session (written when it ends), a str.format "
        "template over the same fields as access_log_format.",
        group="logging",
    )
    access_log_json: bool = setting(
        False,
        "Write each access log line as one JSON object with every field, typed (status an "
        "int, duration_ms a float, absent values null), instead of the templates.",
        group="logging",
    )
    log_config: str = setting(
        "",
        "A logging dictConfig file (.json, .toml, or .yaml with PyYAML installed) applied "
        "after tricorn's defaults: it may redefine the tricorn.error and tricorn.access "
        "loggers and their handlers.",
        group="logging",
    )

    # --- metrics -------------------------------------------------------------------
    metrics_bind: str = setting(
        "",
        "Address ('HOST:PORT', '[V6]:PORT', 'unix:PATH' or 'fd://N') serving Prometheus "
        "metrics at GET /metrics, on its own socket; empty: off (needs tricorn[metrics]).",
        group="metrics",
    )
    statsd_host: str = setting(
        "",
        "statsd server 'HOST:PORT' to send the metrics to over UDP; empty: off.",
        group="metrics",
    )
    statsd_prefix: str = setting("tricorn", "Prefix of every statsd metric name.", group="metrics")
    statsd_interval: float = setting(
        1.0,
        "Seconds between two statsd flushes (the metrics of one interval are batched).",
        minimum=0.01,
        group="metrics",
    )
    statsd_dogstatsd: bool = setting(
        False,
        "Send labels as DogStatsD tags (|#key:value) rather than as parts of the name.",
        group="metrics",
    )
    statsd_tags: list[str] = setting(  # noqa: RUF009
        [],
        "DogStatsD tags ('key:value') added to every metric (with statsd_dogstatsd).",
        group="metrics",
    )

    # --- TLS -----------------------------------------------------------------------
    certfile: str = setting(
        "", "PEM certificate (chain) file; setting it turns TLS on.", group="tls"
    )
    keyfile: str = setting("", "PEM private key file (if not inside certfile).", group="tls")
    keyfile_password: str = setting("", "Password of an encrypted keyfile.", group="tls")
    ca_certs: str = setting("", "CA certificates (PEM) to verify client certificates.", group="tls")
    verify_mode: VerifyMode = setting(  # noqa: RUF009
        "none", "Client certificates: 'none', 'optional' or 'required' (mTLS).", group="tls"
    )
    ciphers: str = setting(
        "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20",
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults).",
        group="tls",
    )
    alpn_protocols: list[str] = setting(  # noqa: RUF009
        ["h2", "http/1.1"], "ALPN protocols offered, in order of preference.", group="tls"
    )
    tls_handshake_timeout: float = setting(
        10.0, "Seconds a client has to complete the TLS handshake.", minimum=0, group="tls"
    )

    # --- HTTP/2 --------------------------------------------------------------------
    h2_max_concurrent_streams: int = setting(
        100,
        "Most concurrent streams per connection (beyond: REFUSED_STREAM).",
        minimum=1,
        group="http2",
    )
    h2_max_header_list_size: int = setting(
        65536, "Largest decoded request header list, in bytes.", minimum=1024, group="http2"
    )
    h2_initial_window_size: int = setting(
        1048576,
        "Flow-control window of each request stream, in bytes.",
        minimum=1,
        maximum=2**31 - 1,
        group="http2",
    )
    h2_connection_window_size: int = setting(
        4194304,
        "Flow-control window of the whole connection, in bytes: the most request-body bytes "
        "one connection can make the server hold.",
        minimum=65535,
        maximum=2**31 - 1,
        group="http2",
    )
    h2_max_frame_size: int = setting(
        16384,
        "Largest frame we accept, in bytes.",
        minimum=16384,
        maximum=16777215,
        group="http2",
    )
    h2_max_continuation_frames: int = setting(
        32, "Most CONTINUATION frames in one header block.", minimum=1, group="http2"
    )
    h2_max_resets_per_window: int = setting(
        200,
        "Streams the client may reset per flood window (rapid reset guard).",
        minimum=1,
        group="http2",
    )
    h2_max_pings_per_window: int = setting(
        100, "PING frames per flood window.", minimum=1, group="http2"
    )
    h2_max_settings_per_window: int = setting(
        100, "SETTINGS frames per flood window.", minimum=1, group="http2"
    )
    h2_max_empty_frames_per_window: int = setting(
        100,
        "Empty DATA/HEADERS frames (no END_STREAM) per flood window.",
        minimum=1,
        group="http2",
    )
    h2_max_priority_frames_per_window: int = setting(
        1000, "PRIORITY and PRIORITY_UPDATE frames per flood window.", minimum=1, group="http2"
    )
    h2_max_glitches_per_window: int = setting(
        1000,
        "Frames and resets that serve no request (glitch budget) per flood window; "
        "past it GOAWAY(ENHANCE_YOUR_CALM).",
        minimum=1,
        group="http2",
    )
    h2_discard_body_limit: int = setting(
        64 << 20,
        "Request-body bytes read and discarded after a complete early response (so clients "
        "that cannot take RST_STREAM mid-upload see it); then RST_STREAM(NO_ERROR). 0: reset "
        "at once.",
        minimum=0,
        group="http2",
    )
    h2_max_output_buffer: int = setting(
        1 << 20,
        "Bytes queued for a client (answers to its PING/SETTINGS) above which its input is "
        "not read until they are written (a client that sends without reading).",
        minimum=16384,
        group="http2",
    )
    h2_flood_window: float = setting(
        10.0,
        "Seconds over which the HTTP/2 frame-rate limits are counted.",
        minimum=0.1,
        group="http2",
    )

    # --- HTTP/3 (QUIC) ---------------------------------------------------------------
    quic_bind: list[str] = setting(  # noqa: RUF009
        [],
        "UDP addresses serving HTTP/3 over QUIC: 'HOST:PORT' or '[V6]:PORT' (may share a port "
        "number with a TCP bind); needs certfile and tricorn[h3] (aioquic). Empty: off.",
        group="http3",
    )
    quic_idle_timeout: float = setting(
        30.0,
        "Seconds a QUIC connection may stay silent before it is closed (QUIC idle timeout).",
        minimum=1,
        group="http3",
    )
    quic_retry: QuicRetry = setting(  # noqa: RUF009
        "load",
        "Validate client addresses with a QUIC Retry (one more round trip) before keeping any "
        "state: 'load' while more than quic_max_handshakes handshakes are pending (a spoofed "
        "Initial flood then costs nothing), 'always', or 'off'.",
        group="http3",
    )
    quic_max_handshakes: int = setting(
        100,
        "QUIC handshakes in progress per UDP socket past which new clients must pass a Retry "
        "first (quic_retry = 'load').",
        minimum=0,
        group="http3",
    )
    quic_max_connections: int = setting(
        1000,
        "Most QUIC connections per UDP socket (handshaking or established); an Initial past "
        "it is dropped, and the client may try again once one has closed (idle ones close at "
        "quic_idle_timeout).",
        minimum=1,
        group="http3",
    )
    h3_max_concurrent_streams: int = setting(
        100,
        "Most concurrent request streams per QUIC connection (QUIC MAX_STREAMS).",
        minimum=1,
        group="http3",
    )
    h3_stream_window_size: int = setting(
        1048576,
        "QUIC flow-control window of each request stream, in bytes: request body bytes held "
        "for an app that does not read.",
        minimum=1024,
        group="http3",
    )
    h3_connection_window_size: int = setting(
        4194304,
        "QUIC flow-control window of a whole connection, in bytes.",
        minimum=16384,
        group="http3",
    )
    alt_svc_max_age: int = setting(
        86400,
        "ma= of the Alt-Svc header advertising h3 on the TLS binds' HTTP/1.1 and HTTP/2 "
        "responses when quic_bind is set; 0 sends no Alt-Svc.",
        minimum=0,
        group="http3",
    )

    # --- WebSocket -----------------------------------------------------------------
    ws_compression: bool = setting(
        True, "Negotiate permessage-deflate when the client offers it.", group="websocket"
    )
    ws_compression_level: int = setting(
        1,
        "zlib level (0-9; -1: zlib's default, 6) of the WebSocket messages we compress.",
        minimum=-1,
        maximum=9,
        group="websocket",
    )
    ws_max_message_size: int = setting(
        16 * 1024 * 1024,
        "Largest WebSocket message accepted, after decompression (else close 1009).",
        minimum=1,
        group="websocket",
    )
    ws_max_fragments: int = setting(
        65536,
        "Most frames in one message, an empty final frame not counted (else close 1008).",
        minimum=1,
        group="websocket",
    )
    ws_ping_interval: float = setting(
        20.0,
        "Seconds between keepalive pings on an open WebSocket; 0 turns them off.",
        minimum=0,
        group="websocket",
    )
    ws_ping_timeout: float = setting(
        20.0,
        "Seconds to wait for the pong before closing with 1011.",
        minimum=0,
        group="websocket",
    )
    ws_close_timeout: float = setting(
        5.0,
        "Seconds to wait for the client's close frame after ours.",
        minimum=0,
        group="websocket",
    )

    # --- worker processes ----------------------------------------------------------
    workers: int = setting(
        1,
        "Worker processes; 1 serves in this process, more starts a supervisor that runs "
        "them (restarts, recycling, SIGHUP rolling restart, SIGTTIN/SIGTTOU).",
        minimum=1,
        maximum=1024,
        group="process",
    )
    max_requests: int = setting(
        0,
        "Requests (HTTP and WebSocket) a worker serves before it is replaced; 0 for no limit.",
        minimum=0,
        group="process",
    )
    max_requests_jitter: int = setting(
        0,
        "Up to this many requests added at random to each worker's max_requests (so "
        "workers are not all replaced at once).",
        minimum=0,
        group="process",
    )
    max_worker_lifetime: float = setting(
        0.0,
        "Seconds a worker serves before it is replaced; 0 for no limit.",
        minimum=0,
        group="process",
    )
    max_worker_memory: int = setting(
        0,
        "Resident memory (RSS) in MiB past which a worker is replaced; 0 for no limit.",
        minimum=0,
        group="process",
    )
    worker_timeout: float = setting(
        30.0,
        "Seconds a serving worker's event loop may go without a heartbeat before the "
        "supervisor kills and replaces it; 0 turns it off.",
        minimum=0,
        group="process",
    )
    gc_freeze: bool = setting(
        True,
        "Once the app is imported and its lifespan startup has run, collect garbage once and "
        "move every object then alive into the cyclic collector's permanent generation "
        "(gc.freeze), in this process or each worker: later collections walk only what was "
        "made while serving, not the whole loaded app. Not done by serve() embedded in your "
        "program.",
        group="process",
    )
    pid_file: str = setting(
        "",
        "File the server (the supervisor with workers > 1) writes its pid to; removed at exit.",
        group="process",
    )
    reload: bool = setting(
        False,
        "Development: restart the worker when a .py file under reload_dirs changes (needs "
        "tricorn[reload]; runs the supervisor even with workers = 1).",
        group="process",
    )
    reload_dirs: list[str] = setting(  # noqa: RUF009
        [],
        "Directories watched by reload; none given: the app_dir.",
        group="process",
    )
