"""``python -m amls2`` runs the command-line interface."""

import sys

from amls2.cli import main

sys.exit(main())
