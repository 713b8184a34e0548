"""A plain ``def`` handler: blocking code runs in a thread, never on the event loop.

    python -m pipeworker examples.sync_handler:worker --local

A thread cannot be interrupted, so a long sync handler checks ``task.cancelled`` between steps and
returns early when the service cancels the task or the runner shuts down. Progress reports keep
going while it works: the worker sends them from the loop, which the thread does not block.
"""

from __future__ import annotations

import hashlib
import time

from pipeworker import Task, Worker

PIPELINE_DEFINITION = "sync_handler.json"

worker = Worker(max_concurrency=2)


@worker.activity("sync")
def checksum(task: Task) -> None:
    """Hash ``blocks`` blocks of data, sleeping a little between them as real I/O would."""
    blocks = int(task.field("blocks", "5"))
    digest = hashlib.sha256()
    for block in range(blocks):
        if task.cancelled:
            task.logger.warning("cancelled after %d of %d blocks", block, blocks)
            return
        digest.update(block.to_bytes(8, "big") * 100_000)
        time.sleep(0.05)
    task.logger.info("checksum of %d blocks: %s", blocks, digest.hexdigest()[:16])
