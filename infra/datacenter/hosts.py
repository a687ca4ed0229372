"""DataCenterHosts: one instance per data-center host in the config, and a role per host role.

No public IP anywhere; IMDSv2 only with a hop limit of 1 (a container on the host cannot reach
the metadata service); EBS encrypted with the environment's storage key; security groups from
the flow policy; user data that carries nothing but the host's name; termination protection on
the database. The backup writer (the db role) may put and read objects in the backup bucket and
is explicitly denied every delete and every change to the bucket's protection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.common import policy_json, service_trust, tags
from infra.config import BACKUP_WRITER_ROLES, ROLE_ZONES, StackConfig
from infra.network.flows import sg_rules

# Debian 12 images published by Debian (account 136693071363).
DEBIAN_OWNER = "136693071363"
DEBIAN_NAME = "debian-12-amd64-*"
BACKUP_DENIED = [
    "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket", "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy", "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning", "s3:BypassGovernanceRetention", "s3:PutObjectLegalHold",
]  # fmt: skip
# A writer may lock its objects (COMPLIANCE only ever lengthens), but not for longer than this:
# a compromised host must not be able to pin storage for decades (denial of wallet).
BACKUP_MAX_LOCK_DAYS = 400


@dataclass
class DataCenterHostsArgs:
    config: StackConfig
    vpc_id: pulumi.Input[str]
    subnet_ids: dict[str, list[pulumi.Input[str]]]  # zone -> one subnet per AZ
    storage_key_arn: pulumi.Input[str]
    backup_bucket_arn: pulumi.Input[str]
    s3_prefix_list_id: pulumi.Input[str]  # where S3 is, behind the gateway endpoint


def backup_writer_policy(bucket_arn: str, key_arn: str, prefix: str) -> str:
    """Add and read backups under `prefix/`, extend their locks; never delete or unprotect."""
    objects = f"{bucket_arn}/{prefix}/*"
    return policy_json(
        {"Sid": "WriteAndReadOwnBackups", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion",
                    "s3:GetObjectRetention", "s3:PutObjectRetention"],
         "Resource": objects},
        {"Sid": "ListOwnPrefix", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:ListBucketVersions"], "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"]}}},
        {"Sid": "CheckTheLockConfiguration", "Effect": "Allow",
         "Action": ["s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning"],
         "Resource": bucket_arn},
        {"Sid": "UseTheBackupKey", "Effect": "Allow",
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key_arn},
        {"Sid": "NeverDeleteOrUnprotect", "Effect": "Deny", "Action": BACKUP_DENIED,
         "Resource": [bucket_arn, f"{bucket_arn}/*"]},
        {"Sid": "OnlyComplianceLocks", "Effect": "Deny",
         "Action": ["s3:PutObject", "s3:PutObjectRetention"], "Resource": objects,
         "Condition": {"StringNotEquals": {"s3:object-lock-mode": "COMPLIANCE"}}},
        {"Sid": "NoLocksBeyondTheCap", "Effect": "Deny",
         "Action": ["s3:PutObject", "s3:PutObjectRetention"], "Resource": objects,
         "Condition": {"NumericGreaterThan": {
             "s3:object-lock-remaining-retention-days": str(BACKUP_MAX_LOCK_DAYS)}}},
    )  # fmt: skip


class DataCenterHosts(pulumi.ComponentResource):
    instances: dict[str, aws.ec2.Instance]
    roles: dict[str, aws.iam.Role]
    security_groups: dict[str, aws.ec2.SecurityGroup]

    def __init__(
        self, name: str, args: DataCenterHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("claims-dc:datacenter:DataCenterHosts", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=[DEBIAN_OWNER],
            filters=[{"name": "name", "values": [DEBIAN_NAME]},
                     {"name": "architecture", "values": ["x86_64"]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )  # fmt: skip
        roles_in_use = sorted({h.role for h in config.hosts.values() if not h.stand_in})
        self.roles, profiles, self.security_groups = {}, {}, {}
        for role in roles_in_use:
            iam_role = aws.iam.Role(
                f"{name}-{role}-role",
                assume_role_policy=service_trust("ec2.amazonaws.com"),
                tags=tags(config, f"{role}-role"),
                opts=child,
            )
            self.roles[role] = iam_role
            # Session Manager through the VPC endpoints, instead of SSH from anywhere.
            aws.iam.RolePolicyAttachment(
                f"{name}-{role}-ssm",
                role=iam_role.name,
                policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                opts=child,
            )
            if role in BACKUP_WRITER_ROLES:
                aws.iam.RolePolicy(
                    f"{name}-{role}-backup-writer",
                    role=iam_role.id,
                    policy=pulumi.Output.all(
                        args.backup_bucket_arn, args.storage_key_arn, role
                    ).apply(lambda a: backup_writer_policy(a[0], a[1], a[2])),
                    opts=child,
                )
            profiles[role] = aws.iam.InstanceProfile(
                f"{name}-{role}-profile", role=iam_role.name, opts=child
            )
            self.security_groups[role] = self._security_group(name, role, args, child)

        self.instances = {}
        for host in config.hosts.values():
            if host.stand_in:
                continue
            zone = config.zones[host.zone]
            subnet_index = zone.subnet_of(host.address)
            self.instances[host.name] = aws.ec2.Instance(
                f"{name}-{host.name}",
                ami=ami.id,
                instance_type=host.instance_type,
                subnet_id=args.subnet_ids[host.zone][subnet_index],
                private_ip=str(host.address),
                associate_public_ip_address=False,
                vpc_security_group_ids=[self.security_groups[host.role].id],
                iam_instance_profile=profiles[host.role].name,
                metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                                  "http_put_response_hop_limit": 1},
                root_block_device={"encrypted": True, "kms_key_id": args.storage_key_arn,
                                   "volume_type": "gp3", "volume_size": 40},
                disable_api_termination=host.role == "db",
                user_data=f"#cloud-config\nhostname: {host.name}\n",
                tags=tags(config, host.name),
                opts=pulumi.ResourceOptions(parent=self, protect=host.role == "db"),
            )  # fmt: skip
        self.register_outputs(
            {
                "instance_ids": {n: i.id for n, i in self.instances.items()},
                "private_ips": {n: i.private_ip for n, i in self.instances.items()},
                "role_arns": {r: role.arn for r, role in self.roles.items()},
            }
        )

    def _security_group(
        self, name: str, role: str, args: DataCenterHostsArgs, child: pulumi.ResourceOptions
    ) -> aws.ec2.SecurityGroup:
        config = args.config
        zone = ROLE_ZONES[role]
        group = aws.ec2.SecurityGroup(
            f"{name}-{role}-sg", vpc_id=args.vpc_id,
            description=f"{role} hosts: exactly the flows of zone {zone}",
            ingress=[], egress=[], tags=tags(config, f"{role}-sg"), opts=child,
        )  # fmt: skip
        for i, rule in enumerate(sg_rules(config, zone)):
            common: dict[str, Any] = {
                "security_group_id": group.id, "cidr_ipv4": rule.cidr, "ip_protocol": rule.protocol,
                "from_port": rule.port, "to_port": rule.port, "description": rule.why[:255],
                "opts": child,
            }  # fmt: skip
            if rule.ingress:
                aws.vpc.SecurityGroupIngressRule(f"{name}-{role}-sg-in-{i}", **common)
            else:
                aws.vpc.SecurityGroupEgressRule(f"{name}-{role}-sg-out-{i}", **common)
                if rule.cidr == str(config.zones["endpoints"].cidr) and rule.port == 443:
                    # S3 answers on its public addresses, reached only via the gateway endpoint.
                    aws.vpc.SecurityGroupEgressRule(
                        f"{name}-{role}-sg-out-s3", security_group_id=group.id,
                        prefix_list_id=args.s3_prefix_list_id, ip_protocol="tcp",
                        from_port=443, to_port=443, description="S3 via the gateway endpoint",
                        opts=child,
                    )  # fmt: skip
        return group
