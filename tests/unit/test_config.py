"""The settings: precedence, parsing, one-line errors, the help and the generated reference."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tests.helpers import restored_loggers
from tricorn.config import Config, setting
from tricorn.config.loader import (
    build_parser,
    check_config,
    config_from_mapping,
    config_from_toml,
    field_specs,
    load_config,
    parse_bind,
    show_value,
)
from tricorn.config.logging import ACCESS_LOG_SAMPLE, configure_logging
from tricorn.config.reference import render
from tricorn.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FIELDS = [item.name for item in dataclasses.fields(Config)]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(directory: Path, text: str) -> str:
    (directory / "tricorn.toml").write_text(text)
    return "tricorn.toml"


def one_line_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- precedence -----------------------------------------------------------------------


def test_no_flags_and_no_file_give_the_defaults() -> None:
    assert load_config([]) == Config()


def test_the_file_overrides_the_defaults(in_tmp: Path) -> None:
    path = write_toml(in_tmp, 'app = "m:app"\nkeep_alive_timeout = 7.5\naccess_log = false\n')
    config = load_config(["--config", path])
    assert config.app == "m:app"
    assert config.keep_alive_timeout == 7.5
    assert config.access_log is False
    assert config.backlog == Config().backlog


def test_flags_override_the_file_and_only_flags_given_do(in_tmp: Path) -> None:
    path = write_toml(
        in_tmp,
        'app = "m:app"\nbacklog = 10\naccess_log = false\nbind = ["0.0.0.0:1", "0.0.0.0:2"]\n',
    )
    config = load_config(["--config", path, "--backlog", "20", "other:app"])
    assert config.backlog == 20
    assert config.app == "other:app"
    assert config.access_log is False  # not given as a flag: the file's value stays
    assert config.bind == ["0.0.0.0:1", "0.0.0.0:2"]


def test_a_list_flag_replaces_the_file_list(in_tmp: Path) -> None:
    path = write_toml(in_tmp, 'bind = ["0.0.0.0:1", "0.0.0.0:2"]\n')
    config = load_config(["--config", path, "--bind", "127.0.0.1:3"])
    assert config.bind == ["127.0.0.1:3"]


def test_a_bool_flag_overrides_the_file_both_ways(in_tmp: Path) -> None:
    path = write_toml(in_tmp, "access_log = false\ndate_header = true\n")
    config = load_config(["--config", path, "--access-log", "--no-date-header"])
    assert config.access_log is True
    assert config.date_header is False


# --- parsing each type ----------------------------------------------------------------


def test_flags_of_every_type_are_parsed() -> None:
    config = load_config(
        [
            "myapp:app",
            "--factory",
            "--backlog",
            "100",
            "--keep-alive-timeout",
            "2.5",
            "--graceful-timeout",
            "3",
            "--backend",
            "asyncio",
            "--bind",
            "127.0.0.1:1",
            "--bind",
            "[::1]:2",
            "--bind",
            "unix:/tmp/tricorn.sock",
            "--bind",
            "fd://3",
            "--server-header",
            "",
        ]
    )
    assert config.app == "myapp:app"
    assert config.factory is True
    assert config.backlog == 100
    assert config.keep_alive_timeout == 2.5
    assert config.graceful_timeout == 3.0
    assert isinstance(config.graceful_timeout, float)
    assert config.backend == "asyncio"
    assert config.bind == ["127.0.0.1:1", "[::1]:2", "unix:/tmp/tricorn.sock", "fd://3"]
    assert config.server_header == ""


def test_toml_values_of_every_type_are_accepted() -> None:
    config = config_from_mapping(
        {
            "keep_alive_timeout": 10,  # an integer is a valid number
            "backlog": 5,
            "date_header": False,
            "log_level": "debug",
            "alpn_protocols": ["http/1.1"],
            "bind": "0.0.0.0:80",  # a single item may be given without brackets
        },
        "test",
    )
    assert config.keep_alive_timeout == 10.0
    assert isinstance(config.keep_alive_timeout, float)
    assert config.backlog == 5
    assert config.date_header is False
    assert config.log_level == "debug"
    assert config.alpn_protocols == ["http/1.1"]
    assert config.bind == ["0.0.0.0:80"]


def test_list_defaults_are_not_shared_between_configs() -> None:
    first = load_config([])
    first.bind.append("0.0.0.0:1")
    assert load_config([]).bind == ["127.0.0.1:8000"]


# --- errors: one line naming the key, the value and what was expected -----------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "keep_alive_timeout = -1",
            "config: keep_alive_timeout = -1 (from tricorn.toml): expected a number >= 0",
        ),
        (
            'keep_alive_timeout = "x"',
            'config: keep_alive_timeout = "x" (from tricorn.toml): expected a number >= 0',
        ),
        (
            'backlog = "two"',
            'config: backlog = "two" (from tricorn.toml): expected an integer >= 1',
        ),
        ("backlog = true", "config: backlog = true (from tricorn.toml): expected an integer"),
        ("backlog = 1.5", "config: backlog = 1.5 (from tricorn.toml): expected an integer"),
        ("bind = 5", "config: bind = 5 (from tricorn.toml): expected a list of strings"),
        (
            'alpn_protocols = ["h2", 2]',
            'config: alpn_protocols = ["h2", 2] (from tricorn.toml): expected a list of strings',
        ),
        ('access_log = "yes"', 'access_log = "yes" (from tricorn.toml): expected true or false'),
        ("app = 1", "config: app = 1 (from tricorn.toml): expected a string"),
        (
            'backend = "gevent"',
            'backend = "gevent" (from tricorn.toml): '
            'expected one of "auto", "trio", "asyncio", "uvloop"',
        ),
        (
            "h2_max_frame_size = 100",
            "h2_max_frame_size = 100 (from tricorn.toml): expected an integer between "
            "16384 and 16777215",
        ),
        ("keep_alive_timeout = nan", "expected a finite number"),
        ("keep_alive_timeout = inf", "expected a finite number"),
        (
            'bind = ["localhost"]',
            "bind = \"localhost\" (from tricorn.toml): expected 'HOST:PORT', '[V6]:PORT', "
            "'unix:PATH' or 'fd://N'",
        ),
        ('bind = ["::1:8000"]', "expected an IPv6 host in brackets"),
        ('bind = ["[nothex]:8000"]', "expected an IPv6 address inside the brackets"),
        ('bind = ["localhost:65536"]', "expected a port between 0 and 65535"),
        ('bind = ["localhost:http"]', 'bind = "localhost:http" (from tricorn.toml): expected'),
        ('bind = ["unix:"]', "expected 'unix:PATH' with a socket path"),
        ('bind = ["fd://x"]', "expected 'fd://N' with N a number"),
        (
            "kep_alive_timeout = 5",
            "config: kep_alive_timeout = 5 (from tricorn.toml): unknown key; "
            "did you mean keep_alive_timeout?",
        ),
        ("keep-alive-timeout = 5", "unknown key; did you mean keep_alive_timeout?"),
        ("zzz = 5", "config: zzz = 5 (from tricorn.toml): unknown key; see tricorn --help"),
        ("[server]\nbacklog = 5", "config: server = {backlog = 5} (from tricorn.toml)"),
        (
            'access_log_format = "{client} {nope}"',
            'access_log_format = "{client} {nope}" (from tricorn.toml): expected a str.format '
            "template using only the fields time, client, method",
        ),
        ('access_log_format = "{status:q}"', "expected a valid str.format template"),
        ('access_log_format = "{"', "expected a valid str.format template"),
        ('access_log_format = "{0}"', "expected a valid str.format template"),
    ],
)
def test_a_bad_file_value_is_one_line_naming_key_value_and_expectation(
    in_tmp: Path, toml: str, expected: str
) -> None:
    path = write_toml(in_tmp, toml + "\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(["--config", path])
    assert expected in one_line_error(excinfo)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--backlog", "two"],
            'config: backlog = "two" (from the command line): expected an integer >= 1',
        ),
        (
            ["--keep-alive-timeout", "-1"],
            "config: keep_alive_timeout = -1 (from the command line): expected a number >= 0",
        ),
        (["--keep-alive-timeout", "soon"], 'keep_alive_timeout = "soon"'),
        (["--backend", "gevent"], 'backend = "gevent" (from the command line): expected one of'),
        (["--bind", "localhost"], 'bind = "localhost" (from the command line): expected'),
        (["--access-log-format", "{nope}"], "unknown field 'nope'"),
        (
            ["--keep-alive-timout", "3"],
            "unknown option --keep-alive-timout (on the command line); "
            "did you mean --keep-alive-timeout?",
        ),
        (["--bind"], "argument --bind: expected one argument"),
        (["a:app", "b:app"], "unexpected argument 'b:app'"),
        (["--config", "no/such/file.toml"], 'config: --config "no/such/file.toml": no such file'),
    ],
)
def test_a_bad_flag_is_one_line(argv: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(argv)
    assert expected in one_line_error(excinfo)


def test_toml_syntax_error_is_one_line(in_tmp: Path) -> None:
    path = write_toml(in_tmp, "backlog = = 5\n")
    with pytest.raises(ConfigError) as excinfo:
        config_from_toml(path)
    assert "config: tricorn.toml: not valid TOML" in one_line_error(excinfo)
    assert "line 1" in str(excinfo.value)


def test_a_directory_as_config_file_is_one_line(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        config_from_toml(str(in_tmp))
    assert "cannot read it" in one_line_error(excinfo)


def test_a_file_that_is_not_utf8_is_one_line(in_tmp: Path) -> None:
    (in_tmp / "bad.toml").write_bytes(b'app = "\xff"\n')
    with pytest.raises(ConfigError) as excinfo:
        config_from_toml("bad.toml")
    assert "not valid TOML" in one_line_error(excinfo)


def test_a_config_built_in_code_can_be_checked() -> None:
    check_config(Config(bind=["[::1]:0", "unix:/tmp/s"], keep_alive_timeout=0))
    with pytest.raises(ConfigError) as excinfo:
        check_config(Config(backlog=0))
    assert one_line_error(excinfo) == (
        "config: backlog = 0 (from Config(...)): expected an integer >= 1"
    )


# --- binds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:443", ("::1", 443)),
        ("[::]:65535", ("::", 65535)),
        ("example.com:80", ("example.com", 80)),
    ],
)
def test_parse_bind_splits_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_bind(value) == expected


@pytest.mark.parametrize(
    "value", ["localhost", ":80", "host:", "::1:80", "[::1]", "[zz]:80", "h:99999", "unix:/x"]
)
def test_parse_bind_rejects_what_is_no_tcp_address(value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_bind(value)
    assert one_line_error(excinfo).startswith(f"config: bind = {show_value(value)}: expected")


# --- the fields drive everything ------------------------------------------------------


def test_every_field_is_understood_by_the_loader() -> None:
    specs = field_specs()
    assert list(specs) == FIELDS
    for name, spec in specs.items():
        assert spec.help, f"{name} has no help"
        default = getattr(Config(), name)
        assert config_from_mapping({name: default}, "test") == Config()


@dataclass(slots=True)
class _Extra:
    limit: int | None = setting(None, "An optional limit.", minimum=0, group="extra")
    ratios: list[float] = setting([0.5], "Some ratios.", group="extra")  # noqa: RUF009
    mode: Literal["fast", "slow"] = setting("fast", "A mode.", group="extra")


def test_field_specs_follow_the_annotations_of_any_config_dataclass() -> None:
    specs = field_specs(_Extra)
    assert specs["limit"].optional
    assert specs["limit"].base is int
    assert specs["limit"].expected() == "an integer >= 0"
    assert specs["ratios"].is_list
    assert specs["ratios"].base is float
    assert specs["ratios"].expected() == "a list of numbers"
    assert specs["mode"].choices == ("fast", "slow")
    assert specs["mode"].expected() == 'one of "fast", "slow"'
    assert specs["mode"].group == "extra"


# --- help and reference ---------------------------------------------------------------


def test_help_lists_every_setting_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    text = build_parser().format_help()
    for spec in field_specs().values():
        name = "APP" if spec.name == "app" else spec.flag
        lines = text.splitlines()
        found = [i for i, line in enumerate(lines) if line.strip().startswith(name)]
        assert found, f"{name} missing from --help"
        # A long flag has its help on the next line.
        entry = " ".join(lines[found[0] : found[0] + 2])
        assert "(default: " in entry, f"{name} shows no default"
    assert "(default: 5.0)" in text
    assert "(default: 127.0.0.1:8000)" in text
    assert "--access-log, --no-access-log" in text
    assert "--backend {auto,trio,asyncio,uvloop}" in text
    assert "--config FILE" in text
    assert "--version" in text


def test_help_groups_the_settings() -> None:
    text = build_parser().format_help()
    for title in ("application:", "binding and running:", "limits and timeouts:", "logging:"):
        assert f"\n{title}\n" in text


def test_reference_covers_every_setting() -> None:
    page = render()
    for spec in field_specs().values():
        assert f"`{spec.name}`" in page
        assert spec.help.replace("|", "\\|") in page
    assert "| `keep_alive_timeout`<br>`--keep-alive-timeout` | number, ≥ 0 | `5.0` |" in page
    assert "## Application" in page


def test_the_committed_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), "run: python -m tricorn.config.reference > docs/configuration.md"


# --- logging --------------------------------------------------------------------------


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    with restored_loggers():
        yield


@pytest.mark.usefixtures("restore_loggers")
def test_error_log_goes_to_stderr_like_uvicorn(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    configure_logging(Config())  # idempotent: no second handler
    logging.getLogger("tricorn.error").info("Started")
    logging.getLogger("tricorn.error").warning("Careful")
    logging.getLogger("tricorn.error").debug("hidden at info level")
    captured = capsys.readouterr()
    assert captured.err == "INFO:     Started\nWARNING:  Careful\n"
    assert captured.out == ""


@pytest.mark.usefixtures("restore_loggers")
def test_access_log_goes_to_stdout_unless_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config())
    logging.getLogger("tricorn.access").info("GET / 200")
    assert capsys.readouterr().out == "GET / 200\n"
    configure_logging(Config(access_log=False))
    logging.getLogger("tricorn.access").info("GET / 200")
    assert capsys.readouterr().out == ""
    assert len(logging.getLogger("tricorn.access").handlers) == 1


@pytest.mark.usefixtures("restore_loggers")
def test_log_level_comes_from_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_level="debug"))
    logging.getLogger("tricorn.error").debug("details")
    assert capsys.readouterr().err == "DEBUG:    details\n"
    configure_logging(Config(log_level="error"))
    logging.getLogger("tricorn.error").warning("not shown")
    assert capsys.readouterr().err == ""


def test_the_default_access_log_format_formats_the_sample() -> None:
    line = Config().access_log_format.format_map(ACCESS_LOG_SAMPLE)
    assert line == '127.0.0.1:51000 - "GET /index.html?page=2 HTTP/1.1" 200 1024 1.5ms ok'


def test_reopening_log_files_follows_a_moved_file_and_never_truncates(tmp_path: Path) -> None:
    """SIGUSR1's work: a moved file gets a new one of its name; a file in "w" mode that was
    not moved is reopened for appending, its lines kept; stream handlers are left alone."""
    from tricorn.config.logging import reopen_log_files

    logger = logging.getLogger("tricorn.test.reopen")
    moved, kept = tmp_path / "moved.log", tmp_path / "kept.log"
    handlers: list[logging.Handler] = [
        logging.FileHandler(moved),
        logging.FileHandler(kept, mode="w"),
        logging.StreamHandler(),
    ]
    for handler in handlers:
        logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("one")
        moved.rename(tmp_path / "moved.log.1")
        assert reopen_log_files() == []
        logger.warning("two")
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
    assert (tmp_path / "moved.log.1").read_text() == "one\n"
    assert moved.read_text() == "two\n"
    assert kept.read_text() == "one\ntwo\n"


# --- the PROXY protocol ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--proxy-protocol", "v3"], 'proxy_protocol = "v3" (from the command line): expected one'),
        (
            ["--proxy-protocol-allow-ips", "127.0.0.1,10.0.0.0/33"],
            'proxy_protocol_allow_ips = "127.0.0.1,10.0.0.0/33" (from the command line): '
            "expected addresses, CIDR networks, 'unix' or '*' ('10.0.0.0/33' is none)",
        ),
        (["--proxy-protocol-allow-ips", "localhost"], "'localhost' is none"),
        (["--proxy-protocol-v2-max-size", "100"], "expected an integer between 232 and 65551"),
    ],
)
def test_bad_proxy_protocol_settings_are_one_line(argv: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(argv)
    assert expected in one_line_error(excinfo)


def test_proxy_protocol_settings_from_flags_and_file(in_tmp: Path) -> None:
    path = write_toml(
        in_tmp, 'proxy_protocol = "v2"\nproxy_protocol_allow_ips = "10.0.0.0/8, unix"\n'
    )
    config = load_config(["--config", path, "--proxy-protocol-v2-max-size", "65551"])
    assert config.proxy_protocol == "v2"
    assert config.proxy_protocol_allow_ips == ["10.0.0.0/8, unix"]
    assert config.proxy_protocol_v2_max_size == 65551
    assert Config().proxy_protocol == "off"


@pytest.mark.parametrize("setting", ["forwarded_allow_ips", "proxy_protocol_allow_ips"])
@pytest.mark.parametrize(
    "entry",
    [
        "127.0.0.1",
        "::1",
        "[::1]",
        "10.0.0.0/8",
        "fd00::/8",
        "unix",
        "UNIX",
        "*",
        " , ",
        "",
        "10.0.0.0/33",
        "localhost",
        "1.2.3.4.5",
        "[::1",
        "::1/129",
        "unix:/run/x",
        "10.0.0.1/8",
        "bogus",
        "1.2.3",
        "::g",
        " 127.0.0.1 ",
        "[10.0.0.0/8]",
    ],
)
def test_the_loader_accepts_the_trust_lists_trusted_peers_accepts(entry: str, setting: str) -> None:
    """Both trust lists are checked by the loader with the entries ``TrustedPeers`` takes."""
    from tricorn.server.trust import TrustedPeers  # the one matcher; config may not import it

    try:
        TrustedPeers.parse([entry])
        parses = True
    except ValueError:
        parses = False
    try:
        if setting == "forwarded_allow_ips":
            check_config(Config(forwarded_allow_ips=[entry]))
        else:
            check_config(Config(proxy_protocol_allow_ips=[entry]))
        checks = True
    except ConfigError:
        checks = False
    assert checks == parses
