"""``python -m runtime ...``: the local command line."""

import sys

from runtime.cli import main

sys.exit(main(sys.argv[1:]))
