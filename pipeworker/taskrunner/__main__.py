"""``python -m pipeworker.taskrunner``."""

import sys

from pipeworker.taskrunner._cli import main

sys.exit(main())
