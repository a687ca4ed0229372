"""AWS: the backup key's automatic rotation is checked, and an IAM access key kept
on the control node is rotated by create, switch, verify, deactivate, delete, against moto's
IAM and STS in process; the old key is tried afterwards and no longer signs in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.awsapi import Endpoint
from ops.rotation.aws_keys import access_key_rotation, check_kms_rotation, identity, read_profiles
from ops.rotation.ledger import Ledger
from ops.rotation.machine import rotate
from ops.rotation.steps import StepFailed
from ops.vault.sealed import is_sealed, write_secret

ENDPOINT = Endpoint(None, "ap-northeast-1", None)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")  # fmt: skip
        iam.create_user(UserName="l0001")
        made = iam.create_access_key(UserName="l0001")["AccessKey"]
        secrets = tmp_path / "secrets"
        secrets.mkdir(mode=0o700)
        creds = secrets / "aws-credentials"
        write_secret(creds, f"[ops]\naws_access_key_id = {made['AccessKeyId']}\n"
                            f"aws_secret_access_key = {made['SecretAccessKey']}\n")  # fmt: skip
        yield {"iam": iam, "secrets": secrets, "creds": creds, "old": made,
               "ledger": Ledger(tmp_path / "ledger.jsonl")}  # fmt: skip


def _profile(creds: Path) -> dict[str, str]:
    return dict(read_profiles(creds)["ops"])


def test_the_key_is_replaced_and_the_old_one_no_longer_signs_in(aws: dict[str, Any]) -> None:
    old = {"aws_access_key_id": aws["old"]["AccessKeyId"],
           "aws_secret_access_key": aws["old"]["SecretAccessKey"]}  # fmt: skip
    user_arn = identity(ENDPOINT, old)
    assert user_arn.endswith(":user/l0001")
    r = access_key_rotation("ops", aws["secrets"], ENDPOINT, aws["ledger"], wait=lambda _: None)
    out = rotate(r, aws["ledger"])
    assert out.outcome == "ok", out.error
    now = _profile(aws["creds"])
    assert now["aws_access_key_id"] != old["aws_access_key_id"]
    assert identity(ENDPOINT, now) == user_arn
    keys = aws["iam"].list_access_keys(UserName="l0001")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [now["aws_access_key_id"]]
    assert identity(ENDPOINT, old) != user_arn  # tried: the deleted key is not the user
    assert aws["creds"].stat().st_mode & 0o077 == 0 and is_sealed(aws["creds"])
    for secret in (old, now):
        assert secret["aws_secret_access_key"].encode() not in aws["creds"].read_bytes()
    assert sorted(p.name for p in aws["secrets"].iterdir()) == ["aws-credentials"]
    ledger = (aws["ledger"].path).read_text()
    assert old["aws_secret_access_key"] not in ledger and now["aws_secret_access_key"] not in ledger
    assert old["aws_access_key_id"] in ledger  # key IDs are what the ledger names


def test_a_failed_verification_deletes_the_new_key_and_keeps_the_old(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = access_key_rotation("ops", aws["secrets"], ENDPOINT, aws["ledger"], wait=lambda _: None)

    def refuse() -> None:
        raise StepFailed("the new key was refused")

    r.do["verified"] = refuse
    out = rotate(r, aws["ledger"])
    assert out.outcome == "rolled-back" and "refused" in out.error
    assert _profile(aws["creds"])["aws_access_key_id"] == aws["old"]["AccessKeyId"]
    keys = aws["iam"].list_access_keys(UserName="l0001")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [aws["old"]["AccessKeyId"]]


def test_a_stray_second_key_stops_the_rotation_before_anything_is_made(aws: dict[str, Any]) -> None:
    stray = aws["iam"].create_access_key(UserName="l0001")["AccessKey"]["AccessKeyId"]
    r = access_key_rotation("ops", aws["secrets"], ENDPOINT, aws["ledger"], wait=lambda _: None)
    out = rotate(r, aws["ledger"])
    assert out.outcome == "rolled-back" and stray in out.error
    assert len(aws["iam"].list_access_keys(UserName="l0001")["AccessKeyMetadata"]) == 2


def test_a_plaintext_credentials_file_is_refused_and_named(aws: dict[str, Any]) -> None:
    aws["creds"].write_text("[ops]\naws_access_key_id = AKIA0\naws_secret_access_key = x\n")
    with pytest.raises(StepFailed, match=f"{aws['creds']}: a plaintext secret"):
        access_key_rotation("ops", aws["secrets"], ENDPOINT, aws["ledger"])


def test_the_backup_keys_automatic_rotation_must_be_on(aws: dict[str, Any]) -> None:
    kms = boto3.client("kms", region_name="ap-northeast-1", aws_access_key_id="x",
                       aws_secret_access_key="x")  # fmt: skip
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    with pytest.raises(StepFailed, match="automatic key rotation is off"):
        check_kms_rotation(ENDPOINT, key, pair)
    kms.enable_key_rotation(KeyId=key)
    assert "automatic rotation on" in check_kms_rotation(ENDPOINT, key, pair)
