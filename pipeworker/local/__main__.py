"""``python -m pipeworker.local``: run the local Data Pipeline service until interrupted.

The first line on stdout is ``pipeworker.local listening on http://HOST:PORT`` (flushed), so a
script can start it with ``--port 0`` and read the port it got.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence

from pipeworker.local._config import LocalConfig
from pipeworker.local._service import LocalService

__all__ = ["main"]


_EPILOG = """\
point clients at it (any credentials; a region must be set):
  export AWS_ENDPOINT_URL=http://127.0.0.1:8080 AWS_DEFAULT_REGION=us-east-1 \\
         AWS_ACCESS_KEY_ID=AKIDLOCALFAKE AWS_SECRET_ACCESS_KEY=local-fake-secret
  aws datapipeline list-pipelines                  # Data Pipeline
  aws swf register-domain --name orders \\
      --workflow-execution-retention-period-in-days 1   # SWF (the activity-worker calls)
  aws stepfunctions list-activities                 # Step Functions
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default in its help (unless the help says it), the epilog as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, argparse.SUPPRESS)
            or action.default is False
        ):
            return text
        default = action.default
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        return f"{text} (default: {shown})"


def _parser() -> argparse.ArgumentParser:
    defaults = LocalConfig()
    parser = argparse.ArgumentParser(
        prog="python -m pipeworker.local",
        description=(
            "A local AWS Data Pipeline service, with the activity-worker calls of Amazon SWF\n"
            "and AWS Step Functions, for development and tests (in memory, or kept with\n"
            "--state). One endpoint serves all three."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    add = parser.add_argument
    add(
        "--poll-hold",
        type=float,
        default=defaults.poll_hold,
        help="long-poll hold, seconds (SWF's and Step Functions' at most 60)",
    )
    add("--ack-timeout", type=float, default=defaults.ack_timeout, help="ack window, seconds")
    add(
        "--report-progress-timeout",
        type=float,
        default=defaults.default_report_progress_timeout,
        help="progress window when an activity sets no reportProgressTimeout, seconds",
    )
    add("--time-scale", type=float, default=1.0, help="multiplies durations from definitions")
    add("--rate-limits", action="store_true", help="enforce the account's rate limits")
    add("--error-rate", type=float, default=0.0, help="fraction of calls answered with 500")
    add("--throttle-rate", type=float, default=0.0, help="fraction answered with a throttle")
    add("--drop-rate", type=float, default=0.0, help="fraction whose connection is dropped")
    add("--drop-after", type=float, default=0.5, help="share of drops after the call took effect")
    add(
        "--latency-ms",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(0.0, 0.0),
        help="delay added to each task-runner call, uniform in [MIN, MAX] milliseconds",
    )
    add("--seed", type=int, default=None, help="seed of the fault RNG")
    add(
        "--state",
        metavar="FILE",
        default=None,
        help="keep pipelines, instances, attempts and leases in this SQLite file across restarts "
        "(default: memory only)",
    )
    add(
        "--verify-signatures",
        action="store_true",
        help="check SigV4 signatures against --credentials (off: any signature is accepted)",
    )
    add(
        "--credentials",
        metavar="FILE",
        help="file of ACCESS_KEY:SECRET lines for --verify-signatures (default: the "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of this environment)",
    )
    add("--log-level", default="WARNING", help="logging level")
    return parser


def _credentials(path: str | None) -> dict[str, str]:
    """Access key -> secret from *path* (``KEY:SECRET`` lines), or from the environment."""
    if path is None:
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise ValueError(
                "--verify-signatures needs --credentials FILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            )
        return {key: secret}
    credentials: dict[str, str] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, secret = line.partition(":")
            if not sep or not key.strip() or not secret.strip():
                raise ValueError(f"{path}:{number}: expected ACCESS_KEY:SECRET")
            credentials[key.strip()] = secret.strip()
    return credentials


async def _serve(service: LocalService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with service:
        print(f"pipeworker.local listening on {service.endpoint_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse *argv*, run the service until SIGINT/SIGTERM; return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        config = LocalConfig(
            poll_hold=args.poll_hold,
            ack_timeout=args.ack_timeout,
            default_report_progress_timeout=args.report_progress_timeout,
            time_scale=args.time_scale,
            rate_limits=args.rate_limits,
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            drop_rate=args.drop_rate,
            drop_after_fraction=args.drop_after,
            latency_min=args.latency_ms[0] / 1000,
            latency_max=args.latency_ms[1] / 1000,
            seed=args.seed,
            verify_signatures=args.verify_signatures,
            credentials=_credentials(args.credentials) if args.verify_signatures else {},
            state_path=args.state,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(LocalService(config, host=args.host, port=args.port)))
    except sqlite3.DatabaseError as exc:
        print(f"error: --state {args.state}: not a usable state file: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
