"""The services a worker can poll, each behind the interface in :mod:`pipeworker.services.base`."""
