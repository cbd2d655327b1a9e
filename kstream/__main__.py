"""``python -m kstream`` runs the ``kstream`` command."""

import sys

from kstream.cli import main

sys.exit(main())
