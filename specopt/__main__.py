"""``python -m specopt``: the same command line as ``specopt``."""

import sys

from .cli import main

sys.exit(main())
