"""A minimal Django project in one module: settings, a view, the admin. Importing it
configures Django for this process and exposes ``application`` (``get_wsgi_application()``).
"""

from __future__ import annotations

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tricorn-tests-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()

from django.contrib import admin
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"Hello from Django at {request.path} ({request.get_host()})")


def _echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "length": len(request.body),
            "script_name": request.META["SCRIPT_NAME"],
            "path": request.path,
        }
    )


echo = csrf_exempt(_echo)

urlpatterns = [
    path("hello/", hello),
    path("echo/", echo),
    path("admin/", admin.site.urls),
]

application = get_wsgi_application()
