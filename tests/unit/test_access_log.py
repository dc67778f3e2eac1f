"""Access log lines and logging configuration, without sockets.

The fields of a line (path without the query, target as sent, IPv6 clients in brackets,
X-Request-ID, the outcome, WebSocket fields), the text and JSON renderings, template
checks over every kind of line, ``log_config`` files (JSON, TOML, YAML; missing, invalid,
applied).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import restored_loggers
from tricorn.config import Config
from tricorn.config.loader import field_specs, load_config
from tricorn.config.logging import (
    ACCESS_LOG_FIELDS,
    ACCESS_LOG_OTHER_SAMPLES,
    ACCESS_LOG_SAMPLE,
    access_log_format_problem,
    configure_logging,
    read_log_config,
)
from tricorn.errors import ConfigError
from tricorn.server.access_log import AccessLogger, format_client
from tricorn.server.asgi_types import Scope


def http_scope(**changes: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "root_path": "",
        "headers": [(b"host", b"h"), (b"user-agent", b"curl/8"), (b"x-request-id", b"abc-1")],
        "client": ("127.0.0.1", 51000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(changes)
    return scope


def ws_scope(**changes: Any) -> Scope:
    scope = http_scope(type="websocket", path="/chat", raw_path=b"/chat", query_string=b"")
    del scope["method"]
    scope.update(changes)
    return scope


DEFAULT = Config()


def logger(**settings: Any) -> AccessLogger:
    config = Config(**settings)
    return AccessLogger(
        config.access_log_format, config.ws_access_log_format, json=config.access_log_json
    )


# --- fields --------------------------------------------------------------------------------


def test_path_has_no_query_and_target_is_as_sent() -> None:
    fields = logger().fields(
        http_scope(), target=b"/a%20b?x=1", status=200, size=5, duration=0.0015
    )
    assert fields["path"] == "/a b"
    assert fields["target"] == "/a%20b?x=1"
    assert fields["query"] == "x=1"
    assert fields["duration_ms"] == 1.5
    assert fields["protocol"] == "HTTP/1.1"
    assert fields["outcome"] == "ok"


def test_the_default_line_keeps_the_query_once() -> None:
    line = logger().render(
        logger().fields(http_scope(), target=b"/a%20b?x=1", status=200, size=5, duration=0.002)
    )
    assert line == '127.0.0.1:51000 - "GET /a%20b?x=1 HTTP/1.1" 200 5 2.0ms ok'


@pytest.mark.parametrize(
    ("client", "shown"),
    [
        (("127.0.0.1", 51000), "127.0.0.1:51000"),
        (("::1", 56924), "[::1]:56924"),
        (("2001:db8::7", 443), "[2001:db8::7]:443"),
        (None, None),  # a unix socket peer: ASGI gives no client
    ],
)
def test_clients_ipv6_in_brackets(client: Any, shown: str | None) -> None:
    assert format_client(client) == shown
    line = AccessLogger("{client}").render(
        AccessLogger("{client}").fields(
            http_scope(client=client), target=b"/", status=200, size=0, duration=0
        )
    )
    assert line == (shown or "-")


def test_request_id_is_passed_through_and_dash_when_absent() -> None:
    access = AccessLogger("{request_id}")
    with_id = access.fields(http_scope(), target=b"/", status=200, size=0, duration=0)
    assert with_id["request_id"] == "abc-1"
    without = access.fields(http_scope(headers=[]), target=b"/", status=200, size=0, duration=0)
    assert without["request_id"] is None
    assert access.render(without) == "-"
    assert access.render(with_id) == "abc-1"


def test_client_values_are_escaped_in_text_lines() -> None:
    scope = http_scope(
        path="/x\nINFO: forged",
        headers=[(b"user-agent", b'a "quoted" \\ agent'), (b"referer", b"\x1b[31mred")],
    )
    access = AccessLogger("{path}|{user_agent}|{referer}")
    line = access.render(access.fields(scope, target=b"/x%0A", status=200, size=0, duration=0))
    assert line == "/x\\x0aINFO: forged|a \\x22quoted\\x22 \\x5c agent|\\x1b[31mred"
    assert "\n" not in line


def test_websocket_fields_and_default_line() -> None:
    access = logger()
    fields = access.fields(
        ws_scope(client=("::1", 40000)),
        target=b"/chat",
        method="GET",
        status=101,
        size=120,
        duration=2.0,
        close_code=1000,
        messages_in=3,
        messages_out=4,
    )
    assert fields["protocol"] == "WS/1.1"
    assert access.render(fields, "websocket") == (
        '[::1]:40000 - "GET /chat WS/1.1" 101 120 2000.0ms ok close=1000 messages=3/4'
    )
    h2 = access.fields(
        ws_scope(http_version="2"),
        target=b"/chat",
        method="CONNECT",
        status=200,
        size=0,
        duration=0,
    )
    assert (h2["protocol"], h2["method"]) == ("WS/2", "CONNECT")


def test_json_lines_are_typed_with_nulls_for_absent_values() -> None:
    access = logger(access_log_json=True)
    fields = access.fields(
        http_scope(headers=[]),
        target=b"/a%20b?x=1",
        status=200,
        size=5,
        duration=0.25,
        outcome="client_gone",
    )
    line = json.loads(access.render(fields))
    assert list(line) == list(ACCESS_LOG_FIELDS)
    assert line["status"] == 200 and line["bytes"] == 5
    assert line["duration_ms"] == 250.0 and isinstance(line["duration_ms"], float)
    assert line["user_agent"] is None and line["request_id"] is None
    assert line["close_code"] is None
    assert line["outcome"] == "client_gone"
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_json_escapes_what_text_lines_escape() -> None:
    access = logger(access_log_json=True)
    fields = access.fields(
        http_scope(path='/"\n'), target=b"/%22%0A", status=200, size=0, duration=0
    )
    text = access.render(fields)
    assert "\n" not in text
    assert json.loads(text)["path"] == '/"\n'


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_a_rejected_line_shows_what_could_be_read(
    caplog: pytest.LogCaptureFixture, json_lines: bool
) -> None:
    access = logger(access_log_json=json_lines)
    with caplog.at_level(logging.INFO, logger="tricorn.access"):
        for method, target in ((None, None), ('G"T', "/p?q=1")):
            access.log_rejected(
                client=("::1", 5),
                protocol="HTTP/1.1",
                method=method,
                target=target,
                status=400,
                size=11,
                duration=0.0,
            )
    unread, read = (record.access for record in caplog.records)  # type: ignore[attr-defined]
    assert (unread["method"], unread["path"], unread["target"]) == (None, None, None)
    assert (read["path"], read["query"], read["outcome"]) == ("/p", "q=1", "rejected")
    texts = [record.getMessage() for record in caplog.records]
    if json_lines:
        assert json.loads(texts[0])["target"] is None
        assert json.loads(texts[1])["method"] == 'G"T'
    else:
        assert texts[0] == '[::1]:5 - "- - HTTP/1.1" 400 11 0.0ms rejected'
        assert texts[1].startswith('[::1]:5 - "G\\x22T /p?q=1 HTTP/1.1" 400 ')  # escaped


def test_the_time_is_read_only_when_a_line_shows_it() -> None:
    without = AccessLogger("{path}").fields(
        http_scope(), target=b"/", status=200, size=0, duration=0
    )
    assert without["time"] is None
    shown = AccessLogger("{time} {path}").fields(
        http_scope(), target=b"/", status=200, size=0, duration=0
    )
    assert shown["time"] is not None and shown["time"].endswith("Z")


# --- the sample, the help, the template checks ---------------------------------------------


def test_the_sample_lists_every_field_the_server_writes() -> None:
    written = AccessLogger("{path}").fields(
        http_scope(), target=b"/", status=200, size=0, duration=0
    )
    assert list(ACCESS_LOG_SAMPLE) == list(written) == list(ACCESS_LOG_FIELDS)
    for sample in ACCESS_LOG_OTHER_SAMPLES:
        assert list(sample) == list(ACCESS_LOG_SAMPLE)


def test_the_help_of_the_format_lists_every_field() -> None:
    help_text = field_specs()["access_log_format"].help
    for name in ACCESS_LOG_SAMPLE:
        assert name in help_text, name


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{close_code:d}", "close_code may be -"),  # HTTP lines have no close code
        ("{nope}", "unknown field 'nope'"),
        ("{status:q}", "a valid str.format template"),
    ],
)
def test_templates_must_format_every_kind_of_line(template: str, problem: str) -> None:
    found = access_log_format_problem(template)
    assert found is not None and problem in found


def test_the_default_templates_are_valid() -> None:
    assert access_log_format_problem(DEFAULT.access_log_format) is None
    assert access_log_format_problem(DEFAULT.ws_access_log_format) is None


def test_a_bad_ws_template_is_refused_at_load_time() -> None:
    with pytest.raises(ConfigError, match="ws_access_log_format"):
        load_config(["--ws-access-log-format", "{what}"])


# --- log_config ----------------------------------------------------------------------------

DICT_CONFIG: dict[str, Any] = {
    "version": 1,
    "formatters": {"bare": {"format": "A %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": "", "formatter": "bare"}},
    "loggers": {"tricorn.access": {"handlers": ["file"], "propagate": False}},
}


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    with restored_loggers("tests.some.app"):
        yield


def _write(path: Path, settings: dict[str, Any]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(settings))
    elif path.suffix == ".toml":
        file_name = settings["handlers"]["file"]["filename"]
        path.write_text(
            "version = 1\n"
            '[formatters.bare]\nformat = "A %(message)s"\n'
            f'[handlers.file]\nclass = "logging.FileHandler"\nfilename = "{file_name}"\n'
            'formatter = "bare"\n'
            '[loggers."tricorn.access"]\nhandlers = ["file"]\npropagate = false\n'
        )
    else:
        yaml = pytest.importorskip("yaml")
        path.write_text(yaml.safe_dump(settings))
    return path


@pytest.mark.parametrize("suffix", [".json", ".toml", ".yaml"])
@pytest.mark.usefixtures("restore_loggers")
def test_log_config_redefines_the_access_logger(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "access.log"
    settings = json.loads(json.dumps(DICT_CONFIG))
    settings["handlers"]["file"]["filename"] = str(target)
    path = _write(tmp_path / f"logging{suffix}", settings)
    assert read_log_config(str(path))["version"] == 1
    configure_logging(Config(log_config=str(path)))
    logging.getLogger("tricorn.access").info("GET / 200")
    logging.getLogger("tricorn.error").info("still on stderr")
    for handler in logging.getLogger("tricorn.access").handlers:
        handler.flush()
    assert target.read_text() == "A GET / 200\n"
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "INFO:     still on stderr\n"  # the defaults stay where not redefined


@pytest.mark.usefixtures("restore_loggers")
def test_log_config_does_not_disable_loggers_it_does_not_name(tmp_path: Path) -> None:
    app_logger = logging.getLogger("tests.some.app")
    path = tmp_path / "root.json"
    path.write_text(json.dumps({"version": 1, "root": {"level": "WARNING"}}))
    configure_logging(Config(log_config=str(path)))
    assert not app_logger.disabled
    assert not logging.getLogger("tricorn.error").disabled


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.json", None, "(no such file)"),
        ("bad.json", "{not json", "(not valid JSON: "),
        ("bad.toml", "version = ", "(not valid TOML: "),
        ("list.json", "[1, 2]", "(not a mapping of dictConfig keys"),
        ("noversion.json", '{"loggers": {}}', "(no version = 1 key"),
        ("logging.ini", "[loggers]\nkeys=root\n", "(a name ending in .json, .toml, .yaml or .yml"),
    ],
)
def test_a_bad_log_config_is_one_line_at_load_time(
    tmp_path: Path, name: str, content: str | None, problem: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        load_config(["--log-config", str(path)])
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"config: log_config = {json.dumps(str(path))} (from the command")
    assert "expected a logging dictConfig file " + problem in message


@pytest.mark.usefixtures("restore_loggers")
def test_a_log_config_that_cannot_be_applied_is_one_line(tmp_path: Path) -> None:
    settings = json.loads(json.dumps(DICT_CONFIG))
    settings["handlers"]["file"]["filename"] = str(tmp_path / "no" / "such" / "dir.log")
    path = _write(tmp_path / "unapplicable.json", settings)
    load_config(["--log-config", str(path)])  # it reads fine
    with pytest.raises(ConfigError) as excinfo:
        configure_logging(Config(log_config=str(path)))
    message = str(excinfo.value)
    assert "\n" not in message
    assert "cannot apply it: Unable to configure handler 'file'" in message
    assert "No such file or directory" in message


def test_the_log_config_setting_travels_to_workers() -> None:
    from tricorn.process.worker import config_from_json, config_to_json

    config = Config(log_config="/etc/tricorn/logging.json", access_log_json=True)
    again = config_from_json(config_to_json(config))
    assert (again.log_config, again.access_log_json) == (config.log_config, True)
    assert again.ws_access_log_format == config.ws_access_log_format


@pytest.mark.usefixtures("restore_loggers")
def test_the_deployment_guide_example_applies(tmp_path: Path) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    start = guide.index("# /etc/tricorn/logging.toml")
    example = guide[start : guide.index("```", start)]
    target = tmp_path / "access.log"
    path = tmp_path / "logging.toml"
    path.write_text(example.replace("/var/log/tricorn/access.log", str(target)))
    configure_logging(Config(log_config=str(path)))
    logging.getLogger("tricorn.access").info("GET / 200")
    assert target.read_text().endswith(" GET / 200\n")


@pytest.mark.usefixtures("restore_loggers")
def test_the_default_error_formatter_can_be_named_in_a_log_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logging.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"tricorn": {"()": "tricorn.config.logging.LevelPrefixFormatter"}},
                "handlers": {
                    "out": {
                        "class": "logging.StreamHandler",
                        "formatter": "tricorn",
                        "stream": "ext://sys.stdout",
                    }
                },
                "loggers": {"tricorn.error": {"handlers": ["out"], "propagate": False}},
            }
        )
    )
    configure_logging(Config(log_config=str(path)))
    logging.getLogger("tricorn.error").warning("to stdout now")
    assert capsys.readouterr().out == "WARNING:  to stdout now\n"


def test_a_yaml_log_config_without_pyyaml_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "logging.yaml"
    path.write_text("version: 1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    with pytest.raises(ConfigError, match=r"needs PyYAML \(pip install 'tricorn\[yaml\]'\)"):
        read_log_config(str(path))
