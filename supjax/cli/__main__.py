"""``python -m supjax.cli``: the ``supjax`` command."""

import sys

from supjax.cli import main

sys.exit(main())
