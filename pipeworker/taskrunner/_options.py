"""The command line: the Java Task Runner's options, with their names and meanings, and
pipeworker's own (``--http-port``, ``--log-format``, ``--shutdown-grace``...).

A start-up script written for ``java -jar TaskRunner-1.0.jar`` works with its first words
replaced by ``pipeworker-taskrunner`` (or ``python -m pipeworker.taskrunner``). Bad values, an
unreadable ``--config`` and unknown options are usage errors: exit 2 with a message.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeworker._settings import (
    ParsedSettings,
    SettingsParser,
    UsageError,
    add_setting_arguments,
    resolve_settings,
)
from pipeworker.cli import check_local_options
from pipeworker.taskrunner._s3 import S3Error, S3Uri

__all__ = ["DEFAULT_TASKS", "Options", "build_parser", "parse_options"]

PROG = "pipeworker-taskrunner"
DEFAULT_TASKS = 2
"""Concurrent tasks when ``--tasks`` is not given: the Java runner's default."""
DEFAULT_OUTPUT = "output"

_NTLM = (
    "is an NTLM proxy setting, and pipeworker.taskrunner has no NTLM support: use a proxy "
    "that accepts Basic authentication (--proxyUsername/--proxyPassword) or none"
)

_EPILOG = """\
The Java Task Runner's options keep their names and meaning; replace
'java -jar TaskRunner-1.0.jar' with 'pipeworker-taskrunner' in a start-up script.
Every pipeworker option can also come from PIPEWORKER_<NAME>; HTTPS_PROXY is honoured,
and S3 follows AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.

exit codes: 0 stopped normally, 1 failed while running (--local: an object failed),
2 a usage or configuration error.

examples:
  pipeworker-taskrunner --config ~/credentials.json --workerGroup=wg-12345 \\
      --region=us-east-1 --logUri=s3://mybucket/taskrunner-logs
  pipeworker-taskrunner --workerGroup=wg-12345 --tasks 4 --http-port 9100
  pipeworker-taskrunner --local --pipeline definition.json
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser; defaults are None so environment variables can fill pipeworker's settings."""
    parser = SettingsParser(
        prog=PROG,
        description="Run AWS Data Pipeline's ShellCommandActivity and preconditions on this "
        "machine: a drop-in replacement for the Java Task Runner.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    java = parser.add_argument_group("Java Task Runner options")
    add = java.add_argument
    add("--workerGroup", metavar="GROUP", help="the worker group to poll (required)")
    add("--config", metavar="FILE", help='credentials JSON: {"access-id": ..., "private-key": ...}')
    add("--accessId", metavar="KEY", help="AWS access key id (wins over --config)")
    add("--secretKey", metavar="SECRET", help="AWS secret access key (wins over --config)")
    add("--logUri", metavar="S3URI", help="s3:// path the runner's log goes to, hourly and on exit")
    add(
        "--output", metavar="DIR", help=f"directory for logs and work (default: ./{DEFAULT_OUTPUT})"
    )
    add("--proxyHost", metavar="HOST", help="proxy host for AWS calls")
    add("--proxyPort", metavar="PORT", help="proxy port")
    add("--proxyUsername", metavar="USER", help="proxy user (Basic authentication)")
    add("--proxyPassword", metavar="PASSWORD", help="proxy password")
    add("--proxyDomain", metavar="DOMAIN", help="NTLM only: refused (no NTLM support)")
    add("--proxyWorkstation", metavar="NAME", help="NTLM only: refused (no NTLM support)")
    own = parser.add_argument_group(
        "pipeworker options (--endpoint, --region, --taskrunnerId and --tasks are the Java "
        "runner's too)"
    )
    add_setting_arguments(
        own,
        default_texts={"max_concurrency": f"{DEFAULT_TASKS}, as the Java runner"},
        worker_default="default",
    )
    own.add_argument(
        "--log-upload-interval",
        metavar="SECONDS",
        help="seconds between log uploads (default: 3600, hourly as the Java runner)",
    )
    own.add_argument(
        "--kill-grace",
        metavar="SECONDS",
        help="seconds a cancelled command gets between SIGTERM and SIGKILL (default: 5)",
    )
    local = parser.add_argument_group("local run (no AWS account needed)")
    local.add_argument(
        "--local",
        action="store_true",
        help="run a definition's shell activities and preconditions on the built-in local "
        "Data Pipeline service; S3 from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL",
    )
    local.add_argument("--pipeline", metavar="FILE", help="the definition --local runs")
    local.add_argument(
        "--keep-running", action="store_true", help="with --local: stay up after the pipeline"
    )
    return parser


@dataclass(frozen=True)
class Options(ParsedSettings):
    """The parsed command line.

    Attributes:
        worker_groups: the worker groups to poll.
        settings: pipeworker settings given, by name.
        sources: where each came from.
        output: the ``--output`` directory.
        log_uri: ``--logUri``.
        log_interval: seconds between log cycles.
        kill_grace: seconds between SIGTERM and SIGKILL.
        credentials: ``(access key, secret)`` from ``--config`` / ``--accessId``, or None.
        proxy_url: the proxy built from ``--proxy*``, or None.
        local: ``--local``.
        pipeline: ``--pipeline``.
        keep_running: ``--keep-running``.
    """

    worker_groups: tuple[str, ...]
    settings: Mapping[str, Any]
    sources: Mapping[str, str]
    output: Path
    log_uri: S3Uri | None = None
    log_interval: float = 3600.0
    kill_grace: float = 5.0
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    proxy_url: str | None = field(default=None, repr=False)
    local: bool = False
    pipeline: str | None = None
    keep_running: bool = False


def _seconds(flag: str, text: str | None, default: float, minimum: float = 0.0) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a number of seconds") from None
    if not value >= minimum or value == float("inf"):
        raise UsageError(f"{flag}: {text!r} must be a finite number above {minimum:g}")
    return value


def _credentials(namespace: argparse.Namespace) -> tuple[str, str] | None:
    access, secret = None, None
    if namespace.config is not None:
        try:
            data = json.loads(Path(namespace.config).expanduser().read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--config: cannot read {namespace.config}: {exc.strerror}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"--config: {namespace.config} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"--config: {namespace.config} must hold a JSON object")
        access, secret = data.get("access-id"), data.get("private-key")
        for key, value in (("access-id", access), ("private-key", secret)):
            if not isinstance(value, str) or not value:
                raise UsageError(
                    f'--config: {namespace.config} has no "{key}" string; the file is '
                    '{"access-id": "AKIA...", "private-key": "..."}'
                )
    if (namespace.accessId is None) != (namespace.secretKey is None):
        raise UsageError("--accessId and --secretKey go together: give both or neither")
    if namespace.accessId is not None:
        access, secret = namespace.accessId, namespace.secretKey
    if access is None or secret is None:
        return None
    return access, secret


def _proxy(namespace: argparse.Namespace) -> str | None:
    for flag in ("proxyDomain", "proxyWorkstation"):
        if getattr(namespace, flag) is not None:
            raise UsageError(f"--{flag} {_NTLM}")
    host, port = namespace.proxyHost, namespace.proxyPort
    user, password = namespace.proxyUsername, namespace.proxyPassword
    if host is None:
        given = [
            f for f in ("proxyPort", "proxyUsername", "proxyPassword") if getattr(namespace, f)
        ]
        if given:
            raise UsageError(f"--{given[0]} needs --proxyHost")
        return None
    if not host or any(ch in host for ch in "/@ ") or ":" in host.strip("[]"):
        raise UsageError(f"--proxyHost: {host!r} is not a host name (give the port separately)")
    if port is None:
        raise UsageError("--proxyHost needs --proxyPort")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--proxyPort: {port!r} is not a port number (1-65535)")
    if (user is None) != (password is None):
        raise UsageError("--proxyUsername and --proxyPassword go together: give both or neither")
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user is not None else ""
    return f"http://{auth}{host}:{int(port)}"


def _definition_groups(path: str) -> tuple[str, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--pipeline: cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--pipeline: {path} is not valid JSON: {exc}") from None
    objects = data.get("objects", []) if isinstance(data, dict) else []
    groups = {
        obj["workerGroup"]
        for obj in objects
        if isinstance(obj, dict) and isinstance(obj.get("workerGroup"), str)
    }
    if not groups:
        raise UsageError(f"--pipeline: {path} names no workerGroup; pass --workerGroup")
    return tuple(sorted(groups))


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> Options:
    """Parse *argv*, filling pipeworker's settings from *environ*.

    Raises:
        UsageError: an unknown option, a bad value, an unreadable ``--config``, or options
            that do not go together.
    """
    namespace = build_parser().parse_args(list(argv))
    settings, sources = resolve_settings(namespace, environ)
    check_local_options(namespace, sources, "--pipeline", "--keep-running")
    if namespace.local and not namespace.pipeline:
        raise UsageError("--local needs --pipeline FILE (a put-pipeline-definition JSON file)")
    if namespace.workerGroup is not None:
        groups: tuple[str, ...] = (namespace.workerGroup,)
    elif namespace.local:
        groups = _definition_groups(namespace.pipeline)
    else:
        raise UsageError("--workerGroup is required: the worker group this runner polls")
    log_uri = None
    if namespace.logUri is not None:
        try:
            log_uri = S3Uri.parse(namespace.logUri)
        except S3Error as exc:
            raise UsageError(f"--logUri: {exc}") from None
    output = Path(namespace.output or DEFAULT_OUTPUT).expanduser()
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output: {output} exists and is not a directory")
    return Options(
        worker_groups=groups,
        settings=settings,
        sources=sources,
        output=output.absolute(),
        log_uri=log_uri,
        log_interval=_seconds(
            "--log-upload-interval", namespace.log_upload_interval, 3600.0, minimum=0.01
        ),
        kill_grace=_seconds("--kill-grace", namespace.kill_grace, 5.0),
        credentials=_credentials(namespace),
        proxy_url=_proxy(namespace),
        local=namespace.local,
        pipeline=namespace.pipeline,
        keep_running=namespace.keep_running,
    )


def export_environment(options: Options, environ: dict[str, str] | None = None) -> None:
    """Put the credentials and proxy where every AWS client of this process reads them.

    The worker's Data Pipeline client and the S3 client both use aiobotocore's default session,
    which reads these variables; so do the AWS tools a command may call.
    """
    env = os.environ if environ is None else environ
    if options.credentials is not None:
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = options.credentials
        # A session token from the environment belongs to other keys.
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_SECURITY_TOKEN", None)
    if options.proxy_url is not None:
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            env[name] = options.proxy_url


def proxy_in_environment(environ: Mapping[str, str]) -> bool:
    """Whether HTTPS_PROXY (or HTTP_PROXY) is set, in either case."""
    return any(
        environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
    )
