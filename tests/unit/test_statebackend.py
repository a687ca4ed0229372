"""python -m ops.statebackend: the Pulumi state bucket and secrets key, made and checked
against moto's S3 and KMS."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from ops import statebackend


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.session.Session(region_name="ap-northeast-1")


def test_ensure_makes_everything_and_check_then_passes(aws: boto3.session.Session) -> None:
    made = statebackend.ensure(
        "claims-dc-pulumi-state", "ap-northeast-1", "alias/claims-dc-pulumi-secrets",
        create=True, session=aws,
    )  # fmt: skip
    assert made.problems == []
    assert len(made.changed) == 7  # key, rotation, bucket, versioning, SSE-KMS, PAB, policy
    s3 = aws.client("s3")
    assert s3.get_bucket_versioning(Bucket="claims-dc-pulumi-state")["Status"] == "Enabled"
    encryption = s3.get_bucket_encryption(Bucket="claims-dc-pulumi-state")
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
    rule = rule["ApplyServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": made.key_arn}
    again = statebackend.ensure(
        "claims-dc-pulumi-state", "ap-northeast-1", "alias/claims-dc-pulumi-secrets",
        create=True, session=aws,
    )  # fmt: skip
    assert again.changed == [] and again.key_arn == made.key_arn
    assert made.backend_url == "s3://claims-dc-pulumi-state?region=ap-northeast-1&awssdk=v2"
    assert made.secrets_provider == (
        "awskms://alias/claims-dc-pulumi-secrets?region=ap-northeast-1"
    )


def test_check_finds_each_missing_protection_without_changing_anything(
    aws: boto3.session.Session,
) -> None:
    absent = statebackend.ensure("st-0", "ap-northeast-1", "alias/k", create=False, session=aws)
    assert absent.problems == ["KMS alias alias/k does not exist"]
    statebackend.ensure("st-1", "ap-northeast-1", "alias/k", create=True, session=aws)
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket="st-1", VersioningConfiguration={"Status": "Suspended"})
    s3.delete_bucket_policy(Bucket="st-1")
    s3.delete_public_access_block(Bucket="st-1")
    kms = aws.client("kms")
    kms.disable_key_rotation(KeyId=kms.describe_key(KeyId="alias/k")["KeyMetadata"]["KeyId"])
    state = statebackend.ensure("st-1", "ap-northeast-1", "alias/k", create=False, session=aws)
    assert state.changed == []
    assert sorted(state.problems) == [
        "alias/k: automatic key rotation is off",
        "bucket st-1: public access is not blocked",
        "bucket st-1: the bucket policy does not refuse requests without TLS",
        "bucket st-1: versioning is off",
    ]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ensure", "--bucket", "x", "--region", "us-east-1"], "--region 'us-east-1'"),
        (["ensure", "--bucket", "Bad_Name"], "--bucket 'Bad_Name'"),
        (["check", "--bucket", "ok-name", "--key-alias", "mykey"], "--key-alias 'mykey'"),
    ],
)
def test_bad_arguments_exit_two(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert statebackend.main(args) == 2
    assert named in capsys.readouterr().err


def test_the_cli_prints_what_to_run(aws: boto3.session.Session,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert statebackend.main(["check", "--bucket", "claims-dc-pulumi-state"]) == 1
    assert "MISSING" in capsys.readouterr().out
    assert statebackend.main(["ensure", "--bucket", "claims-dc-pulumi-state"]) == 0
    out = capsys.readouterr().out
    assert "pulumi login 's3://claims-dc-pulumi-state?region=ap-northeast-1&awssdk=v2'" in out
    assert statebackend.main(["check", "--bucket", "claims-dc-pulumi-state", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []
