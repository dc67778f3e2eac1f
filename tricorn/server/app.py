"""Load the app named by ``module:attribute`` and present it as an ASGI 3 callable.

Accepted: an ASGI 3 function or object (``app(scope, receive, send)``), an ASGI 2 "double
callable" (``app(scope)`` returning ``instance(receive, send)``, a function or a class), a
class whose instances are ASGI 3 apps (created once, with no arguments), a WSGI app (PEP 3333:
a plain callable ``app(environ, start_response)``, such as a Flask app or Django's
``WSGIHandler``, served through ``tricorn.server.wsgi.WSGIAdapter``), and a factory that
returns any of these (``--factory``, or ``module:create_app()`` in the spec). The kind is
read from signatures, never by calling the app with a made-up scope; the ``interface``
setting forces it.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import os
import sys
from typing import Any, cast

from tricorn.config import Config, Interface
from tricorn.errors import AppLoadError
from tricorn.server.asgi_types import ASGI2App, ASGI3App, Receive, Scope, Send
from tricorn.server.wsgi import DEFAULT_MAX_THREADS, WSGIAdapter, WSGIApp

EXPECTED_SPEC = "expected 'module:attribute', e.g. 'myapp:app' or 'myapp:create_app()'"


class ASGI2Adapter:
    """Serves an ASGI 2 app (``app(scope)`` then ``instance(receive, send)``) as ASGI 3."""

    __slots__ = ("app",)

    def __init__(self, app: ASGI2App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)

    def __repr__(self) -> str:
        return f"ASGI2Adapter({self.app!r})"


class _Call:
    """The ``(...)`` of a ``module:factory(...)`` spec: literal arguments to call it with."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        self.args = args
        self.kwargs = kwargs


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def parse_spec(spec: str) -> tuple[str, str, _Call | None]:
    """Split ``module:attr.path`` or ``module:factory(literal, ...)``; AppLoadError if neither."""
    module_name, sep, rest = spec.strip().partition(":")
    if not sep or not _is_dotted(module_name) or not rest:
        hint = "; give the module name without '.py'" if module_name.endswith(".py") else ""
        raise AppLoadError(f'app "{spec}": {EXPECTED_SPEC}{hint}')
    if not rest.endswith(")"):
        if not _is_dotted(rest):
            raise AppLoadError(f'app "{spec}": {EXPECTED_SPEC}')
        return module_name, rest, None
    try:
        node = ast.parse(rest, mode="eval").body
        if not isinstance(node, ast.Call):
            raise ValueError("not a call")
        attribute = _dotted_name(node.func)
        if attribute is None or any(keyword.arg is None for keyword in node.keywords):
            raise ValueError("not a plain call")
        args = [ast.literal_eval(argument) for argument in node.args]
        kwargs = {str(keyword.arg): ast.literal_eval(keyword.value) for keyword in node.keywords}
    except (SyntaxError, ValueError, TypeError):
        raise AppLoadError(
            f'app "{spec}": expected a factory call with literal arguments, '
            "e.g. 'myapp:create_app()' or 'myapp:create_app(debug=True)'"
        ) from None
    return module_name, attribute, _Call(args, kwargs)


def _is_dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _put_first_on_path(app_dir: str) -> None:
    directory = os.path.abspath(app_dir)
    if not os.path.isdir(directory):
        raise AppLoadError(f'app_dir "{app_dir}": no such directory')
    if sys.path[:1] != [directory]:
        sys.path.insert(0, directory)


def _import(spec: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            # The module named in the spec (or one of its packages) does not exist.
            hint = "; give the module name without '.py'" if module_name.endswith(".py") else ""
            raise AppLoadError(f'app "{spec}": no module named {missing!r}{hint}') from None
        raise _import_failed(spec, module_name, error) from error
    except Exception as error:
        raise _import_failed(spec, module_name, error) from error


def _import_failed(spec: str, module_name: str, error: BaseException) -> AppLoadError:
    return AppLoadError(
        f'app "{spec}": error while importing module {module_name!r}: '
        f"{type(error).__name__}: {error}"
    )


def _resolve(spec: str, module: Any, module_name: str, attribute: str) -> Any:
    target = module
    walked: list[str] = []
    for part in attribute.split("."):
        found = getattr(target, part, _MISSING)
        if found is _MISSING:
            names = [name for name in dir(target) if not name.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            owner = f"{module_name}:{'.'.join(walked)}" if walked else f"module {module_name}"
            raise AppLoadError(f'app "{spec}": {owner} has no attribute {part!r}{hint}')
        target = found
        walked.append(part)
    return target


_MISSING = object()


def _call_factory(spec: str, factory: Any, call: _Call) -> Any:
    if not callable(factory):
        raise AppLoadError(
            f'app "{spec}": the factory is a {type(factory).__name__}, which is not callable'
        )
    try:
        app = factory(*call.args, **call.kwargs)
    except Exception as error:
        raise AppLoadError(
            f'app "{spec}": the factory raised {type(error).__name__}: {error}'
        ) from error
    if inspect.isawaitable(app):
        if inspect.iscoroutine(app):
            app.close()  # never awaited: close it so Python does not warn
        raise AppLoadError(
            f'app "{spec}": the factory is async; expected a plain function that returns the app'
        )
    return app


def _signature(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return None


def _accepts(signature: inspect.Signature | None, count: int) -> bool:
    """Whether a callable with ``signature`` can be called with ``count`` positional args."""
    if signature is None:
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _class_call(cls: type) -> Any:
    """The ``__call__`` defined by ``cls`` or its bases (not the metaclass's), or None."""
    for base in cls.__mro__:
        if base is not object and "__call__" in vars(base):
            return vars(base)["__call__"]
    return None


def _is_async_callable(target: Any) -> bool:
    if inspect.iscoroutinefunction(target):  # also sees through functools.partial
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - an object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _not_an_app(spec: str, reason: str) -> AppLoadError:
    return AppLoadError(
        f'app "{spec}": not an ASGI app: {reason}; expected an async callable '
        "(scope, receive, send), an ASGI 2 callable (scope), a class of such apps, "
        "or a WSGI callable (environ, start_response)"
    )


def _from_class(spec: str, cls: type, wsgi_max_threads: int) -> ASGI3App:
    call = _class_call(cls)
    init = _signature(cls)
    call_signature = None if call is None else _signature(call)
    if call is not None and _accepts(call_signature, 4):  # self, scope, receive, send
        if not _accepts(init, 0):
            raise _not_an_app(
                spec,
                f"class {cls.__name__} makes ASGI apps but needs arguments to be created "
                "(give an instance, or a factory with --factory)",
            )
        try:
            return cast(ASGI3App, cls())
        except Exception as error:
            raise AppLoadError(
                f'app "{spec}": creating {cls.__name__}() raised {type(error).__name__}: {error}'
            ) from error
    if call is not None and _accepts(init, 1) and _accepts(call_signature, 3):
        return ASGI2Adapter(cast(ASGI2App, cls))  # __init__(scope), __call__(receive, send)
    if hasattr(cls, "__await__") and _accepts(init, 3):
        return cast(ASGI3App, cls)  # cls(scope, receive, send) is awaitable
    if hasattr(cls, "__iter__") and _accepts(init, 2) and not _accepts(init, 3):
        # PEP 3333's AppClass: cls(environ, start_response) is the iterable response.
        return WSGIAdapter(cast(WSGIApp, cls), wsgi_max_threads)
    raise _not_an_app(spec, f"class {cls.__name__} has no __call__(scope, receive, send)")


def as_asgi3(
    app: Any,
    spec: str = "app",
    *,
    interface: Interface = "auto",
    wsgi_max_threads: int = DEFAULT_MAX_THREADS,
) -> ASGI3App:
    """``app`` as an ASGI 3 callable: as is, wrapped (ASGI 2, WSGI) or instantiated (a class).

    ``interface`` forces the kind ('asgi3', 'asgi2', 'wsgi'); 'auto' reads it from the
    signature. ``wsgi_max_threads`` bounds the worker threads of a WSGI app. An app already
    wrapped (``ASGI2Adapter``, ``WSGIAdapter``) is returned as is. ``spec`` names the app in
    the ``AppLoadError`` raised when it is no app.
    """
    if isinstance(app, ASGI2Adapter | WSGIAdapter):
        return app
    if not callable(app):
        raise _not_an_app(spec, f"a {type(app).__name__} object is not callable")
    if interface == "wsgi":
        return WSGIAdapter(cast(WSGIApp, app), wsgi_max_threads)
    if interface == "asgi2":
        return ASGI2Adapter(cast(ASGI2App, app))
    if inspect.isclass(app):
        return _from_class(spec, app, wsgi_max_threads)
    if interface == "asgi3":
        return cast(ASGI3App, app)
    signature = _signature(app)
    if _accepts(signature, 3):
        if signature is not None and _accepts(signature, 2) and not _is_async_callable(app):
            # A plain function taking any number of arguments (``*args``) is a generic
            # wrapper: like wsgiref's validator, those are WSGI middleware, not ASGI.
            return WSGIAdapter(cast(WSGIApp, app), wsgi_max_threads)
        return cast(ASGI3App, app)
    if _accepts(signature, 1):
        if _is_async_callable(app):
            raise _not_an_app(spec, "it is async but takes one argument")
        return ASGI2Adapter(cast(ASGI2App, app))
    if _accepts(signature, 2):
        if _is_async_callable(app):
            raise _not_an_app(spec, "it is async but takes two arguments")
        return WSGIAdapter(cast(WSGIApp, app), wsgi_max_threads)  # (environ, start_response)
    raise _not_an_app(spec, f"it cannot be called with (scope, receive, send): {signature}")


def load_app(
    spec: str,
    *,
    factory: bool = False,
    app_dir: str | None = ".",
    interface: Interface = "auto",
    wsgi_max_threads: int = DEFAULT_MAX_THREADS,
) -> ASGI3App:
    """Import the app named by ``spec`` and return it as an ASGI 3 callable.

    ``spec`` is ``module:attribute`` with a dotted attribute path, or
    ``module:factory(...)`` (literal arguments only) to call a factory. With ``factory``
    the attribute is called with no arguments. ``app_dir`` (when not None) is put first on
    ``sys.path`` before the import. ``interface`` and ``wsgi_max_threads`` are those of
    ``as_asgi3``.

    Raises ``AppLoadError`` with one line: for a malformed spec, a module that does not
    exist, a missing attribute, a factory that raised, or an object that is no ASGI app.
    An exception raised while importing the app's own module (including an ImportError of
    something it imports) is also an ``AppLoadError`` ("error while importing module ..."),
    chained to the original exception (``__cause__``) so its traceback can be shown.
    """
    module_name, attribute, call = parse_spec(spec)
    if app_dir is not None:
        _put_first_on_path(app_dir)
    module = _import(spec, module_name)
    app = _resolve(spec, module, module_name, attribute)
    if call is not None:
        app = _call_factory(spec, app, call)
    elif factory:
        app = _call_factory(spec, app, _Call([], {}))
    return as_asgi3(app, spec, interface=interface, wsgi_max_threads=wsgi_max_threads)


def load_configured_app(config: Config) -> ASGI3App:
    """The app ``config`` names (``app``, ``factory``, ``app_dir``, ``interface``,
    ``wsgi_max_threads``), or the built-in demo app when ``app`` is empty.

    Raises ``AppLoadError`` as ``load_app`` does.
    """
    if not config.app:
        from tricorn.server.demo import app

        return app
    return load_app(
        config.app,
        factory=config.factory,
        app_dir=config.app_dir,
        interface=config.interface,
        wsgi_max_threads=config.wsgi_max_threads,
    )
