"""EnvironmentKeys: the environment's customer managed KMS keys, rotation on.

`storage` encrypts EBS volumes and the backups; `logs` encrypts flow logs and the audit trail.
Two keys so that a log reader never holds the key to the claims data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.common import policy_json, tags
from infra.config import StackConfig


@dataclass
class EnvironmentKeysArgs:
    config: StackConfig
    account_id: str


class EnvironmentKeys(pulumi.ComponentResource):
    storage: aws.kms.Key
    logs: aws.kms.Key

    def __init__(
        self, name: str, args: EnvironmentKeysArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("claims-dc:datacenter:EnvironmentKeys", name, None, opts)
        config, account = args.config, args.account_id
        child = pulumi.ResourceOptions(parent=self, protect=True)
        root = {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
        self.storage = aws.kms.Key(
            f"{name}-storage",
            description=f"claims-dc {config.stack}: EBS volumes and backups",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy_json(root),
            tags=tags(config, "storage-key"),
            opts=child,
        )
        service_logs = {
            "Sid": "CloudWatchLogsAndCloudTrailEncrypt",
            "Effect": "Allow",
            "Principal": {
                "Service": [f"logs.{config.region}.amazonaws.com", "cloudtrail.amazonaws.com"]
            },
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
        self.logs = aws.kms.Key(
            f"{name}-logs",
            description=f"claims-dc {config.stack}: flow logs and audit trail",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy_json(root, service_logs),
            tags=tags(config, "logs-key"),
            opts=child,
        )
        for key_name, key in (("storage", self.storage), ("logs", self.logs)):
            aws.kms.Alias(
                f"{name}-{key_name}-alias",
                name=f"alias/claims-dc-{config.stack}-{key_name}",
                target_key_id=key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"storage_key_arn": self.storage.arn, "logs_key_arn": self.logs.arn})
