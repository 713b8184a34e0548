"""A Worker subclass: handlers as methods, resources opened and closed by the lifecycle hooks.

    python -m pipeworker examples.subclass:worker --local

``@Worker.activity(...)`` in the class body marks a method; each instance registers its own bound
methods, so two instances never share state or registrations.
"""

from __future__ import annotations

from pipeworker import Task, Worker
from pipeworker.services.base import Outcome

PIPELINE_DEFINITION = "subclass.json"


class InventoryWorker(Worker):
    """Keeps an in-memory "database" open while running and counts what it handled."""

    def __init__(self, *, max_concurrency: int = 1) -> None:
        super().__init__(max_concurrency=max_concurrency)
        self.stock: dict[str, int] | None = None
        self.handled: list[tuple[str, str]] = []

    async def on_startup(self) -> None:
        """Open the database before the first poll."""
        self.stock = {"apples": 10, "pears": 4}

    async def on_shutdown(self) -> None:
        """Close it after the last task."""
        self.stock = None

    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
        """Remember each task's final status."""
        self.handled.append((task.attempt_id, outcome.status if outcome else "CANCELED"))

    @Worker.activity("inventory", type="ReserveActivity")
    async def reserve(self, task: Task) -> None:
        """Take ``quantity`` of ``item`` out of stock; fail when there is not enough."""
        assert self.stock is not None
        item, quantity = task.field("item"), int(task.field("quantity", "1"))
        if self.stock.get(item, 0) < quantity:
            raise ValueError(f"only {self.stock.get(item, 0)} {item} left, {quantity} wanted")
        self.stock[item] -= quantity
        await task.report_progress(remaining=self.stock[item])
        task.logger.info("reserved %d %s, %d left", quantity, item, self.stock[item])

    @Worker.activity("inventory", type="AuditActivity")
    async def audit(self, task: Task) -> None:
        """Log what is left."""
        task.logger.info("stock: %s", self.stock)


worker = InventoryWorker(max_concurrency=1)
