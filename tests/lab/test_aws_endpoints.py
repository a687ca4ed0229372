"""The AWS endpoints: a real S3/KMS/IAM API (moto) behind TLS in the endpoints zone."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from lab import podman as pm
from lab.lab import UpReport
from lab.plan import LabPlan

pytestmark = pytest.mark.lab

FETCH = r"""
import ssl, sys, urllib.request
ctx = ssl.create_default_context()
with urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10) as r:
    print(r.status)
"""


def test_control_node_uses_the_api_over_verified_tls(lab_up: UpReport) -> None:
    info = json.loads((Path(lab_up.state_dir) / "lab.json").read_text())
    session = boto3.session.Session(
        aws_access_key_id="lab", aws_secret_access_key="lab", region_name="ap-northeast-1"
    )
    s3 = session.client("s3", endpoint_url=info["endpoint_url"], verify=info["ca_cert"])
    kms = session.client("kms", endpoint_url=info["endpoint_url"], verify=info["ca_cert"])
    key = kms.create_key(Description="lab probe")["KeyMetadata"]["KeyId"]
    bucket = "claims-dc-lab-probe"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
    )
    try:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key
        )
        head = s3.head_object(Bucket=bucket, Key="k")
        assert head["ServerSideEncryption"] == "aws:kms"
    finally:
        s3.delete_object(Bucket=bucket, Key="k")
        s3.delete_bucket(Bucket=bucket)


def test_data_center_hosts_reach_the_endpoint_and_trust_the_lab_ca(
    lab_up: UpReport, lab_plan: LabPlan
) -> None:
    for name in ("app-1", "db-1", "intake-1", "bastion-1"):
        host = lab_plan.host(name)
        out = pm.exec_in(host.container, ["python3", "-c", FETCH, f"{lab_plan.endpoint_url}/"])
        assert out.stdout.strip() == "200", name


def test_the_endpoint_refuses_plain_http(lab_up: UpReport, lab_plan: LabPlan) -> None:
    host = lab_plan.host("app-1")
    # Plain HTTP to the endpoint's only port is turned away by the TLS server itself.
    plain = pm.exec_in(
        host.container,
        ["python3", "-c", FETCH, f"http://{lab_plan.endpoint_host().address}:443/"],
        check=False,
    )
    assert plain.returncode != 0
    assert "HTTP Error 400" in plain.stderr
