"""``python -m specopt``: the same command line as ``specopt``."""

import sys

from .cli.main import main

sys.exit(main())
