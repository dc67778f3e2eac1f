"""One source of truth for limits: every protocol default equals its ``Config`` default.

``tricorn/protocols/`` may not import ``tricorn.config`` (sans-IO) and ``config`` imports no
other layer, so a protocol keeps its own default for use without a server (tests, embedding).
The server's tables (``tricorn.server.connection``) tie each one to the ``Config`` field
passed in its place; a new protocol limit without a row fails
``test_every_http2_limit_has_a_config_field``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from tricorn.config import Config
from tricorn.protocols import http2_limits, websocket
from tricorn.protocols.http2 import HTTP2Protocol
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.http11_httptools import HTTPToolsProtocol
from tricorn.server.connection import HTTP2_SETTINGS, HTTP11_SETTINGS

CONFIG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Config)}

#: HTTP2Protocol and HTTP/1.1 protocol keyword -> Config field: the server's own tables,
#: from which it builds the protocols (``protocol_settings``).
HTTP2_LIMITS = HTTP2_SETTINGS
HTTP11_LIMITS = HTTP11_SETTINGS
#: HTTP2Protocol keywords that are behaviour switches the server sets, not limits.
HTTP2_SWITCHES = {"clock", "enable_connect_protocol", "hold_reset_slots"}

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


def test_every_http11_limit_has_a_config_field() -> None:
    """Every keyword of the HTTP/1.1 protocols but the h2c switch comes from Config."""
    for cls in (HTTP11Protocol, H11Protocol, HTTPToolsProtocol):
        keywords: set[str] = set()
        for klass in cls.__mro__:
            init = vars(klass).get("__init__")
            if init is not None:
                keywords |= set(inspect.signature(init).parameters)
        keywords -= {"self", "limits", "args", "kwargs", "h2c_preface"}
        assert keywords == set(HTTP11_LIMITS), cls.__name__
