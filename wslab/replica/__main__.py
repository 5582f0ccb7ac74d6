"""``python -m wslab.replica`` (see :mod:`wslab.challenge.replica`)."""

from wslab.challenge.replica import main

raise SystemExit(main())
