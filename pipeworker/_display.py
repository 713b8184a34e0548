"""What ``--local`` shows: live progress, the log lines and the closing summary, on one screen.

On a terminal, with ``rich`` installed (the ``local`` extra: ``pip install -e '.[local]'``), one
live display owns the terminal: a bar per activity state under the log lines, which a
``RichHandler`` prints above it
(log handlers writing to that terminal are swapped for it while the display runs, so the two never
glue together). Piped, or on a terminal without ``rich``, every change is a plain line (CI logs,
``| tee``); the summary is then a plain table. ``rich`` is imported only on the first path.

The summary's seconds come from the worker itself (:class:`ActivityClock`, an observer timing each
attempt on the monotonic clock), since the service's timestamps are whole seconds; its rows come in
the order the activities started.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from typing import IO, Any

from pipeworker._events import Observer
from pipeworker._logging import TextFormatter
from pipeworker.services._dptask import ReceivedAttempt, Ref
from pipeworker.services.base import Outcome
from pipeworker.task import BaseTask

__all__ = [
    "TERMINAL",
    "WAITING",
    "ActivityClock",
    "Display",
    "Row",
    "counts",
    "keep_running_banner",
    "open_display",
]

TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED", "CASCADE_FAILED", "TIMEDOUT"})
WAITING = frozenset({"WAITING_ON_DEPENDENCIES", "WAITING_FOR_RUNNER", "PENDING", "SCHEDULED"})
STATES = ("waiting", "running", "finished", "failed")
REFRESH_PER_SECOND = 5
"""The live display's redraws while the pipeline runs; none once it is done."""
INSTALL_HINT = "(a live display needs rich: pip install 'rich>=13'; showing plain lines instead)"


@dataclasses.dataclass
class Row:
    """One activity instance, as QueryObjects/DescribeObjects show it."""

    id: str
    name: str
    status: str
    started: str = ""
    ended: str = ""
    error: str = ""
    worker_group: str = ""
    runs_on: str = ""


def state(status: str) -> str:
    """The display's state of a Data Pipeline ``@status``: waiting, running, finished, failed."""
    if status == "FINISHED":
        return "finished"
    if status in TERMINAL:
        return "failed"
    if status in WAITING:
        return "waiting"
    return "running"


def counts(rows: Sequence[Row]) -> dict[str, int]:
    """How many rows are in each of :data:`STATES`."""
    result = dict.fromkeys(STATES, 0)
    for row in rows:
        result[state(row.status)] += 1
    return result


class ActivityClock(Observer):
    """Times every activity instance the worker runs, by its attempts' start and end.

    An instance's seconds run from its first attempt's start to its last attempt's end, on the
    monotonic clock of this process (the service's ``@actualStartTime`` has whole seconds).
    """

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    @staticmethod
    def _instance(task: BaseTask) -> str:
        # --local runs Data Pipeline: its tasks know their attempt and instance.
        received = task._received
        if not isinstance(received, ReceivedAttempt):
            return task.id
        parent = received.objects.get(received.attempt_id, {}).get("@instanceParent")
        if isinstance(parent, Ref):
            return parent.id
        return received.attempt_id.rsplit("_Attempt=", 1)[0]

    def task_started(self, task: BaseTask) -> None:
        """Note the first start of the task's instance."""
        self.started.setdefault(self._instance(task), time.monotonic())

    def task_finished(self, task: BaseTask, outcome: Outcome | None) -> None:
        """Note the latest end of the task's instance."""
        self.ended[self._instance(task)] = time.monotonic()

    def seconds(self, row: Row) -> str:
        """The row's duration with one decimal, ``-`` when it never ran to an end."""
        start, end = self.started.get(row.id), self.ended.get(row.id)
        if start is not None and end is not None:
            return f"{end - start:.1f}"
        return "-"  # never run here (a cascade failure, work left waiting)

    def in_execution_order(self, rows: Sequence[Row]) -> list[Row]:
        """*rows* in the order they started; those that never ran last, by name."""
        never = float("inf")
        return sorted(rows, key=lambda row: (self.started.get(row.id, never), row.name))


def _verdict(rows: Sequence[Row], elapsed: float) -> str:
    tally = counts(rows)
    done = bool(rows) and tally["finished"] == len(rows)
    return (
        f"{'pipeline finished' if done else 'pipeline failed'} in {elapsed:.1f}s: "
        f"{tally['finished']} finished, {tally['failed']} failed, "
        f"{tally['waiting'] + tally['running']} not run"
    )


FAKE_ACCESS_KEY_ID = "AKIDLOCALFAKE"
FAKE_SECRET_ACCESS_KEY = "local-fake-secret"


def keep_running_banner(endpoint_url: str, region: str) -> list[str]:
    """What ``--keep-running`` prints once the pipeline is done: the environment to copy.

    ``AWS_ENDPOINT_URL`` points boto3 and the AWS CLI at the service; a region and credentials
    must be set for them to sign at all, and fake ones keep real ones out of a local session.
    """
    return [
        f"pipeline done; the local service stays up at {endpoint_url} until Ctrl-C.",
        "To use it from another shell (boto3 and the AWS CLI read these):",
        f"  export AWS_ENDPOINT_URL={endpoint_url} AWS_DEFAULT_REGION={region} "
        f"AWS_ACCESS_KEY_ID={FAKE_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={FAKE_SECRET_ACCESS_KEY}",
        "  aws datapipeline list-pipelines",
    ]


class Display:
    """Plain lines: a line per message and per change of the counts, then a plain table."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._last = ""
        self._gone = False

    def start(self) -> None:
        """Take the terminal (nothing to do for plain lines)."""

    def close(self) -> None:
        """Give the terminal back."""

    def say(self, text: str) -> None:
        """Print one line; nothing once the reader has gone (``| head``, a closed pipe)."""
        if self._gone:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            # Whoever read the output has gone: the run, and above all its stop, must go on.
            self._gone = True

    def progress(self, rows: Sequence[Row], elapsed: float) -> None:
        """Show the counts of *rows*; a line only when they changed."""
        tally = counts(rows)
        text = ", ".join(f"{tally[name]} {name}" for name in STATES)
        if text != self._last:
            self._last = text
            self.say(f"[{elapsed:5.1f}s] tasks: {text}")

    def summary(self, rows: Sequence[Row], elapsed: float, clock: ActivityClock) -> None:
        """The table of every activity instance, in execution order, and the verdict."""
        table = [("activity", "status", "seconds", "error")]
        for row in clock.in_execution_order(rows):
            error = row.error if len(row.error) <= 80 else row.error[:77] + "..."
            table.append((row.name, row.status, clock.seconds(row), error))
        widths = [max(len(line[i]) for line in table) for i in range(3)]
        self.say("")
        for line in table:
            cells = [
                line[0].ljust(widths[0]),
                line[1].ljust(widths[1]),
                line[2].rjust(widths[2]),
                line[3],
            ]
            self.say("  ".join(cells).rstrip())
        self.say(_verdict(rows, elapsed))


class _RichDisplay(Display):
    """A rich Live display: bars per state, log lines printed above them, a table at the end."""

    def __init__(self, out: IO[str], rich_console: Any) -> None:
        super().__init__(out)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = rich_console
        self._bars = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(bar_width=40),
            MofNCompleteColumn(),
            console=rich_console,
        )
        colours = {"waiting": "grey50", "running": "cyan", "finished": "green", "failed": "red"}
        self._ids = {
            name: self._bars.add_task(f"[{colours[name]}]{name}", total=1, completed=0)
            for name in STATES
        }
        self._started = time.monotonic()
        self._live: Any = None
        self._final: float | None = None
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []

    def start(self) -> None:
        """Start the live display and send the terminal's log lines through it."""
        from rich.live import Live

        self._swap_handlers()
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=REFRESH_PER_SECOND,
            # Handlers that print() land above the display, not through it.
            redirect_stdout=True,
            redirect_stderr=False,
        )
        self._live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        if self._final is not None:
            title = f"pipeline done in {self._final:.1f}s"
        else:
            title = f"pipeline running, {time.monotonic() - self._started:.1f}s"
        return Group(Text(title, style="bold"), self._bars)

    def _swap_handlers(self) -> None:
        from rich.logging import RichHandler

        root = logging.getLogger()
        for old in list(root.handlers):
            stream = getattr(old, "stream", None)
            if not isinstance(old, logging.StreamHandler) or not _is_terminal(stream):
                continue  # a file or a pipe: the lines go there unchanged
            new = RichHandler(
                console=self.console,
                show_path=False,
                log_time_format="%H:%M:%S",
                omit_repeated_times=False,
            )
            new.setLevel(old.level)
            new.setFormatter(_RichFormatter())
            root.removeHandler(old)
            root.addHandler(new)
            self._swapped.append((old, new))

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self) -> None:
        """Stop the live display and give the log handlers back."""
        self._stop_live()
        root = logging.getLogger()
        for old, new in self._swapped:
            root.removeHandler(new)
            root.addHandler(old)
        self._swapped.clear()

    def say(self, text: str) -> None:
        """Print one line above the live display."""
        # soft_wrap: a long line (the export line to copy) stays one line, wrapped by the terminal.
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def progress(self, rows: Sequence[Row], elapsed: float) -> None:
        """Move the bars to *rows*' counts."""
        self._started = time.monotonic() - elapsed
        tally = counts(rows)
        for name, task_id in self._ids.items():
            self._bars.update(task_id, total=max(len(rows), 1), completed=tally[name])

    def summary(self, rows: Sequence[Row], elapsed: float, clock: ActivityClock) -> None:
        """Stop the live display (an idle ``--keep-running`` redraws nothing), print the table."""
        from rich.table import Table

        self.progress(rows, elapsed)
        self._final = elapsed
        if self._live is not None:
            self._live.refresh()
        self._stop_live()
        styles = {"finished": "green", "failed": "red", "running": "cyan", "waiting": "grey50"}
        table = Table(title="activities, in the order they started", title_justify="left")
        table.add_column("activity")
        table.add_column("status")
        table.add_column("seconds", justify="right")
        table.add_column("error", overflow="fold")
        for row in clock.in_execution_order(rows):
            table.add_row(
                row.name,
                f"[{styles[state(row.status)]}]{row.status}",
                clock.seconds(row),
                row.error,
            )
        self.console.print(table)
        tally = counts(rows)
        style = "green" if rows and tally["finished"] == len(rows) else "red"
        self.console.print(_verdict(rows, elapsed), style=style, highlight=False)


class _RichFormatter(TextFormatter):
    # RichHandler shows the time and level in columns of its own: keep the logger name, the
    # message and the task's ids as the text format has them.
    def __init__(self) -> None:
        logging.Formatter.__init__(self, "%(name)s: %(message)s")


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # closed
        return False


def open_display(out: IO[str], *, rich: bool | None = None) -> Display:
    """The display for *out*: live (rich) on a terminal when rich is installed, else plain lines.

    Args:
        out: where progress and the summary go.
        rich: force the choice (tests); by default, rich when *out* is a terminal and ``TERM`` is
            not ``dumb``.
    """
    wanted = (
        rich if rich is not None else (_is_terminal(out) and os.environ.get("TERM", "") != "dumb")
    )
    if not wanted:
        return Display(out)
    try:
        from rich.console import Console
    except ImportError:
        display = Display(out)
        display.say(INSTALL_HINT)
        return display
    return _RichDisplay(out, Console(file=out, force_terminal=True if rich else None))
