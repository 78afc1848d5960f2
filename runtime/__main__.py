"""``python -m runtime ...``: the local command line."""

from runtime.cli import console

console()
