"""AuditTrail: CloudTrail with log file validation, KMS, into its own locked bucket."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.common import policy_json, tags
from infra.config import StackConfig
from infra.datacenter.storage import deny_insecure_transport, locked_bucket

# How long the trail's own log files cannot be removed: five years.
AUDIT_RETENTION_DAYS = 1827


@dataclass
class AuditTrailArgs:
    config: StackConfig
    account_id: str
    logs_key_arn: pulumi.Input[str]


def audit_bucket_policy(bucket_arn: str, trail_arn: str) -> str:
    source = {"StringEquals": {"aws:SourceArn": trail_arn}}
    return policy_json(
        deny_insecure_transport(bucket_arn),
        {"Sid": "CloudTrailAclCheck", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": bucket_arn, "Condition": source},
        {"Sid": "CloudTrailWrite", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"{bucket_arn}/AWSLogs/*", "Condition": source},
    )  # fmt: skip


class AuditTrail(pulumi.ComponentResource):
    trail: aws.cloudtrail.Trail
    bucket: aws.s3.Bucket

    def __init__(
        self, name: str, args: AuditTrailArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("claims-dc:datacenter:AuditTrail", name, None, opts)
        config = args.config
        trail_name = f"claims-dc-{config.stack}"
        trail_arn = f"arn:aws:cloudtrail:{config.region}:{args.account_id}:trail/{trail_name}"
        self.bucket = locked_bucket(
            f"{name}-bucket",
            bucket_name=f"claims-dc-{config.municipality.code}-{config.stack}-audit-"
            f"{args.account_id}",
            key_arn=args.logs_key_arn,
            retention_days=AUDIT_RETENTION_DAYS,
            tags=tags(config, "audit"),
            parent=self,
        )
        policy = aws.s3.BucketPolicy(
            f"{name}-policy", bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: audit_bucket_policy(arn, trail_arn)),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=trail_name,
            s3_bucket_name=self.bucket.bucket,
            enable_log_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            kms_key_id=args.logs_key_arn,
            tags=tags(config, "trail"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy], protect=True),
        )
        self.register_outputs({"trail_arn": self.trail.arn, "bucket": self.bucket.bucket})
