"""``python -m wslab.challenge`` (see :mod:`wslab.challenge.cli`)."""

from .cli import main

raise SystemExit(main())
