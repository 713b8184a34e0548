"""Runnable examples; ``python -m pipeworker examples.hello:worker --local`` from the repo root."""
