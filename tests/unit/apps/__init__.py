"""Small app modules that ``tests/unit/test_app_loading.py`` loads by name."""
