"""BackupStorage: where the daily backups live, immutable for the configured days.

Only requests through the data center's S3 gateway endpoint are accepted, apart from an explicit
break-glass role (assumable only with MFA) for the day the endpoint itself is broken.
Noncurrent versions expire after the lock, current ones move to a colder class after N days,
and an optional replica in Osaka has its own key.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.common import policy_json, service_trust, tags
from infra.config import StackConfig
from infra.datacenter.storage import deny_insecure_transport, locked_bucket


@dataclass
class BackupStorageArgs:
    config: StackConfig
    account_id: str
    storage_key_arn: pulumi.Input[str]
    s3_endpoint_id: pulumi.Input[str]


def backup_bucket_policy(bucket_arn: str, endpoint_id: str, break_glass_arn: str) -> str:
    return policy_json(
        deny_insecure_transport(bucket_arn),
        {
            "Sid": "DenyOutsideTheDataCenter",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {
                "StringNotEquals": {"aws:sourceVpce": endpoint_id},
                "ArnNotEquals": {"aws:PrincipalArn": break_glass_arn},
            },
        },
    )


def backup_maintenance_policy(bucket_arn: str, key_arn: str) -> str:
    """`ops/backup.py prune`: forget, delete what no kept snapshot needs once its lock has
    expired (S3 refuses earlier, whoever asks), extend the locks of what is kept."""
    return policy_json(
        {"Sid": "PruneBackups", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject",
                    "s3:DeleteObjectVersion", "s3:GetObjectRetention", "s3:PutObjectRetention"],
         "Resource": f"{bucket_arn}/*"},
        {"Sid": "ListAndCheck", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning",
                    "s3:GetBucketObjectLockConfiguration"], "Resource": bucket_arn},
        {"Sid": "UseTheBackupKey", "Effect": "Allow",
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key_arn},
        {"Sid": "NeverUnprotect", "Effect": "Deny",
         "Action": ["s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration",
                    "s3:PutBucketVersioning", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                    "s3:PutLifecycleConfiguration", "s3:DeleteBucket"],
         "Resource": [bucket_arn, f"{bucket_arn}/*"]},
    )  # fmt: skip


class BackupStorage(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    break_glass_role: aws.iam.Role
    maintenance_role: aws.iam.Role
    replica: aws.s3.Bucket | None

    def __init__(
        self, name: str, args: BackupStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("claims-dc:datacenter:BackupStorage", name, None, opts)
        config, backup = args.config, args.config.backup
        child = pulumi.ResourceOptions(parent=self)
        base = f"claims-dc-{config.municipality.code}-{config.stack}"

        account_root = f"arn:aws:iam::{args.account_id}:root"

        def operator_role(purpose: str) -> aws.iam.Role:
            """A role people in this account assume, only with MFA, for an hour at most."""
            return aws.iam.Role(
                f"{name}-{purpose}",
                name=f"{base}-backup-{purpose}",
                assume_role_policy=policy_json(
                    {"Effect": "Allow", "Principal": {"AWS": account_root},
                     "Action": "sts:AssumeRole",
                     "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}
                ),
                max_session_duration=3600,
                tags=tags(config, f"backup-{purpose}"),
                opts=child,
            )  # fmt: skip

        self.break_glass_role = operator_role("break-glass")
        # Operators hold this role to prune; the hosts' roles can never delete.
        self.maintenance_role = operator_role("maintenance")
        self.bucket = locked_bucket(
            f"{name}-bucket",
            bucket_name=f"{base}-backup-{args.account_id}",
            key_arn=args.storage_key_arn,
            retention_days=backup.retention_days,
            tags=tags(config, "backup"),
            parent=self,
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.all(
                self.bucket.arn, args.s3_endpoint_id, self.break_glass_role.arn
            ).apply(lambda a: backup_bucket_policy(a[0], a[1], a[2])),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-maintenance-policy",
            role=self.maintenance_role.id,
            policy=pulumi.Output.all(self.bucket.arn, args.storage_key_arn).apply(
                lambda a: backup_maintenance_policy(a[0], a[1])
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[{
                "id": "age-and-expire",
                "status": "Enabled",
                "filter": {},
                "transitions": [{"days": backup.cold_after_days, "storage_class": "STANDARD_IA"}],
                "noncurrent_version_transitions": [
                    {"noncurrent_days": backup.cold_after_days, "storage_class": "STANDARD_IA"}],
                "noncurrent_version_expiration": {"noncurrent_days": backup.noncurrent_expire_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }],
            opts=child,
        )  # fmt: skip
        self.replica = None
        if backup.replica_region:
            self.replica = self._replica(name, base, args, backup.replica_region)
        self.register_outputs(
            {"bucket": self.bucket.bucket, "bucket_arn": self.bucket.arn,
             "break_glass_role_arn": self.break_glass_role.arn,
             "maintenance_role_arn": self.maintenance_role.arn}
        )  # fmt: skip

    def _replica(self, name: str, base: str, args: BackupStorageArgs, region: str) -> aws.s3.Bucket:
        config = args.config
        provider = aws.Provider(
            f"{name}-{region}", region=region, opts=pulumi.ResourceOptions(parent=self)
        )
        in_region = pulumi.ResourceOptions(parent=self, provider=provider)
        key = aws.kms.Key(
            f"{name}-replica-key",
            description=f"claims-dc {config.stack}: backup replica in {region}",
            enable_key_rotation=True, deletion_window_in_days=30,
            tags=tags(config, "replica-key"),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, protect=True),
        )  # fmt: skip
        replica = locked_bucket(
            f"{name}-replica",
            bucket_name=f"{base}-backup-replica-{args.account_id}",
            key_arn=key.arn,
            retention_days=config.backup.retention_days,
            tags=tags(config, "backup-replica"),
            parent=self,
            provider=provider,
        )
        aws.s3.BucketPolicy(
            f"{name}-replica-policy", bucket=replica.id,
            policy=replica.arn.apply(lambda arn: policy_json(deny_insecure_transport(arn))),
            opts=in_region,
        )  # fmt: skip
        role = aws.iam.Role(
            f"{name}-replication-role",
            assume_role_policy=service_trust("s3.amazonaws.com"),
            tags=tags(config, "replication-role"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-replication",
            role=role.id,
            policy=pulumi.Output.all(self.bucket.arn, replica.arn, args.storage_key_arn,
                                     key.arn).apply(
                lambda a: policy_json(
                    {"Effect": "Allow", "Resource": [a[0], f"{a[0]}/*"],
                     "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket",
                                "s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                                "s3:GetObjectRetention", "s3:GetObjectVersionTagging"]},
                    {"Effect": "Allow", "Resource": f"{a[1]}/*",
                     "Action": ["s3:ReplicateObject", "s3:ReplicateTags"]},
                    {"Effect": "Allow", "Resource": a[2], "Action": "kms:Decrypt"},
                    {"Effect": "Allow", "Resource": a[3], "Action": "kms:Encrypt"},
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        aws.s3.BucketReplicationConfig(
            f"{name}-replication-config",
            bucket=self.bucket.id,
            role=role.arn,
            rules=[{
                "id": "to-osaka", "status": "Enabled", "filter": {},
                "delete_marker_replication": {"status": "Disabled"},
                "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
                "destination": {"bucket": replica.arn,
                                "encryption_configuration": {"replica_kms_key_id": key.arn}},
            }],
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        return replica
