"""Load a ``Config`` from defaults, a TOML file and command-line flags, with one-line errors.

Everything here is derived from the ``Config`` fields: their annotations give the types
(str, int, float, bool, list[...], Literal[...], ``X | None``) and their metadata the help,
the bounds and the help group. Adding a field to ``Config`` adds its flag, its TOML key,
its validation and its line in the configuration reference.

Precedence: defaults < environment variables (the few settings that name one, such as
``FORWARDED_ALLOW_IPS``) < TOML file (``--config FILE``) < flags given on the command line.
TOML keys are the field names exactly (``keep_alive_timeout``); flags are the same names
with dashes (``--keep-alive-timeout``). A list flag given on the command line replaces the
file's list; repeat the flag for several items.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import ipaddress
import json
import math
import os
import platform
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NoReturn

from tricorn.config import Config, forwarded_header_names
from tricorn.config.logging import LogConfigError, access_log_format_problem, read_log_config
from tricorn.errors import ConfigError

#: Where values given as flags come from, in error messages.
COMMAND_LINE = "the command line"

#: Titles of the help groups; a group missing here is shown by its name.
GROUP_TITLES = {
    "app": "application",
    "server": "binding and running",
    "proxy": "behind a proxy",
    "limits": "limits and timeouts",
    "logging": "logging",
    "metrics": "metrics",
    "tls": "TLS",
    "http2": "HTTP/2",
    "http3": "HTTP/3 (QUIC)",
    "websocket": "WebSocket",
    "process": "worker processes",
}

#: Short flags, by field name.
SHORT_FLAGS = {"workers": "-w"}

#: Flags other servers have, and what to use instead.
FOREIGN_FLAGS = {
    "--host": "use --bind HOST:PORT",
    "--port": "use --bind HOST:PORT",
}

BIND_FORMS = "'HOST:PORT', '[V6]:PORT', 'unix:PATH' or 'fd://N'"

_NOUNS: dict[type, tuple[str, str, str]] = {
    # type: (one value, several values, CLI metavar)
    str: ("a string", "strings", "TEXT"),
    int: ("an integer", "integers", "INT"),
    float: ("a number", "numbers", "NUMBER"),
    bool: ("true or false", "booleans", "BOOL"),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What the loader knows of one ``Config`` field, read from its annotation and metadata."""

    name: str
    #: The scalar type of the value, or of each item of a list: str, int, float or bool.
    base: type
    #: The allowed values of a ``Literal`` field (or of each item of a list of literals).
    choices: tuple[Any, ...] | None
    is_list: bool
    #: ``X | None``: None is allowed (it can only come from the default or ``none`` on the CLI).
    optional: bool
    default: Any
    help: str
    minimum: float | None
    maximum: float | None
    group: str
    #: The environment variable that replaces the default on the command line, if any.
    env: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def expected(self) -> str:
        """What a valid value is, in words: 'a number >= 0', 'one of "on", "off"'."""
        one, several, _ = _NOUNS[self.base]
        if self.choices is not None:
            listed = ", ".join(show_value(choice) for choice in self.choices)
            text = f"one of {listed}" if not self.is_list else f"a list of values from {listed}"
        elif self.is_list:
            text = f"a list of {several}"
        else:
            text = one + self._bounds()
        return text

    def _bounds(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f" between {low} and {high}"
        if low is not None:
            return f" >= {low}"
        if high is not None:
            return f" <= {high}"
        return ""


class _Invalid(Exception):
    """A value does not fit; carries the offending value and what was expected."""

    def __init__(self, value: Any, expected: str) -> None:
        super().__init__(expected)
        self.value = value
        self.expected = expected


def show_value(value: Any) -> str:
    """A value as it would be written in TOML: strings in double quotes, true/false, lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {show_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def _error(key: str, value: Any, source: str, expected: str) -> ConfigError:
    return ConfigError(f"config: {key} = {show_value(value)} (from {source}): expected {expected}")


# --- reading the fields --------------------------------------------------------------


def _spec_from_field(item: dataclasses.Field[Any], annotation: Any) -> FieldSpec:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"Config.{item.name}: unsupported annotation {annotation!r}")
        optional = True
        annotation = members[0]
        origin = typing.get_origin(annotation)
    is_list = origin is list
    if is_list:
        (annotation,) = typing.get_args(annotation)
        origin = typing.get_origin(annotation)
    choices: tuple[Any, ...] | None = None
    if origin is Literal:
        choices = typing.get_args(annotation)
        kinds = {type(choice) for choice in choices}
        if len(kinds) != 1:
            raise TypeError(f"Config.{item.name}: Literal choices of mixed types")
        annotation = kinds.pop()
    if annotation not in _NOUNS:
        raise TypeError(f"Config.{item.name}: unsupported annotation {annotation!r}")
    if item.default is not dataclasses.MISSING:
        default = item.default
    elif item.default_factory is not dataclasses.MISSING:
        default = item.default_factory()
    else:
        raise TypeError(f"Config.{item.name}: every setting needs a default")
    metadata = item.metadata
    return FieldSpec(
        name=item.name,
        base=annotation,
        choices=choices,
        is_list=is_list,
        optional=optional,
        default=default,
        help=str(metadata.get("help", "")),
        minimum=metadata.get("minimum"),
        maximum=metadata.get("maximum"),
        group=str(metadata.get("group", "server")),
        env=metadata.get("env"),
    )


@cache
def field_specs(config_class: type[Any] = Config) -> dict[str, FieldSpec]:
    """Every field of ``config_class`` (a dataclass like ``Config``), by name, in order.

    Raises ``TypeError`` for a field whose annotation the loader cannot handle or that has
    no default: a programming error, caught by the tests.
    """
    hints = typing.get_type_hints(config_class)
    return {
        item.name: _spec_from_field(item, hints[item.name])
        for item in dataclasses.fields(config_class)
    }


# --- checking values ----------------------------------------------------------------


def _check_scalar(spec: FieldSpec, value: Any) -> Any:
    base = spec.base
    if base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise _Invalid(value, "a finite number")
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, base)
    if not ok:
        raise _Invalid(value, spec.expected())
    if spec.choices is not None:
        if value not in spec.choices:
            raise _Invalid(value, spec.expected())
        return value
    if base in (int, float) and (
        (spec.minimum is not None and value < spec.minimum)
        or (spec.maximum is not None and value > spec.maximum)
    ):
        raise _Invalid(value, spec.expected())
    return float(value) if base is float else value


def _check_value(spec: FieldSpec, value: Any) -> Any:
    if value is None and spec.optional:
        return None
    if not spec.is_list:
        return _check_scalar(spec, value)
    if isinstance(value, str) and spec.base is str:
        value = [value]  # a single item may be written without the list brackets
    if not isinstance(value, list):
        raise _Invalid(value, spec.expected())
    try:
        return [_check_scalar(spec, item) for item in value]
    except _Invalid:
        raise _Invalid(value, spec.expected()) from None


def _bind_problem(value: str) -> str | None:
    """None when ``value`` is a bind address in one of the accepted forms, else why not."""
    if value.startswith("unix:"):
        return None if value.removeprefix("unix:") else "'unix:PATH' with a socket path"
    if value.startswith("fd://"):
        number = value.removeprefix("fd://")
        return None if number.isascii() and number.isdigit() else "'fd://N' with N a number"
    try:
        _split_host_port(value)
    except _Invalid as invalid:
        return invalid.expected
    return None


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()):
        raise _Invalid(value, BIND_FORMS)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid(value, "an IPv6 address inside the brackets of '[V6]:PORT'") from None
    elif ":" in host:
        raise _Invalid(value, "an IPv6 host in brackets: '[V6]:PORT'")
    port = int(port_text)
    if port > 65535:
        raise _Invalid(value, "a port between 0 and 65535")
    return host, port


def parse_bind(value: str) -> tuple[str, int]:
    """Split a TCP bind ``HOST:PORT`` or ``[V6]:PORT`` into host (no brackets) and port.

    Raises ``ConfigError`` naming the value for anything else, including the non-TCP forms
    ``unix:PATH`` and ``fd://N`` (check for those prefixes first).
    """
    try:
        return _split_host_port(value)
    except _Invalid as invalid:
        raise ConfigError(
            f"config: bind = {show_value(value)}: expected {invalid.expected}"
        ) from None


def _check_binds(values: list[str]) -> None:
    for value in values:
        problem = _bind_problem(value)
        if problem is not None:
            raise _Invalid(value, problem)


def _check_access_log_format(template: str) -> None:
    problem = access_log_format_problem(template)
    if problem is not None:
        raise _Invalid(template, problem)


def _check_log_config(path: str) -> None:
    if not path:
        return
    try:
        read_log_config(path)
    except LogConfigError as error:
        raise _Invalid(path, f"a logging dictConfig file ({error.problem})") from None


def _check_octal_mode(value: str) -> None:
    if not (1 <= len(value) <= 4 and all(c in "01234567" for c in value)):
        raise _Invalid(value, "file permissions in octal, such as '660' or '0666'")


def _check_metrics_bind(value: str) -> None:
    if value:
        _check_binds([value])


def _check_quic_binds(values: list[str]) -> None:
    for value in values:
        if value.startswith(("unix:", "fd://")):
            raise _Invalid(value, "'HOST:PORT' or '[V6]:PORT' (UDP)")
        _split_host_port(value)


def _check_statsd_host(value: str) -> None:
    if not value:
        return
    if value.startswith(("unix:", "fd://")):
        raise _Invalid(value, "'HOST:PORT' or '[V6]:PORT' (UDP)")
    _split_host_port(value)


def _check_peer_list(values: list[str]) -> None:
    """A trust list (``forwarded_allow_ips``, ``proxy_protocol_allow_ips``): the entries
    ``TrustedPeers.parse`` (tricorn/server/trust.py) takes, checked here because config
    imports no server code; tests/unit/test_forwarded.py and test_config.py check the two
    agree."""
    for value in values:
        for part in value.split(","):
            entry = part.strip()
            if not entry or entry == "*" or entry.lower() == "unix":
                continue
            try:
                ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                raise _Invalid(
                    value, f"addresses, CIDR networks, 'unix' or '*' ({entry!r} is none)"
                ) from None


def _check_forwarded_headers(values: list[str]) -> None:
    try:
        forwarded_header_names(values)
    except ValueError as error:
        raise _Invalid(values, f"header names ({error})") from None


#: Checks beyond type and bounds, by field name.
EXTRA_CHECKS: dict[str, Callable[[Any], None]] = {
    "bind": _check_binds,
    "metrics_bind": _check_metrics_bind,
    "statsd_host": _check_statsd_host,
    "quic_bind": _check_quic_binds,
    "access_log_format": _check_access_log_format,
    "ws_access_log_format": _check_access_log_format,
    "log_config": _check_log_config,
    "unix_socket_mode": _check_octal_mode,
    "forwarded_allow_ips": _check_peer_list,
    "forwarded_headers": _check_forwarded_headers,
    "proxy_protocol_allow_ips": _check_peer_list,
}


def _unknown_key(key: str, value: Any, source: str, names: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, names, n=1)
    if key.replace("-", "_") in names:
        close = [key.replace("-", "_")]
    hint = f"; did you mean {close[0]}?" if close else "; see tricorn --help for the settings"
    return ConfigError(f"config: {key} = {show_value(value)} (from {source}): unknown key{hint}")


def validate_mapping(mapping: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check each key and value of ``mapping``; return the values converted to field types.

    Raises ``ConfigError`` (one line naming the key, the value, ``source`` and what was
    expected) for an unknown key, a wrong type, a value out of bounds or not among the
    choices, a bad bind address or a bad access log format.
    """
    specs = field_specs()
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        spec = specs.get(key)
        if spec is None:
            raise _unknown_key(key, value, source, list(specs))
        try:
            checked = _check_value(spec, value)
            if key in EXTRA_CHECKS and checked is not None:
                EXTRA_CHECKS[key](checked)
        except _Invalid as invalid:
            raise _error(key, invalid.value, source, invalid.expected) from None
        values[key] = checked
    return values


def config_from_mapping(mapping: Mapping[str, Any], source: str) -> Config:
    """A ``Config`` from the defaults overridden by ``mapping`` (validated as above)."""
    return Config(**validate_mapping(mapping, source))


def check_config(config: Config, source: str = "Config(...)") -> None:
    """Validate a ``Config`` built in code (embedding) as the loader validates files/flags.

    Raises the same one-line ``ConfigError`` for the first field that does not fit.
    """
    validate_mapping({name: getattr(config, name) for name in field_specs()}, source)


def config_from_toml(path: str) -> dict[str, Any]:
    """Read a TOML file into a dict (not yet validated); ``ConfigError`` if that fails."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config: --config {show_value(path)}: no such file") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(
            f"config: --config {show_value(path)}: cannot read it ({reason})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config: {path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config: {path}: not valid TOML: not UTF-8 ({error.reason})") from None


# --- the command line ---------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are ``ConfigError`` lines, not an exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"config: {message} (on {COMMAND_LINE})")


def _help_text(spec: FieldSpec) -> str:
    if spec.is_list:
        shown = ", ".join(str(item) for item in spec.default) or "none"
    elif spec.base is bool or spec.default is None:
        shown = show_value(spec.default)
    elif spec.base is str:
        shown = spec.default if spec.default else '""'
    else:
        shown = str(spec.default)
    text = f"{spec.help} (default: {shown}"
    text += f"; environment: {spec.env})" if spec.env else ")"
    return text.replace("%", "%%")  # argparse %-formats help texts


def _metavar(spec: FieldSpec) -> str:
    if spec.choices is not None:
        return "{" + ",".join(str(choice) for choice in spec.choices) + "}"
    return _NOUNS[spec.base][2]


def _version() -> str:
    from tricorn import __version__  # here, not at import: tricorn/__init__ imports config

    implementation = platform.python_implementation()
    return (
        f"tricorn {__version__} ({implementation} {platform.python_version()} "
        f"on {platform.system()})"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``tricorn`` argument parser, one flag per ``Config`` field, grouped as in the help.

    Flags have ``argparse.SUPPRESS`` defaults: the namespace holds only the flags given, as
    strings (bools as bools, lists as lists of strings); ``load_config`` validates them.
    Usage errors raise ``ConfigError`` instead of exiting; ``--help`` and ``--version``
    exit 0 (``SystemExit``).
    """
    parser = _Parser(
        prog="tricorn",
        usage="%(prog)s [OPTIONS] [APP]",
        description=(
            "Serve an ASGI app over HTTP/1.1, HTTP/2 and WebSocket. Settings come from the "
            "defaults, then the TOML file given with --config (keys are the setting names "
            "with underscores), then the flags given here."
        ),
        epilog="Example: tricorn myapp:app --bind 0.0.0.0:8000",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=40),
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="Read settings from this TOML file; flags given here override it.",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in field_specs().values():
        group = groups.get(spec.group)
        if group is None:
            title = GROUP_TITLES.get(spec.group, spec.group.replace("_", " "))
            group = groups[spec.group] = parser.add_argument_group(title)
        help_text = _help_text(spec)
        if spec.name == "app":
            group.add_argument("app", nargs="?", metavar="APP", help=help_text)
        elif spec.base is bool and not spec.is_list:
            group.add_argument(
                spec.flag, dest=spec.name, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            group.add_argument(
                spec.flag,
                *([SHORT_FLAGS[spec.name]] if spec.name in SHORT_FLAGS else []),
                dest=spec.name,
                metavar=_metavar(spec),
                action="append" if spec.is_list else "store",
                help=help_text,
            )
    return parser


def _from_text(spec: FieldSpec, text: str) -> Any:
    """A flag's text as the field's type; an unconvertible text is returned as is."""
    if spec.optional and spec.base is not str and text.strip().lower() == "none":
        return None
    if spec.choices is not None:
        for choice in spec.choices:
            if str(choice) == text:
                return choice
        return text
    try:
        if spec.base is int:
            return int(text)
        if spec.base is float:
            try:
                return int(text)  # shown as typed in errors; a valid float value all the same
            except ValueError:
                return float(text)
    except ValueError:
        return text
    return text


def _command_line_values(namespace: argparse.Namespace) -> dict[str, Any]:
    specs = field_specs()
    values: dict[str, Any] = {}
    for name, given in vars(namespace).items():
        spec = specs.get(name)
        if spec is None:
            continue
        if isinstance(given, list):
            values[name] = [_from_text(spec, item) for item in given]
        elif isinstance(given, str):
            values[name] = _from_text(spec, given)
        else:
            values[name] = given
    return values


def _unknown_arguments(extras: list[str], parser: argparse.ArgumentParser) -> ConfigError:
    first = extras[0]
    if not first.startswith("-"):
        return ConfigError(f"config: unexpected argument {first!r} (on {COMMAND_LINE})")
    flag = first.partition("=")[0]
    if flag in FOREIGN_FLAGS:
        return ConfigError(
            f"config: unknown option {flag} (on {COMMAND_LINE}); {FOREIGN_FLAGS[flag]}"
        )
    options = [option for action in parser._actions for option in action.option_strings]
    close = difflib.get_close_matches(flag, options, n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see tricorn --help"
    return ConfigError(f"config: unknown option {flag} (on {COMMAND_LINE}){hint}")


def load_config(argv: list[str] | None = None) -> Config:
    """Parse ``argv`` (``sys.argv[1:]`` when None) and build the ``Config``.

    Precedence: defaults < the TOML file of ``--config`` < the flags given. Raises
    ``ConfigError`` with one line for any problem; ``--help``/``--version`` raise
    ``SystemExit(0)`` after printing.
    """
    parser = build_parser()
    namespace, extras = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if extras:
        raise _unknown_arguments(extras, parser)
    values: dict[str, Any] = {}
    for spec in field_specs().values():
        if spec.env is not None and spec.env in os.environ:
            source = f"the environment variable {spec.env}"
            values.update(validate_mapping({spec.name: os.environ[spec.env]}, source))
    path = getattr(namespace, "config", None)
    if path is not None:
        values.update(validate_mapping(config_from_toml(path), path))
    values.update(validate_mapping(_command_line_values(namespace), COMMAND_LINE))
    return Config(**values)
