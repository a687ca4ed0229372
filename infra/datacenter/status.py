"""StatusStore: where the environment's hosts publish their operational state for the fleet
board (ops/status.py writes and reads it).

One bucket, shaped like the backup store (versioned, Object Lock COMPLIANCE, SSE-KMS, TLS only):
a status once written cannot be rewritten or removed within the lock, so a history that looks
better than it was cannot be made up afterwards. Each host role writes only under
`status/<role>/`, which the bucket policy also refuses to every other principal. A fleet-reader
role, assumable from the operations account only with the stack's external ID, reads
`status/` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.common import policy_json, tags
from infra.config import StackConfig
from infra.datacenter.storage import deny_insecure_transport, locked_bucket

PREFIX = "status"
# Written by the operators' control node (the rotation ledger lives there), not by a host.
OPERATIONS = "operations"


@dataclass
class StatusStoreArgs:
    config: StackConfig
    account_id: str
    storage_key_arn: pulumi.Input[str]
    host_roles: dict[str, aws.iam.Role]  # host role -> its IAM role


def status_bucket_policy(bucket_arn: str, writers: dict[str, str]) -> str:
    """TLS only; `status/<role>/` is written by that role's ARN and by no one else."""
    return policy_json(
        deny_insecure_transport(bucket_arn),
        *(
            {"Sid": f"OnlyThe{role.capitalize()}RoleWritesItsStatus", "Effect": "Deny",
             "Principal": "*", "Action": "s3:PutObject",
             "Resource": f"{bucket_arn}/{PREFIX}/{role}/*",
             "Condition": {"ArnNotEquals": {"aws:PrincipalArn": arn}}}
            for role, arn in sorted(writers.items())
        ),
    )  # fmt: skip


def status_writer_policy(bucket_arn: str, key_arn: str, role: str) -> str:
    return policy_json(
        {"Sid": "WriteOwnStatus", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": f"{bucket_arn}/{PREFIX}/{role}/*"},
        {"Sid": "EncryptWithTheStorageKey", "Effect": "Allow",
         "Action": "kms:GenerateDataKey", "Resource": key_arn},
    )  # fmt: skip


def fleet_reader_trust(operations_account_id: str, external_id: str) -> str:
    return policy_json(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{operations_account_id}:root"},
         "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}
    )  # fmt: skip


def fleet_reader_policy(bucket_arn: str, key_arn: str, region: str) -> str:
    """Read `status/` and nothing else: no other prefix, no other bucket, no write."""
    return policy_json(
        {"Sid": "ReadStatus", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"{bucket_arn}/{PREFIX}/*"},
        {"Sid": "ListStatus", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{PREFIX}/", f"{PREFIX}/*"]}}},
        {"Sid": "DecryptThroughS3Only", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}},
    )  # fmt: skip


class StatusStore(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    fleet_reader: aws.iam.Role | None

    def __init__(
        self, name: str, args: StatusStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("claims-dc:datacenter:StatusStore", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        retention = config.backup.retention_days
        self.bucket = locked_bucket(
            f"{name}-bucket",
            bucket_name=config.status_bucket(args.account_id),
            key_arn=args.storage_key_arn,
            retention_days=retention,
            tags=tags(config, "status"),
            parent=self,
        )
        role_arns = {role: r.arn for role, r in args.host_roles.items()}
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, role_arns).apply(
                lambda a: status_bucket_policy(a[0], a[1])
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[{"id": "expire-old-status", "status": "Enabled", "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": retention + 1},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}],
            opts=child,
        )  # fmt: skip
        for role, iam_role in sorted(args.host_roles.items()):
            aws.iam.RolePolicy(
                f"{name}-{role}-writer",
                role=iam_role.id,
                policy=pulumi.Output.all(self.bucket.arn, args.storage_key_arn, role).apply(
                    lambda a: status_writer_policy(a[0], a[1], a[2])
                ),
                opts=child,
            )
        self.fleet_reader = None
        if config.fleet_reader is not None:
            reader = config.fleet_reader
            self.fleet_reader = aws.iam.Role(
                f"{name}-fleet-reader",
                name=config.fleet_reader_role,
                assume_role_policy=fleet_reader_trust(
                    reader.operations_account_id, reader.external_id
                ),
                max_session_duration=3600,
                tags=tags(config, "fleet-reader"),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-fleet-reader-policy",
                role=self.fleet_reader.id,
                policy=pulumi.Output.all(self.bucket.arn, args.storage_key_arn).apply(
                    lambda a: fleet_reader_policy(a[0], a[1], config.region)
                ),
                opts=child,
            )
        self.register_outputs(
            {"bucket": self.bucket.bucket,
             "fleet_reader_role_arn": self.fleet_reader.arn if self.fleet_reader else None}
        )  # fmt: skip
