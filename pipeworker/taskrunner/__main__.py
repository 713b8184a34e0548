"""``python -m pipeworker.taskrunner``."""

from pipeworker.taskrunner._cli import console

if __name__ == "__main__":
    console()
