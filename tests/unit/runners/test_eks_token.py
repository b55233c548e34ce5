"""The EKS bearer token: a presigned STS GetCallerIdentity URL, checked against botocore's own signer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from formica.runners.eks import (
    TOKEN_PREFIX,
    AwsCredentials,
    EksTokenProvider,
    eks_token,
    presigned_caller_identity_url,
)

NOW = datetime(2026, 11, 28, 18, 40, 5, tzinfo=UTC)
CREDS = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+with=chars")


def _decode(token: str) -> str:
    body = token.removeprefix(TOKEN_PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_token_is_the_prefixed_unpadded_base64url_of_the_presigned_url() -> None:
    token = eks_token(cluster_name="formica", region="eu-west-1", credentials=CREDS, now=NOW)

    assert token.startswith("k8s-aws-v1.")
    assert "=" not in token
    assert set(token.removeprefix(TOKEN_PREFIX)) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    url = _decode(token)
    assert url == presigned_caller_identity_url(
        cluster_name="formica", region="eu-west-1", credentials=CREDS, now=NOW
    )
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert parts.scheme == "https"
    assert parts.netloc == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert query["X-Amz-Date"] == "20261128T184005Z"
    assert query["X-Amz-Credential"] == "AKIDEXAMPLE/20261128/eu-west-1/sts/aws4_request"
    assert query["X-Amz-Security-Token"] == "session/token+with=chars"


@pytest.mark.parametrize("token", [None, "session/token+with=chars"])
def test_signature_matches_botocore(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    creds = AwsCredentials(CREDS.access_key, CREDS.secret_key, token)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: NOW.replace(tzinfo=None))
    request = AWSRequest(
        method="GET",
        url="https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        headers={"x-k8s-aws-id": "my-cluster"},
    )
    botocore.auth.SigV4QueryAuth(
        Credentials(creds.access_key, creds.secret_key, creds.token), "sts", "us-east-1", expires=60
    ).add_auth(request)
    expected = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}

    ours = presigned_caller_identity_url(
        cluster_name="my-cluster", region="us-east-1", credentials=creds, now=NOW
    )
    got = {k: v[0] for k, v in parse_qs(urlsplit(ours).query).items()}

    assert got == expected
    assert got["X-Amz-Signature"] == expected["X-Amz-Signature"]


def test_the_cluster_name_is_part_of_the_signature() -> None:
    a = presigned_caller_identity_url(cluster_name="a", region="us-east-1", credentials=CREDS, now=NOW)
    b = presigned_caller_identity_url(cluster_name="b", region="us-east-1", credentials=CREDS, now=NOW)
    assert a.rsplit("X-Amz-Signature=", 1)[1] != b.rsplit("X-Amz-Signature=", 1)[1]


def test_provider_reuses_a_token_for_ten_minutes() -> None:
    moments = iter([NOW, NOW.replace(minute=45), NOW.replace(minute=51)])
    calls: list[int] = []

    def credentials() -> AwsCredentials:
        calls.append(1)
        return CREDS

    provider = EksTokenProvider("c", "us-east-1", credentials=credentials, clock=lambda: next(moments))
    first, second, third = provider(), provider(), provider()

    assert first == second
    assert third != first
    assert len(calls) == 2
