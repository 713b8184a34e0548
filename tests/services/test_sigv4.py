"""The lean transport's signer gives exactly the headers botocore's SigV4Auth gives.

Randomised over bodies (empty, ASCII, any Unicode, large), targets, regions, services, URLs
(ports, paths, IPv6), session tokens and moments (day boundaries, where the cached key must
change), each request is signed by both and every header compared byte for byte.
"""

from __future__ import annotations

import datetime
from typing import Any
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeworker.services._sigv4 import FastSigner

URLS = st.sampled_from(
    [
        "https://datapipeline.us-east-1.amazonaws.com/",
        "https://states.eu-west-1.amazonaws.com:443/",
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://[::1]:9000/",
        "http://127.0.0.1:8080/prefix/path/",
        "https://proxy.example.com:8443/a b/~x/",
    ]
)
SERVICES = st.sampled_from(
    [
        ("datapipeline", "DataPipeline", "application/x-amz-json-1.1"),
        ("swf", "SimpleWorkflowService", "application/x-amz-json-1.0"),
        ("states", "AWSStepFunctions", "application/x-amz-json-1.0"),
    ]
)
REGIONS = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "local"])
OPERATIONS = st.sampled_from(
    ["PollForTask", "ReportTaskProgress", "SetTaskStatus", "GetActivityTask", "SendTaskSuccess"]
)
MOMENTS = st.datetimes(
    min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2030, 12, 31)
)
BODIES = st.one_of(
    st.just(b""),
    st.just(b"{}"),
    st.text().map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20_000),
)
CREDENTIALS = st.builds(
    ReadOnlyCredentials,
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=20),
    st.text(min_size=1, max_size=40).filter(lambda s: s.isprintable()),
    st.one_of(st.none(), st.text(alphabet="abcdefABCDEF0123456789+/=", min_size=1, max_size=60)),
)


def _botocore(
    url: str, name: str, region: str, content_type: str, target: str, body: bytes, creds: Any,
    moment: datetime.datetime,
) -> dict[str, str]:  # fmt: skip
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": content_type, "X-Amz-Target": target},
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        SigV4Auth(creds, name, region).add_auth(request)
    return dict(request.headers.items())


@settings(max_examples=400, deadline=None)
@given(
    URLS,
    SERVICES,
    REGIONS,
    OPERATIONS,
    BODIES,
    CREDENTIALS,
    st.lists(MOMENTS, min_size=1, max_size=3),
)
def test_headers_are_byte_identical_to_botocores(
    url: str,
    service: tuple[str, str, str],
    region: str,
    operation: str,
    body: bytes,
    creds: Any,
    moments: list[datetime.datetime],
) -> None:
    name, prefix, content_type = service
    signer = FastSigner(url=url, signing_name=name, region=region, content_type=content_type)
    target = f"{prefix}.{operation}"
    for moment in moments:  # one signer across days: the cached key follows the date
        ours = signer.headers(creds, target, body, moment.replace(tzinfo=datetime.UTC))
        assert ours == _botocore(url, name, region, content_type, target, body, creds, moment)


def test_refreshed_credentials_are_used_at_once() -> None:
    signer = FastSigner(
        url="http://127.0.0.1:1/", signing_name="datapipeline", region="us-east-1",
        content_type="application/x-amz-json-1.1",
    )  # fmt: skip
    moment = datetime.datetime(2026, 11, 30, 12, 0, 0)
    old = ReadOnlyCredentials("AKIAOLD0000000000000", "old-secret", None)
    new = ReadOnlyCredentials("AKIANEW0000000000000", "new-secret", "token")
    first = signer.headers(
        old, "DataPipeline.PollForTask", b"{}", moment.replace(tzinfo=datetime.UTC)
    )
    second = signer.headers(
        new, "DataPipeline.PollForTask", b"{}", moment.replace(tzinfo=datetime.UTC)
    )
    assert "AKIANEW0000000000000" in second["Authorization"]
    assert second["X-Amz-Security-Token"] == "token"
    assert first["Authorization"] != second["Authorization"]
    expected = _botocore(
        "http://127.0.0.1:1/", "datapipeline", "us-east-1", "application/x-amz-json-1.1",
        "DataPipeline.PollForTask", b"{}", new, moment,
    )  # fmt: skip
    assert second == expected
