"""The runner's own log, where the Java Task Runner keeps it: a file under ``--output``, rotated
every hour, gzipped, and copied to ``--logUri`` hourly and when the runner exits.

Layout::

    <output>/taskrunner.log                              the current hour
    <output>/runner-logs/taskrunner.<start>.log.gz       finished hours, until uploaded
    <logUri>/<taskrunnerId>/taskrunner.<start>.log.gz    uploaded

Each cycle also retries the attempts' log directories whose upload to the pipeline's
``pipelineLogUri`` failed earlier (see :mod:`pipeworker.taskrunner._attempt`). A failed upload is
logged and retried on the next cycle; it never stops the runner.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pipeworker.taskrunner._attempt import DESTINATION_FILE, ship_attempt_logs
from pipeworker.taskrunner._s3 import S3Error, S3Uri, Transfers

__all__ = ["LOG_FILE", "LogShipper"]

log = logging.getLogger("pipeworker.taskrunner")

LOG_FILE = "taskrunner.log"
ROTATED_DIR = "runner-logs"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H-%M-%SZ")


class LogShipper:
    """Writes the runner's log under *output* and ships it to *log_uri*.

    Args:
        output: the ``--output`` directory.
        log_uri: ``--logUri``, or None to keep the logs only locally.
        runner_id: the runner's id, the folder under *log_uri*.
        formatter: the format of the log file's lines.
        interval: seconds between cycles (an hour, as the Java runner).
    """

    def __init__(
        self,
        output: Path,
        log_uri: S3Uri | None,
        runner_id: str,
        formatter: logging.Formatter,
        interval: float = 3600.0,
    ) -> None:
        self.output = output
        self.log_uri = log_uri
        self.runner_id = runner_id
        self.formatter = formatter
        self.interval = interval
        self._handler: logging.FileHandler | None = None
        self._started = datetime.now(UTC)

    @property
    def path(self) -> Path:
        """The current log file."""
        return self.output / LOG_FILE

    def install(self) -> None:
        """Start writing the runner's log (every INFO line and above) to :attr:`path`."""
        self.output.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.path, encoding="utf-8")
        handler.setFormatter(self.formatter)
        handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(handler)
        self._handler = handler
        self._started = datetime.now(UTC)

    def uninstall(self) -> None:
        """Stop writing the log file."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def _rotate(self) -> Path | None:
        # Swapped on the loop's thread, so no line is written to a file being moved.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        reinstall = self._handler is not None
        self.uninstall()
        folder = self.output / ROTATED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        rotated = folder / f"taskrunner.{_stamp(self._started)}.log"
        number = 1
        while rotated.exists() or rotated.with_name(rotated.name + ".gz").exists():
            number += 1  # two cycles in one second (a stop right after a cycle)
            rotated = folder / f"taskrunner.{_stamp(self._started)}-{number}.log"
        self.path.rename(rotated)
        if reinstall:
            self.install()
        return rotated

    async def cycle(self, transfers: Transfers | None) -> None:
        """Rotate and gzip the log, then upload what is waiting; failures wait for the next."""
        rotated = self._rotate()
        if rotated is not None:
            await asyncio.to_thread(_gzip, rotated)
        if transfers is None:
            return
        if self.log_uri is not None:
            for path in sorted((self.output / ROTATED_DIR).glob("*.log.gz")):
                target = self.log_uri.join(self.runner_id, path.name)
                try:
                    await transfers.upload_file(path, target)
                except (S3Error, OSError) as exc:
                    log.warning("runner log upload failed, retried next cycle: %s", exc)
                    break
                path.unlink(missing_ok=True)
                log.info("runner log uploaded to %s", target)
        await self._retry_attempt_logs(transfers)

    async def _retry_attempt_logs(self, transfers: Transfers) -> None:
        logs = self.output / "logs"
        if not logs.is_dir():
            return
        for marker in sorted(logs.glob(f"*/*/*/*/{DESTINATION_FILE}")):
            try:
                destination = S3Uri.parse(marker.read_text(encoding="utf-8").strip())
            except (OSError, S3Error):
                continue
            if await ship_attempt_logs(transfers, marker.parent, destination, {}):
                log.info("attempt logs uploaded to %s", destination)

    async def run(self, transfers: Transfers | None) -> None:
        """Run a cycle every :attr:`interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.cycle(transfers)
            except Exception:
                log.exception("the log cycle failed; trying again next cycle")


def _gzip(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as source, gzip.open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
    path.unlink()
    return target
