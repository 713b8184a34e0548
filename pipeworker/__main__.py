"""``python -m pipeworker``: see :mod:`pipeworker.cli`."""

from pipeworker.cli import run_main

if __name__ == "__main__":
    run_main()
