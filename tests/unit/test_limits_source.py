"""One source of truth for limits: every protocol default equals its ``Config`` default.

``tricorn/protocols/`` may not import ``tricorn.config`` (sans-IO) and ``config`` imports no
other layer, so a protocol keeps its own default for use without a server (tests, embedding).
This table ties each one to the ``Config`` field the server passes in its place; a new
protocol limit without a row fails ``test_every_http2_limit_has_a_config_field``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from tricorn.config import Config
from tricorn.protocols import http2_limits, websocket
from tricorn.protocols.http2 import HTTP2Protocol
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.http11_httptools import HTTPToolsProtocol

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Config)}

#: HTTP2Protocol keyword -> Config field (the server passes the one as the other).
HTTP2_LIMITS = {
    "max_concurrent_streams": "h2_max_concurrent_streams",
    "max_header_list_size": "h2_max_header_list_size",
    "initial_window_size": "h2_initial_window_size",
    "connection_window_size": "h2_connection_window_size",
    "max_frame_size": "h2_max_frame_size",
    "max_continuation_frames": "h2_max_continuation_frames",
    "max_resets_per_window": "h2_max_resets_per_window",
    "max_pings_per_window": "h2_max_pings_per_window",
    "max_settings_per_window": "h2_max_settings_per_window",
    "max_empty_frames_per_window": "h2_max_empty_frames_per_window",
    "max_priority_frames_per_window": "h2_max_priority_frames_per_window",
    "max_glitches_per_window": "h2_max_glitches_per_window",
    "rate_window_seconds": "h2_flood_window",
    "max_output_buffer": "h2_max_output_buffer",
    "discard_body_limit": "h2_discard_body_limit",
    "max_request_body_size": "max_request_body_size",
}
#: HTTP2Protocol keywords that are behaviour switches the server sets, not limits.
HTTP2_SWITCHES = {"clock", "enable_connect_protocol", "hold_reset_slots"}

HTTP11_LIMITS = {
    "max_request_line_size": "max_request_line_size",
    "max_head_size": "max_head_size",
    "max_headers": "max_headers",
    "max_request_body_size": "max_request_body_size",
}

WEBSOCKET_LIMITS = {
    "max_message_size": "ws_max_message_size",
    "max_fragments": "ws_max_fragments",
}


def constructor_default(cls: type, keyword: str) -> Any:
    """The default of ``keyword`` in the first ``__init__`` along the MRO that declares it
    (``H11Protocol`` takes its limits as ``**limits`` and passes them up)."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get(keyword)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    raise AssertionError(f"{cls.__name__} has no default for {keyword}")


def table() -> list[tuple[str, str, Any]]:
    """(Config field, where the protocol default lives, the protocol default)."""
    rows: list[tuple[str, str, Any]] = []
    for keyword, field in HTTP2_LIMITS.items():
        rows.append(
            (field, f"HTTP2Protocol({keyword}=)", constructor_default(HTTP2Protocol, keyword))
        )
        constant = f"DEFAULT_{keyword.upper()}"
        rows.append((field, f"http2_limits.{constant}", getattr(http2_limits, constant)))
    for cls in (HTTP11Protocol, H11Protocol, HTTPToolsProtocol):
        for keyword, field in HTTP11_LIMITS.items():
            rows.append((field, f"{cls.__name__}({keyword}=)", constructor_default(cls, keyword)))
    for keyword, field in WEBSOCKET_LIMITS.items():
        rows.append(
            (
                field,
                f"WebSocketProtocol({keyword}=)",
                constructor_default(websocket.WebSocketProtocol, keyword),
            )
        )
        constant = f"DEFAULT_{keyword.upper()}"
        rows.append((field, f"websocket.{constant}", getattr(websocket, constant)))
    return rows


@pytest.mark.parametrize(("field", "source", "default"), table(), ids=str)
def test_protocol_default_equals_config_default(field: str, source: str, default: Any) -> None:
    assert field in CONFIG_DEFAULTS, f"Config has no field {field} (for {source})"
    assert default == CONFIG_DEFAULTS[field], (
        f"{source} = {default!r} but Config.{field} = {CONFIG_DEFAULTS[field]!r}"
    )


def test_every_http2_limit_has_a_config_field() -> None:
    keywords = set(inspect.signature(HTTP2Protocol.__init__).parameters) - {"self"}
    assert keywords - HTTP2_SWITCHES == set(HTTP2_LIMITS)


def test_every_http2_default_constant_is_in_the_table() -> None:
    constants = {name for name in vars(http2_limits) if name.startswith("DEFAULT_")}
    assert constants == {f"DEFAULT_{keyword.upper()}" for keyword in HTTP2_LIMITS}


def test_the_server_passes_each_http2_limit_from_config() -> None:
    """The table's claim: where the server builds ``HTTP2Protocol``, each limit keyword is
    given ``<config>.<its field>``."""
    passed: dict[str, str] = {}
    for path in (ROOT / "tricorn" / "server").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "HTTP2Protocol"
            ):
                for keyword in node.keywords:
                    if keyword.arg is not None and isinstance(keyword.value, ast.Attribute):
                        passed[keyword.arg] = keyword.value.attr
    assert passed, "no HTTP2Protocol(...) call found in tricorn/server/"
    assert {k: v for k, v in passed.items() if k in HTTP2_LIMITS} == HTTP2_LIMITS
