"""The lab's AWS side is what the program declares: created by the program itself in moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.config import StackConfig
from lab.apply import SKIPPED
from lab.lab import UpReport

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def aws(lab_up: UpReport) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="lab", aws_secret_access_key="lab", region_name="ap-northeast-1"
    )
    return lambda service: session.client(
        service, endpoint_url=lab_up.endpoint_url, verify=lab_up.ca_cert
    )


def test_backup_bucket_is_as_declared(lab_up: UpReport, aws: Any, lab_config: StackConfig) -> None:
    s3, bucket = aws("s3"), lab_up.aws["backup_bucket"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    retention = lock["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert retention["Days"] == lab_config.backup.retention_days
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(pab.values()) and len(pab) == 4
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"] == lab_up.aws["storage_key_arn"]


def test_the_endpoint_only_policy_is_left_out_of_the_lab_with_its_reason(
    lab_up: UpReport, aws: Any
) -> None:
    # moto evaluates bucket policies but supplies none of aws:sourceVpce, aws:SecureTransport
    # or aws:PrincipalArn, so the policy's Deny would refuse the data center itself. The lab
    # leaves it out, says why, and the router and host firewalls play its part.
    with pytest.raises(ClientError) as excinfo:
        aws("s3").get_bucket_policy(Bucket=lab_up.aws["backup_bucket"])
    assert excinfo.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    reason = lab_up.aws["bucket_policies_not_in_lab"]["backup-policy"]
    assert "aws:sourceVpce" in reason and "moto never supplies" in reason


def test_keys_rotate(lab_up: UpReport, aws: Any) -> None:
    kms = aws("kms")
    for arn in (lab_up.aws["storage_key_arn"], lab_up.aws["logs_key_arn"]):
        assert kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is True


def test_backup_writer_role_never_deletes(lab_up: UpReport, aws: Any) -> None:
    iam = aws("iam")
    doc = iam.get_role_policy(RoleName="hosts-db-role", PolicyName="hosts-db-backup-writer")
    statements = doc["PolicyDocument"]["Statement"]
    denied = {a for st in statements if st["Effect"] == "Deny" for a in st["Action"]}
    assert "s3:DeleteObjectVersion" in denied
    # The bastion backs up nothing: its one policy writes its own status for the fleet board.
    assert iam.list_role_policies(RoleName="hosts-bastion-role")["PolicyNames"] == [
        "status-bastion-writer"]  # fmt: skip


def test_network_and_hosts_as_declared(lab_up: UpReport, aws: Any, lab_config: StackConfig) -> None:
    ec2 = aws("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": [str(lab_config.vpc_cidr)]}])
    assert len(vpcs["Vpcs"]) == 1  # idempotent: `up` ran more than once against this moto
    vpc_id = vpcs["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert len(subnets) == 5 * len(lab_config.availability_zones)
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    reservations = ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
    want = {str(h.address) for h in lab_config.hosts.values() if not h.stand_in}
    assert {i["PrivateIpAddress"] for i in instances} == want
    assert all(i["MetadataOptions"]["HttpTokens"] == "required" for i in instances)
    assert not any(i.get("PublicIpAddress") for i in instances)
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    app = next(g for g in groups["SecurityGroups"] if g["GroupName"] == "hosts-app-sg")
    ingress = {(p["FromPort"], r["CidrIp"]) for p in app["IpPermissions"] for r in p["IpRanges"]}
    assert ingress == {
        (443, str(lab_config.zones["lgwan"].cidr)),
        (22, str(lab_config.zones["mgmt"].cidr)),
    }
    default = next(g for g in groups["SecurityGroups"] if g["GroupName"] == "default")
    assert default["IpPermissions"] == [] and default["IpPermissionsEgress"] == []


def test_only_the_lines_are_skipped(lab_up: UpReport) -> None:
    record = json.loads((Path(lab_up.state_dir) / "aws.json").read_text())
    assert record["skipped"]
    policies = {k: v for k, v in record["skipped"].items()
                if k.startswith("aws:s3/bucketPolicy:BucketPolicy ")}  # fmt: skip
    others = {k: v for k, v in record["skipped"].items() if k not in policies}
    assert {key.split()[0] for key in others} <= set(SKIPPED)
    assert all("line" in reason for reason in others.values())
    assert set(policies) == {"aws:s3/bucketPolicy:BucketPolicy backup-policy",
                             "aws:s3/bucketPolicy:BucketPolicy audit-policy",
                             "aws:s3/bucketPolicy:BucketPolicy status-policy"}  # fmt: skip
    assert all("moto never supplies" in reason for reason in policies.values())
