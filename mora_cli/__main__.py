"""``python -m mora_cli``: the same as the ``mora`` command."""

import sys

from .main import main

sys.exit(main())
