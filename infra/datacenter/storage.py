"""Locked buckets: the backup store and the audit-log store share one hardened shape.

Versioning, Object Lock in COMPLIANCE mode (no one, root included, can shorten it), all four
public-access-block flags, ACLs disabled, SSE-KMS with a customer managed key, and a policy
that refuses anything but TLS.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def locked_bucket(
    name: str,
    *,
    bucket_name: pulumi.Input[str],
    key_arn: pulumi.Input[str],
    retention_days: int,
    tags: dict[str, str],
    parent: pulumi.Resource,
    provider: aws.Provider | None = None,
) -> aws.s3.Bucket:
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    bucket = aws.s3.Bucket(
        name,
        bucket=bucket_name,
        object_lock_enabled=True,
        force_destroy=False,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, protect=True),
    )
    aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block", bucket=bucket.id,
        block_public_acls=True, block_public_policy=True,
        ignore_public_acls=True, restrict_public_buckets=True, opts=opts,
    )  # fmt: skip
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership", bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"}, opts=opts,
    )  # fmt: skip
    versioning = aws.s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id,
        versioning_configuration={"status": "Enabled"}, opts=opts,
    )  # fmt: skip
    aws.s3.BucketObjectLockConfiguration(
        f"{name}-object-lock",
        bucket=bucket.id,
        object_lock_enabled="Enabled",
        rule={"default_retention": {"mode": "COMPLIANCE", "days": retention_days}},
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[versioning]),
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {
            "sse_algorithm": "aws:kms", "kms_master_key_id": key_arn},
            "bucket_key_enabled": True}],
        opts=opts,
    )  # fmt: skip
    return bucket
