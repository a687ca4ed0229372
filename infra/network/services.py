"""The AWS services a data-center VPC may reach through a VPC endpoint: the one allow-list.

A VPC endpoint is a door out of the closed segment. To an AWS service of the stack's own region
it leads to AWS's network, which the closed-network proof accepts; to any other service (a
`com.amazonaws.vpce.<region>.vpce-svc-...` PrivateLink service, a marketplace or partner
service, a Gateway Load Balancer's appliances) it leads to a network the proof cannot see, which
may be a proxy to the internet. The program, the proof and the policy pack all read this list;
nothing else names AWS services.

Each entry names the service, the endpoint type, and the AWS page that lists it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRIVATELINK_SERVICES = (
    "https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html"
)
GATEWAY_SERVICES = "https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html"


@dataclass(frozen=True)
class AwsService:
    service: str  # the last part of com.amazonaws.<region>.<service>
    endpoint_type: str  # Interface or Gateway
    purpose: str
    source: str

    def name(self, region: str) -> str:
        return f"com.amazonaws.{region}.{self.service}"


AWS_SERVICES: tuple[AwsService, ...] = (
    AwsService("s3", "Gateway", "backup repository", GATEWAY_SERVICES),
    AwsService("dynamodb", "Gateway", "(not used; AWS's other gateway service)", GATEWAY_SERVICES),
    AwsService("kms", "Interface", "encryption keys", PRIVATELINK_SERVICES),
    AwsService("sts", "Interface", "role credentials", PRIVATELINK_SERVICES),
    AwsService("logs", "Interface", "CloudWatch Logs", PRIVATELINK_SERVICES),
    AwsService("ssm", "Interface", "Systems Manager", PRIVATELINK_SERVICES),
    AwsService("ssmmessages", "Interface", "Session Manager channels", PRIVATELINK_SERVICES),
    AwsService("ec2messages", "Interface", "Systems Manager agent", PRIVATELINK_SERVICES),
    AwsService("secretsmanager", "Interface", "Secrets Manager", PRIVATELINK_SERVICES),
    AwsService("monitoring", "Interface", "CloudWatch metrics", PRIVATELINK_SERVICES),
)

BY_SERVICE = {s.service: s for s in AWS_SERVICES}

# What the closed segment declares: one gateway endpoint and these interface endpoints.
GATEWAY_ENDPOINT = "s3"
INTERFACE_ENDPOINTS = ("kms", "sts", "logs", "ssm", "ssmmessages", "ec2messages")

# A name a stack config may list as an accepted exception: PrivateLink or partner services.
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{2,199}$")


def allowed_services(region: str) -> dict[str, AwsService]:
    """Full service name -> service, for the stack's region only."""
    return {s.name(region): s for s in AWS_SERVICES}


def aws_service(name: object, region: str, endpoint_type: object) -> AwsService | None:
    """The AWS service `name` is, if it is one of this region's allowed services of that
    endpoint type (Gateway endpoints are S3 and DynamoDB only; GWLB endpoints are never AWS's)."""
    if not isinstance(name, str):
        return None
    service = allowed_services(region).get(name)
    if service is None or service.endpoint_type != (endpoint_type or "Gateway"):
        return None
    return service
