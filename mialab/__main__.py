"""``python -m mialab`` runs the command line."""

import sys

from mialab.cli import main

sys.exit(main())
