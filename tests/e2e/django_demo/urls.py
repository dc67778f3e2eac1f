"""URLs of the demo app (included at the project's root)."""

from __future__ import annotations

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from . import views

urlpatterns = [
    path("json", views.json_view),
    path("items/<int:item_id>", views.item),
    path("upload", csrf_exempt(views.upload)),
    path("stream", views.stream),
    path("sse", views.sse),
    path("sse-forever", views.sse_forever),
    path("sse-active", views.sse_active),
    path("version", views.version),
    path("browser", views.browser),
]
