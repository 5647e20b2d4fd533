"""``python -m fallover``: the same as the ``fallover`` command."""

import sys

from ._cli import main

sys.exit(main())
