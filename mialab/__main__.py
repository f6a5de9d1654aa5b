"""``python -m mialab`` runs the command line."""

import sys

try:  # importing torch takes seconds: a Ctrl-C then is an interrupt too, not a traceback
    from mialab.cli import main
except KeyboardInterrupt:
    print("mialab: interrupted while starting; nothing was run", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
