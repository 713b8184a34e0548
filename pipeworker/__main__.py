"""``python -m pipeworker``: see :mod:`pipeworker.cli`."""

import sys

from pipeworker.cli import main

if __name__ == "__main__":
    sys.exit(main())
