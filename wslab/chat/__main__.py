"""``python -m wslab.chat``: see :mod:`wslab.chat.cli`."""

import sys

from .cli import main

sys.exit(main())
