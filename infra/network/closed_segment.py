"""ClosedSegment: the data center's VPC, closed by construction.

Private subnets per data-center zone in every configured AZ, one route table per zone with no
route out, NACLs and the endpoint security group derived from the flow policy, the default
security group emptied, the AWS services reached only through VPC endpoints, and every flow
logged. No internet, egress-only or NAT gateway is ever declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.common import policy_json, service_trust, tags
from infra.config import DATACENTER_ZONES, StackConfig
from infra.network.flows import endpoint_clients, nacl_rules
from infra.network.services import BY_SERVICE, GATEWAY_ENDPOINT, INTERFACE_ENDPOINTS


@dataclass
class ClosedSegmentArgs:
    config: StackConfig
    logs_key_arn: pulumi.Input[str]


class ClosedSegment(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    subnets: dict[str, list[aws.ec2.Subnet]]
    route_tables: dict[str, aws.ec2.RouteTable]
    endpoint_security_group: aws.ec2.SecurityGroup
    s3_endpoint: aws.ec2.VpcEndpoint
    interface_endpoints: dict[str, aws.ec2.VpcEndpoint]

    def __init__(
        self, name: str, args: ClosedSegmentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("claims-dc:network:ClosedSegment", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(config.vpc_cidr),
            enable_dns_support=True,
            enable_dns_hostnames=True,  # needed for the interface endpoints' private DNS
            tags=tags(config, "vpc"),
            opts=child,
        )
        # Nothing may use the default security group: it is left with no rules at all.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[],
            tags=tags(config, "default-sg-unused"), opts=child,
        )  # fmt: skip

        s3_prefixes = aws.ec2.get_prefix_list(
            name=f"com.amazonaws.{config.region}.s3", opts=pulumi.InvokeOptions(parent=self)
        )
        s3_cidrs = tuple(sorted(s3_prefixes.cidr_blocks or ()))
        self.subnets, self.route_tables = {}, {}
        for zone_name in DATACENTER_ZONES:
            self.subnets[zone_name], self.route_tables[zone_name] = self._zone(
                name, zone_name, config, child
            )
            self._filters(name, zone_name, config, s3_cidrs, child)
        self._endpoints(name, config, child)
        self._flow_logs(name, config, args.logs_key_arn, child)
        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "subnet_ids": {z: [s.id for s in subs] for z, subs in self.subnets.items()},
                "route_table_ids": {z: t.id for z, t in self.route_tables.items()},
                "s3_endpoint_id": self.s3_endpoint.id,
            }
        )

    def _zone(
        self, name: str, zone_name: str, config: StackConfig, child: pulumi.ResourceOptions
    ) -> tuple[list[aws.ec2.Subnet], aws.ec2.RouteTable]:
        """A zone's subnet in every AZ and its one route table."""
        zone = config.zones[zone_name]
        subnets = [
            aws.ec2.Subnet(
                f"{name}-{zone_name}-{az}",
                vpc_id=self.vpc.id,
                cidr_block=str(cidr),
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags=tags(config, f"{zone_name}-{az}"),
                opts=child,
            )
            for az, cidr in zip(config.availability_zones, zone.subnets, strict=True)
        ]
        # Only the VPC's local route, plus whatever routes a line or endpoint adds for it.
        table = aws.ec2.RouteTable(
            f"{name}-{zone_name}-rt", vpc_id=self.vpc.id,
            tags=tags(config, f"{zone_name}-rt"), opts=child,
        )  # fmt: skip
        for i, subnet in enumerate(subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-{zone_name}-rta-{i}", subnet_id=subnet.id, route_table_id=table.id,
                opts=child,
            )  # fmt: skip
        return subnets, table

    def _filters(
        self,
        name: str,
        zone_name: str,
        config: StackConfig,
        s3_cidrs: tuple[str, ...],
        child: pulumi.ResourceOptions,
    ) -> None:
        """The zone's NACL: the flow policy's rules, both directions, and nothing else."""
        acl = aws.ec2.NetworkAcl(
            f"{name}-{zone_name}-nacl",
            vpc_id=self.vpc.id,
            subnet_ids=[s.id for s in self.subnets[zone_name]],
            tags=tags(config, f"{zone_name}-nacl"),
            opts=child,
        )
        for rule in nacl_rules(config, zone_name, s3_cidrs):
            direction = "out" if rule.egress else "in"
            aws.ec2.NetworkAclRule(
                f"{name}-{zone_name}-nacl-{direction}-{rule.rule_number}",
                network_acl_id=acl.id,
                egress=rule.egress,
                rule_number=rule.rule_number,
                rule_action="allow",
                protocol=rule.protocol,
                cidr_block=rule.cidr,
                from_port=rule.from_port,
                to_port=rule.to_port,
                opts=child,
            )

    def _endpoints(self, name: str, config: StackConfig, child: pulumi.ResourceOptions) -> None:
        """The S3 gateway endpoint and the interface endpoints, reachable on 443 only from the
        zones the flow policy lets reach them."""
        clients = endpoint_clients(config)
        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=self.vpc.id,
            description="AWS interface endpoints: 443 from the data-center zones only",
            ingress=[],
            egress=[],
            tags=tags(config, "endpoints-sg"),
            opts=child,
        )
        for client in clients:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-sg-from-{client}",
                security_group_id=self.endpoint_security_group.id,
                cidr_ipv4=str(config.zones[client].cidr),
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description=f"{client} reaches the AWS endpoints",
                opts=child,
            )
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=BY_SERVICE[GATEWAY_ENDPOINT].name(config.region),
            vpc_endpoint_type="Gateway",
            route_table_ids=[self.route_tables[z].id for z in clients],
            tags=tags(config, "s3-endpoint"),
            opts=child,
        )
        self.interface_endpoints = {
            service: aws.ec2.VpcEndpoint(
                f"{name}-{service}",
                vpc_id=self.vpc.id,
                service_name=BY_SERVICE[service].name(config.region),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in self.subnets["endpoints"]],
                security_group_ids=[self.endpoint_security_group.id],
                tags=tags(config, f"{service}-endpoint"),
                opts=child,
            )
            for service in INTERFACE_ENDPOINTS
        }

    def _flow_logs(
        self,
        name: str,
        config: StackConfig,
        logs_key_arn: pulumi.Input[str],
        child: pulumi.ResourceOptions,
    ) -> None:
        """Every flow of the VPC, accepted or rejected, to a KMS-encrypted log group."""
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/claims-dc/{config.stack}/vpc-flow-logs",
            retention_in_days=config.log_retention_days,
            kms_key_id=logs_key_arn,
            tags=tags(config, "flow-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=service_trust("vpc-flow-logs.amazonaws.com"),
            tags=tags(config, "flow-logs-role"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-write",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: policy_json(
                    {
                        "Effect": "Allow",
                        "Action": [
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                            "logs:DescribeLogStreams",
                        ],
                        "Resource": [arn, f"{arn}:*"],
                    }
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            tags=tags(config, "flow-log"),
            opts=child,
        )
