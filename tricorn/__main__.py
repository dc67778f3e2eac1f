"""``python -m tricorn``: the same as the ``tricorn`` command."""

from tricorn.cli import main

raise SystemExit(main())
