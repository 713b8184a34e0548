"""A local AWS Data Pipeline service, for development and tests.

It speaks the real JSON 1.1 protocol, so boto3, aiobotocore and ``aws --endpoint-url`` work
against it; state lives in memory. Run it with ``python -m pipeworker.local`` or in-process::

    async with LocalService(LocalConfig(poll_hold=1.0)) as service:
        ...  # point clients at service.endpoint_url
"""

from __future__ import annotations

from pipeworker.local._config import LocalConfig
from pipeworker.local._service import LocalService

__all__ = ["LocalConfig", "LocalService"]
