"""The lab apply refuses a type it neither creates nor knowingly skips."""

from __future__ import annotations

import json

import boto3
import pulumi
import pytest

from lab.apply import SKIPPED, MotoApplyMocks, UnsupportedTypeError


def _mocks() -> MotoApplyMocks:
    # No call is made in these tests: the endpoint is never contacted.
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="ap-northeast-1"
    )
    return MotoApplyMocks(session, "https://lab.invalid", False, "ap-northeast-1")


def test_unknown_type_fails_naming_it() -> None:
    args = pulumi.runtime.MockResourceArgs(
        typ="aws:rds/instance:Instance",
        name="db",
        inputs={},
        provider="",
        resource_id="",
        custom=True,
    )
    with pytest.raises(UnsupportedTypeError, match="aws:rds/instance:Instance"):
        _mocks().new_resource(args)


def test_skipped_types_are_recorded_with_the_reason() -> None:
    mocks = _mocks()
    args = pulumi.runtime.MockResourceArgs(
        typ="aws:ec2/vpnConnection:VpnConnection",
        name="lgwan-vpn",
        inputs={"type": "ipsec.1"},
        provider="",
        resource_id="",
        custom=True,
    )
    resource_id, _ = mocks.new_resource(args)
    assert resource_id == "lgwan-vpn-not-in-lab"
    assert mocks.record.skipped == {
        "aws:ec2/vpnConnection:VpnConnection lgwan-vpn": SKIPPED[
            "aws:ec2/vpnConnection:VpnConnection"
        ]
    }


def test_an_unknown_invoke_fails() -> None:
    args = pulumi.runtime.MockCallArgs(
        token="aws:rds/getInstance:getInstance", args={}, provider=""
    )
    with pytest.raises(UnsupportedTypeError, match="aws:rds/getInstance:getInstance"):
        _mocks().call(args)


def test_a_policy_whose_deny_moto_cannot_evaluate_is_named() -> None:
    from infra.datacenter.backup import backup_bucket_policy
    from lab.apply import unsupplied_condition_keys

    arn = "arn:aws:s3:::claims-dc-x-backup"
    policy = backup_bucket_policy(arn, "vpce-1", "arn:aws:iam::1:role/break-glass")
    assert unsupplied_condition_keys(policy) == [
        "aws:PrincipalArn",
        "aws:SecureTransport",
        "aws:sourceVpce",
    ]
    allow_only = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"{arn}/*",
                    "Condition": {"StringEquals": {"aws:sourceVpce": "v"}},
                }
            ]
        }
    )
    assert unsupplied_condition_keys(allow_only) == []
