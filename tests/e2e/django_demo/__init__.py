"""The demo app the Django tests copy into a project made with ``django-admin startproject``
(and ``manage.py startapp demo``): views, URLs and a Channels consumer."""
