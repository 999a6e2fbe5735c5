"""``python -m breccia`` — the same as the ``breccia`` command."""

import sys

from ._cli import main

sys.exit(main())
