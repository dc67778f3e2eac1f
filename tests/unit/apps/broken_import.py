"""An app module whose own import fails: it imports a module that does not exist."""

from __future__ import annotations

import tricorn_test_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401

app = None
