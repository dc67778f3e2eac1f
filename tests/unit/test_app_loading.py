"""Loading ``module:attribute``: each kind of ASGI app, factories, and one-line errors."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.apps import kinds
from tricorn.errors import AppLoadError
from tricorn.server.app import ASGI2Adapter, as_asgi3, load_app
from tricorn.server.asgi_types import ASGI3App, Message, Scope

KINDS = "tests.unit.apps.kinds"


@pytest.fixture(autouse=True)
def keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def forget_modules() -> Iterator[list[str]]:
    """Names of modules a test imports from a temporary directory, forgotten afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def call(app: ASGI3App, scope_type: str = "http") -> list[Message]:
    """Run ``app`` once with a minimal scope and return what it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": scope_type}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return sent


def load_error(spec: str, **options: Any) -> AppLoadError:
    with pytest.raises(AppLoadError) as excinfo:
        load_app(spec, app_dir=None, **options)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f'app "{spec}": ')
    return excinfo.value


# --- the kinds of app -----------------------------------------------------------------


def test_an_asgi3_function_is_served_as_is() -> None:
    app = load_app(f"{KINDS}:asgi3_function", app_dir=None)
    assert app is kinds.asgi3_function
    assert call(app)[0]["name"] == "asgi3_function"


def test_an_instance_with_async_call_is_served_as_is() -> None:
    app = load_app(f"{KINDS}:asgi3_instance", app_dir=None)
    assert app is kinds.asgi3_instance


def test_a_class_of_asgi3_apps_is_instantiated_once() -> None:
    before = kinds.SimpleASGIApp.created
    app = load_app(f"{KINDS}:SimpleASGIApp", app_dir=None)
    assert isinstance(app, kinds.SimpleASGIApp)
    assert kinds.SimpleASGIApp.created == before + 1
    call(app)
    call(app)
    assert kinds.SimpleASGIApp.created == before + 1


def test_an_asgi2_function_is_wrapped() -> None:
    app = load_app(f"{KINDS}:asgi2_function", app_dir=None)
    assert isinstance(app, ASGI2Adapter)
    assert call(app, "lifespan") == [
        {"type": "app", "name": "asgi2_function", "scope_type": "lifespan"}
    ]


def test_an_asgi2_class_is_wrapped() -> None:
    app = load_app(f"{KINDS}:ASGI2Class", app_dir=None)
    assert isinstance(app, ASGI2Adapter)
    assert call(app) == [{"type": "app", "name": "asgi2_class", "scope_type": "http"}]


def test_a_partial_is_an_asgi3_app() -> None:
    app = load_app(f"{KINDS}:partial_app", app_dir=None)
    assert app is kinds.partial_app
    assert call(app)[0]["greeting"] == "hello"


def test_a_partial_of_an_asgi2_app_is_wrapped() -> None:
    assert isinstance(as_asgi3(functools.partial(kinds.asgi2_function)), ASGI2Adapter)


def test_a_sync_function_returning_an_awaitable_is_asgi3() -> None:
    app = load_app(f"{KINDS}:sync_wrapper", app_dir=None)
    assert app is kinds.sync_wrapper
    assert call(app)[0]["name"] == "asgi3_function"


def test_a_dotted_attribute_path_is_followed() -> None:
    assert load_app(f"{KINDS}:Routes.api.app", app_dir=None) is kinds.asgi3_function


def test_factory_option_calls_the_attribute() -> None:
    app = load_app(f"{KINDS}:create_app", factory=True, app_dir=None)
    assert app is kinds.asgi3_function


def test_a_call_in_the_spec_calls_the_factory() -> None:
    assert load_app(f"{KINDS}:create_app()", app_dir=None) is kinds.asgi3_function
    # with --factory as well, it is still called once
    assert load_app(f"{KINDS}:create_app()", factory=True, app_dir=None) is kinds.asgi3_function


def test_a_factory_call_may_pass_literal_arguments() -> None:
    app = load_app(f"{KINDS}:create_app_with('named', greeting='yo')", app_dir=None)
    assert call(app) == [{"type": "app", "name": "named", "greeting": "yo"}]


def test_app_dir_is_put_first_on_sys_path(tmp_path: Path, forget_modules: list[str]) -> None:
    (tmp_path / "tricorn_unit_app_dir_app.py").write_text(
        "async def app(scope, receive, send):\n    await send({'type': 'app', 'name': 'dir'})\n"
    )
    forget_modules.append("tricorn_unit_app_dir_app")
    app = load_app("tricorn_unit_app_dir_app:app", app_dir=str(tmp_path))
    assert sys.path[0] == str(tmp_path)
    assert call(app)[0]["name"] == "dir"
    load_app("tricorn_unit_app_dir_app:app", app_dir=str(tmp_path))
    assert sys.path.count(str(tmp_path)) == 1


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["myapp", "myapp:", ":app", "my-app:app", "myapp:a-b", "myapp:app(", "myapp:f(x)"]
)
def test_a_malformed_spec_is_one_line(spec: str) -> None:
    assert "expected" in str(load_error(spec))


def test_a_file_name_instead_of_a_module_gets_a_hint() -> None:
    assert "without '.py'" in str(load_error("myapp.py:app"))


def test_a_missing_module_is_named() -> None:
    error = load_error("tests.unit.apps.no_such_module:app")
    assert str(error).endswith("no module named 'tests.unit.apps.no_such_module'")
    assert error.__cause__ is None


def test_a_missing_package_is_named() -> None:
    error = load_error("tricorn_no_such_package.sub:app")
    assert str(error).endswith("no module named 'tricorn_no_such_package'")


def test_an_import_error_inside_the_app_module_keeps_its_cause() -> None:
    error = load_error("tests.unit.apps.broken_import:app")
    assert "error while importing module 'tests.unit.apps.broken_import': " in str(error)
    assert "ModuleNotFoundError: No module named 'tricorn_test_no_such_dependency'" in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_an_exception_while_importing_keeps_its_cause() -> None:
    error = load_error("tests.unit.apps.raises_on_import:app")
    assert str(error).endswith(
        "error while importing module 'tests.unit.apps.raises_on_import': "
        "RuntimeError: settings file missing"
    )
    assert isinstance(error.__cause__, RuntimeError)


def test_a_syntax_error_in_the_app_is_reported(tmp_path: Path, forget_modules: list[str]) -> None:
    (tmp_path / "tricorn_unit_syntax_error.py").write_text("def app(:\n")
    forget_modules.append("tricorn_unit_syntax_error")
    with pytest.raises(AppLoadError) as excinfo:
        load_app("tricorn_unit_syntax_error:app", app_dir=str(tmp_path))
    assert "SyntaxError" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, SyntaxError)


def test_a_missing_attribute_names_module_and_attribute_and_suggests() -> None:
    message = str(load_error(f"{KINDS}:asgi3_functon"))
    assert message.endswith(
        f"module {KINDS} has no attribute 'asgi3_functon'; did you mean 'asgi3_function'?"
    )


def test_a_missing_dotted_attribute_names_where_it_stopped() -> None:
    message = str(load_error(f"{KINDS}:Routes.apii.app"))
    assert message.endswith(f"{KINDS}:Routes has no attribute 'apii'; did you mean 'api'?")


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ("settings", "a dict object is not callable"),
        ("NotCallableInstances", "class NotCallableInstances has no __call__"),
        ("NeedsArguments", "class NeedsArguments makes ASGI apps but needs arguments"),
        ("async_two_arguments", "it is async but takes two arguments"),
        ("one_argument", "it is async but takes one argument"),
    ],
)
def test_an_object_that_is_no_app_is_one_line(attribute: str, reason: str) -> None:
    message = str(load_error(f"{KINDS}:{attribute}"))
    assert f"not an ASGI app: {reason}" in message


def test_a_failing_factory_is_reported_with_its_cause() -> None:
    error = load_error(f"{KINDS}:failing_factory", factory=True)
    assert str(error).endswith("the factory raised RuntimeError: database unreachable")
    assert isinstance(error.__cause__, RuntimeError)


def test_an_async_factory_is_refused() -> None:
    assert "the factory is async" in str(load_error(f"{KINDS}:async_factory()"))


def test_a_factory_that_is_not_callable_is_refused() -> None:
    assert "not callable" in str(load_error(f"{KINDS}:settings", factory=True))


def test_a_missing_app_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="no such directory"):
        load_app(f"{KINDS}:asgi3_function", app_dir=str(tmp_path / "missing"))
