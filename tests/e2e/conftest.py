"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.apps.common import BROWSER_PAGE
from tests.e2e.clients import upload_payload

SUPERUSER, PASSWORD = "admin", "e2e-Secret-pw-42"


@pytest.fixture(scope="session")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 20 MiB upload payload as a file named big.bin (for curl -F)."""
    path = tmp_path_factory.mktemp("upload") / "big.bin"
    path.write_bytes(upload_payload())
    return path


SETTINGS_TAIL = """

# --- added by tests/e2e/test_django.py, as a user would ---
INSTALLED_APPS += ["channels", "demo"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STATIC_ROOT = BASE_DIR / "staticfiles"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
"""

URLS = """from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("demo.urls")),
]
"""

CHANNELS_ASGI = """import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from demo.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
"""


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Django project made with django-admin, as its tutorial does; the project folder."""
    base = tmp_path_factory.mktemp("django")
    django_admin = str(Path(sys.executable).parent / "django-admin")
    _run(django_admin, "startproject", "mysite", cwd=base)
    root = base / "mysite"
    manage = [sys.executable, "manage.py"]
    _run(*manage, "startapp", "demo", cwd=root)
    source = Path(__file__).resolve().parent / "django_demo"
    for name in ("views.py", "urls.py", "consumers.py", "routing.py"):
        shutil.copy(source / name, root / "demo" / name)
    (root / "demo" / "browser.html").write_text(BROWSER_PAGE)
    with open(root / "mysite" / "settings.py", "a") as settings:
        settings.write(SETTINGS_TAIL)
    (root / "mysite" / "urls.py").write_text(URLS)
    (root / "mysite" / "channels_asgi.py").write_text(CHANNELS_ASGI)
    _run(*manage, "migrate", "--noinput", cwd=root)
    _run(
        *manage,
        "createsuperuser",
        "--noinput",
        "--username",
        SUPERUSER,
        "--email",
        "admin@example.com",
        cwd=root,
        env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    _run(*manage, "collectstatic", "--noinput", cwd=root)
    return root
