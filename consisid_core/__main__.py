"""`python -m consisid_core <command>`: generate, check-models, batch."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
