"""``python -m formica.cli``: the same as the ``formica`` command."""

import sys

from formica.cli import main

sys.exit(main())
