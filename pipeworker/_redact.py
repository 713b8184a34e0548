"""Keeps credentials and signatures out of logs, whoever configured logging at DEBUG.

botocore logs every signed request at DEBUG: the ``Authorization`` header (access key id and
signature) from ``botocore.endpoint``, and the signature itself from ``botocore.auth``. A runner
embedded in an application whose root logger is at DEBUG would write them to its logs. The
filter installed here on those loggers rewrites such records before any handler sees them;
secrets are never logged by botocore, and never by pipeworker.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "RedactingFilter", "install", "redact"]

REDACTED = "<redacted>"

_PATTERNS = (
    # Authorization: AWS4-HMAC-SHA256 Credential=AKIA.../scope, SignedHeaders=..., Signature=hex
    (re.compile(r"(Credential=)[^/,\s'\"]+"), r"\1" + REDACTED),
    (re.compile(r"(Signature=)[0-9a-fA-F]+"), r"\1" + REDACTED),
    (re.compile(r"(X-Amz-Signature=)[0-9a-fA-F]+"), r"\1" + REDACTED),
    (re.compile(r"(X-Amz-Credential=)[^&\s'\"]+"), r"\1" + REDACTED),
    (re.compile(r"(Signature:\s*)[0-9a-fA-F]{64}"), r"\1" + REDACTED),
    (
        re.compile(
            r"((?:X-Amz-Security-Token|x-amz-security-token)['\"]?\s*[:=]\s*b?['\"]?)[^'\",\s}]+"
        ),
        r"\1" + REDACTED,
    ),
    # Access key ids on their own (AKIA... long-term, ASIA... temporary).
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"), REDACTED),
)

# Where botocore and aiobotocore log requests and signing; filters on a logger apply to the
# records created by that logger, so each one that can carry a header gets its own.
LOGGERS = (
    "botocore.auth",
    "botocore.endpoint",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.parsers",
    "botocore.retryhandler",
    "aiobotocore.endpoint",
    "aiobotocore.httpsession",
)


def redact(text: str) -> str:
    """*text* with access key ids, credentials scopes and signatures replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with :func:`redact`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it alone
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Add the filter to every logger in :data:`LOGGERS` (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
