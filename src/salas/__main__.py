"""`python -m salas`: the same as the `salas` command."""

import sys

from salas.cli import main

if __name__ == "__main__":
    sys.exit(main())
