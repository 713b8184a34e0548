"""How often a running task reports: the jitter around the interval, and the floor beneath it."""

from __future__ import annotations

__all__ = ["MIN_INTERVAL", "PROGRESS_JITTER"]

PROGRESS_JITTER = 0.1
"""Each progress interval is drawn from ``interval * (1 ± PROGRESS_JITTER)``."""

MIN_INTERVAL = 0.05
"""The shortest progress or heartbeat interval: settings below it are refused, and a task whose
lease would ask for faster reports (a ``reportProgressTimeout`` near 0) is reported at this pace."""
