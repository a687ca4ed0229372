"""The claims-dc policy rules: plain functions over resource properties.

The same functions run in two places: inside the Pulumi policy pack (`pulumi preview
--policy-pack infra/policy`) through a thin adapter, and in our tests and `claims-dc check`
on the resources recorded under mocks. Properties are the engine's camelCase input names.

Each rule has a stable ID, a severity, the fix, and the rule of checkov or Trivy it corresponds
to, where one exists ("claims-dc" where neither has one).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.config import ALLOWED_REGIONS, SECRET_KEY_NAME
from infra.network.services import aws_service

OPEN_CIDRS = ("0.0.0.0/0", "::/0")
DEFAULT_MIN_RETENTION_DAYS = 30


@dataclass(frozen=True)
class Res:
    """One declared resource: its type, name, input properties, and which resources each
    property refers to (names)."""

    type: str
    name: str
    props: Mapping[str, Any]
    refs: Mapping[str, frozenset[str]] = field(default_factory=dict)


# Where a closed network's routes may point: private IPv4 (RFC 1918), shared address space
# (RFC 6598) and IPv6 unique local addresses. Anything else is someone's public address space.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")


@dataclass(frozen=True)
class Settings:
    min_retention_days: int = DEFAULT_MIN_RETENTION_DAYS
    allowed_regions: tuple[str, ...] = ALLOWED_REGIONS
    region: str | None = None  # the stack's region; None: any allowed region
    # Endpoint services other than AWS's that the stack config accepts, with the reason.
    endpoint_exceptions: Mapping[str, str] = field(default_factory=dict)
    private_ranges: tuple[str, ...] = PRIVATE_RANGES


ResourceCheck = Callable[[Res, Settings], list[str]]
StackCheck = Callable[[Sequence[Res], Settings], list[tuple[str, str]]]
# Over the stack settings file itself (Pulumi.<stack>.yaml as a mapping): what a policy pack
# cannot see, since the engine hands it resources, never the stack's config.
FileCheck = Callable[[Mapping[str, Any], Settings], list[tuple[str, str]]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # low | medium | high | critical
    title: str
    fix: str
    corresponds_to: str
    check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    file_check: FileCheck | None = None


def _get(props: Mapping[str, Any], *path: str) -> Any:
    node: Any = props
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# --- network --------------------------------------------------------------------------------

GATEWAYS_OUT = {
    "aws:ec2/internetGateway:InternetGateway": "an internet gateway",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway": "an egress-only gateway",
    "aws:ec2/natGateway:NatGateway": "a NAT gateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment": "an internet gateway",
}


def no_gateway_out(r: Res, s: Settings) -> list[str]:
    if r.type in GATEWAYS_OUT:
        return [f"{r.name} is {GATEWAYS_OUT[r.type]}: nothing may lead to the internet"]
    return []


ROUTE_DESTINATIONS = ("destinationCidrBlock", "cidrBlock", "destinationIpv6CidrBlock",
                      "ipv6CidrBlock")  # fmt: skip


def _routes(r: Res) -> list[Mapping[str, Any]]:
    """The routes a resource declares: a route of a VPC or transit gateway table, or a table's
    inline routes."""
    if r.type in ("aws:ec2/route:Route", "aws:ec2transitgateway/route:Route"):
        return [r.props]
    if r.type in ("aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable"):
        return [x for x in _as_list(r.props.get("routes")) if isinstance(x, Mapping)]
    return []


def no_default_route(r: Res, s: Settings) -> list[str]:
    out = []
    for route in _routes(r):
        for key in ROUTE_DESTINATIONS:
            if route.get(key) in OPEN_CIDRS:
                out.append(f"{r.name} routes {route[key]}: no route may lead everywhere")
    return out


def routes_stay_private(r: Res, s: Settings) -> list[str]:
    """A default route split into halves (0.0.0.0/1 and 128.0.0.0/1), or any route to public
    space, leads where the closed network must not: every destination lies in private space."""
    private = [ipaddress.ip_network(p) for p in s.private_ranges]
    out = []
    for route in _routes(r):
        for key in ROUTE_DESTINATIONS:
            value = route.get(key)
            if value is None or value in OPEN_CIDRS:
                continue  # absent, or CDC-NET-002's
            try:
                net = ipaddress.ip_network(str(value), strict=False)
            except ValueError:
                out.append(f"{r.name} routes {str(value)[:48]!r}, which is not a CIDR")
                continue
            if not any(net.version == p.version and net.subnet_of(p) for p in private):  # type: ignore[arg-type]
                out.append(f"{r.name} routes {net}, which is not private address space")
    return out


def no_prefix_list_route(r: Res, s: Settings) -> list[str]:
    """A route to a prefix list sends whatever the list holds, and a list can change outside the
    program; only a gateway endpoint's AWS service list (added by the endpoint) is routed."""
    if r.type == "aws:ec2transitgateway/prefixListReference:PrefixListReference":
        return [f"{r.name} routes a prefix list through a transit gateway"]
    if r.type == "aws:ec2/managedPrefixList:ManagedPrefixList":
        return [f"{r.name} is a managed prefix list: routes and rules name zone CIDRs instead"]
    return [
        f"{r.name} routes prefix list {route['destinationPrefixListId']}"
        for route in _routes(r)
        if route.get("destinationPrefixListId")
    ]


def endpoint_services(r: Res, s: Settings) -> list[str]:
    """A VPC endpoint leads to the service it names. Only the region's AWS services are known
    ground; a PrivateLink, partner or Gateway Load Balancer service needs the stack config to
    list it with a reason."""
    if r.type != "aws:ec2/vpcEndpoint:VpcEndpoint":
        return []
    name = r.props.get("serviceName")
    kind = r.props.get("vpcEndpointType") or "Gateway"
    regions = (s.region,) if s.region else s.allowed_regions
    if any(aws_service(name, region, kind) for region in regions):
        return []
    if isinstance(name, str) and name in s.endpoint_exceptions:
        return []
    return [f"{r.name} is a {kind} endpoint to {str(name)[:80]!r}, not an AWS service of "
            f"{' or '.join(regions)}, and the stack config does not list it"]  # fmt: skip


DOORS_IN = {
    "aws:ec2clientvpn/endpoint:Endpoint": "a Client VPN endpoint: remote users dial in",
    "aws:ec2clientvpn/networkAssociation:NetworkAssociation": "a Client VPN network association",
    "aws:ec2clientvpn/route:Route": "a Client VPN route",
    "aws:ec2clientvpn/authorizationRule:AuthorizationRule": "a Client VPN authorization rule",
}


def no_foreign_compute_in_subnets(r: Res, s: Settings) -> list[str]:
    """Lambda in a VPC and Client VPN put interfaces AWS operates into the data center's subnets,
    outside the hosts the flow policy names."""
    if r.type in DOORS_IN:
        return [f"{r.name} is {DOORS_IN[r.type]}"]
    if r.type == "aws:lambda/function:Function" and _as_list(
        _get(r.props, "vpcConfig", "subnetIds")
    ):
        return [f"{r.name} is a Lambda function with interfaces in the data center's subnets"]
    return []


def no_public_ip(r: Res, s: Settings) -> list[str]:
    if r.type == "aws:ec2/subnet:Subnet" and r.props.get("mapPublicIpOnLaunch") is True:
        return [f"{r.name} maps public IPs on launch"]
    if r.type == "aws:ec2/instance:Instance" and r.props.get("associatePublicIpAddress") is True:
        return [f"{r.name} gets a public IP"]
    if r.type == "aws:ec2/eip:Eip":
        return [f"{r.name} is an Elastic IP: a public address"]
    if r.type == "aws:ec2/eipAssociation:EipAssociation":
        return [f"{r.name} associates an Elastic IP: a public address"]
    v6 = ("ipv6AddressCount", "ipv6Addresses", "ipv6AddressList", "ipv6AddressListEnabled",
          "assignIpv6AddressOnCreation", "assignGeneratedIpv6CidrBlock",
          "ipv6CidrBlock")  # fmt: skip
    if r.type in ("aws:ec2/instance:Instance", "aws:ec2/networkInterface:NetworkInterface",
                  "aws:ec2/subnet:Subnet", "aws:ec2/vpc:Vpc"):  # fmt: skip
        asked = [k for k in v6 if r.props.get(k) not in (None, False, 0, [], "")]
        if asked:
            return [f"{r.name} sets {', '.join(asked)}: an AWS IPv6 address is a public one"]
    if r.type == "aws:ec2/launchTemplate:LaunchTemplate":
        for nic in _as_list(r.props.get("networkInterfaces")):
            if isinstance(nic, Mapping) and str(nic.get("associatePublicIpAddress")) == "true":
                return [f"{r.name} launches interfaces with a public IP"]
    return []


def _open(values: Iterable[Any]) -> list[str]:
    return [v for v in values if v in OPEN_CIDRS]


def no_open_security_group(r: Res, s: Settings) -> list[str]:
    found: list[str] = []
    if r.type in (
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    ):
        found = _open([r.props.get("cidrIpv4"), r.props.get("cidrIpv6")])
    elif r.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        found = _open(_as_list(r.props.get("cidrBlocks")) + _as_list(r.props.get("ipv6CidrBlocks")))
    elif r.type in (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    ):
        for rule in _as_list(r.props.get("ingress")) + _as_list(r.props.get("egress")):
            if isinstance(rule, Mapping):
                found += _open(
                    _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks"))
                )
    return [f"{r.name} is open to {cidr}" for cidr in found]


def no_open_nacl(r: Res, s: Settings) -> list[str]:
    rules: list[Mapping[str, Any]] = []
    if r.type == "aws:ec2/networkAclRule:NetworkAclRule":
        rules = [r.props]
    elif r.type in ("aws:ec2/networkAcl:NetworkAcl", "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl"):
        rules = [
            x
            for x in _as_list(r.props.get("ingress")) + _as_list(r.props.get("egress"))
            if isinstance(x, Mapping)
        ]
    out = []
    for rule in rules:
        action = rule.get("ruleAction") or rule.get("action")
        if action == "allow":
            for cidr in _open([rule.get("cidrBlock"), rule.get("ipv6CidrBlock")]):
                out.append(f"{r.name} allows {cidr}")
    return out


# --- compute, keys, logs, region -------------------------------------------------------------


def imdsv2_required(r: Res, s: Settings) -> list[str]:
    if r.type not in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
        return []
    if _get(r.props, "metadataOptions", "httpTokens") != "required":
        return [f"{r.name} does not require IMDSv2 (metadataOptions.httpTokens)"]
    return []


def ebs_encrypted_with_cmk(r: Res, s: Settings) -> list[str]:
    devices: list[tuple[str, Any]] = []
    if r.type == "aws:ec2/instance:Instance":
        devices = [("root volume", r.props.get("rootBlockDevice"))]
        devices += [("EBS volume", d) for d in _as_list(r.props.get("ebsBlockDevices"))]
    elif r.type == "aws:ebs/volume:Volume":
        devices = [("volume", r.props)]
    out = []
    for what, dev in devices:
        if not isinstance(dev, Mapping) or dev.get("encrypted") is not True:
            out.append(f"{r.name}: {what} is not encrypted")
        elif not dev.get("kmsKeyId"):
            out.append(f"{r.name}: {what} uses the AWS managed key, not a customer managed key")
    return out


def kms_rotation(r: Res, s: Settings) -> list[str]:
    if r.type != "aws:kms/key:Key":
        return []
    symmetric = r.props.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    if symmetric and r.props.get("enableKeyRotation") is not True:
        return [f"{r.name} does not rotate"]
    return []


def trail_validation(r: Res, s: Settings) -> list[str]:
    if (
        r.type == "aws:cloudtrail/trail:Trail"
        and r.props.get("enableLogFileValidation") is not True
    ):
        return [f"{r.name} does not validate its log files"]
    return []


def allowed_region(r: Res, s: Settings) -> list[str]:
    region = r.props.get("region")
    if region is None or not isinstance(region, str):
        return []
    if region not in s.allowed_regions:
        return [f"{r.name} is in {region}: data stays in {' or '.join(s.allowed_regions)}"]
    return []


# --- stack-level: joined on the bucket (pulumi-aws v7 splits a bucket into resources) ---------


def _by_bucket(resources: Sequence[Res], type_token: str) -> dict[str, list[Res]]:
    """Sub-resources of type `type_token`, keyed by the name of the bucket they configure."""
    out: dict[str, list[Res]] = {}
    for r in resources:
        if r.type == type_token:
            for bucket in r.refs.get("bucket", frozenset()):
                out.setdefault(bucket, []).append(r)
    return out


def _buckets(resources: Sequence[Res]) -> list[Res]:
    return [r for r in resources if r.type == "aws:s3/bucket:Bucket"]


def bucket_public_access_block(resources: Sequence[Res], s: Settings) -> list[tuple[str, str]]:
    blocks = _by_bucket(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    out = []
    for b in _buckets(resources):
        mine = blocks.get(b.name, [])
        if not mine:
            out.append((b.name, f"{b.name} has no public access block"))
            continue
        missing = [f for f in flags if not any(p.props.get(f) is True for p in mine)]
        if missing:
            out.append((b.name, f"{b.name}'s public access block lacks {', '.join(missing)}"))
    return out


def bucket_versioning(resources: Sequence[Res], s: Settings) -> list[tuple[str, str]]:
    versioning = _by_bucket(resources, "aws:s3/bucketVersioning:BucketVersioning")
    out = []
    for b in _buckets(resources):
        enabled = any(
            _get(v.props, "versioningConfiguration", "status") == "Enabled"
            for v in versioning.get(b.name, [])
        )
        if not enabled:
            out.append((b.name, f"{b.name} is not versioned"))
    return out


def bucket_object_lock(resources: Sequence[Res], s: Settings) -> list[tuple[str, str]]:
    locks = _by_bucket(
        resources, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
    )
    out = []
    for b in _buckets(resources):
        if b.props.get("objectLockEnabled") is not True:
            out.append((b.name, f"{b.name} was not created with Object Lock enabled"))
            continue
        retention = [_get(x.props, "rule", "defaultRetention") for x in locks.get(b.name, [])]
        # Numbers that pass through the engine arrive as floats (35.0).
        good = [
            r
            for r in retention
            if isinstance(r, Mapping)
            and r.get("mode") == "COMPLIANCE"
            and isinstance(r.get("days"), int | float)
            and not isinstance(r["days"], bool)
            and r["days"] >= s.min_retention_days
        ]
        if not good:
            out.append(
                (
                    b.name,
                    f"{b.name} has no COMPLIANCE retention of at least "
                    f"{s.min_retention_days} days (found {retention or 'none'})",
                )
            )
    return out


def bucket_sse_kms(resources: Sequence[Res], s: Settings) -> list[tuple[str, str]]:
    configs = _by_bucket(
        resources,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    out = []
    for b in _buckets(resources):
        defaults = [
            _get(rule, "applyServerSideEncryptionByDefault")
            for c in configs.get(b.name, [])
            for rule in _as_list(c.props.get("rules"))
        ]
        ok = any(
            isinstance(d, Mapping)
            and d.get("sseAlgorithm") == "aws:kms"
            and d.get("kmsMasterKeyId")
            for d in defaults
        )
        if not ok:
            out.append(
                (b.name, f"{b.name} is not encrypted with SSE-KMS and a customer managed key")
            )
    return out


def _denies_insecure_transport(policy: Any) -> bool:
    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
    except json.JSONDecodeError:
        return False
    for st in _as_list(_get(document, "Statement")):
        if not isinstance(st, Mapping) or st.get("Effect") != "Deny":
            continue
        actions = _as_list(st.get("Action"))
        if ("s3:*" in actions or "*" in actions) and str(
            _get(st, "Condition", "Bool", "aws:SecureTransport")
        ).lower() == "false":
            return True
    return False


def bucket_tls_only(resources: Sequence[Res], s: Settings) -> list[tuple[str, str]]:
    policies = _by_bucket(resources, "aws:s3/bucketPolicy:BucketPolicy")
    out = []
    for b in _buckets(resources):
        if not any(
            _denies_insecure_transport(p.props.get("policy")) for p in policies.get(b.name, [])
        ):
            out.append((b.name, f"{b.name}'s policy does not deny requests without TLS"))
    return out


def flow_logs_everywhere(resources: Sequence[Res], s: Settings) -> list[tuple[str, str]]:
    logged = {
        vpc
        for r in resources
        if r.type == "aws:ec2/flowLog:FlowLog" and r.props.get("trafficType") == "ALL"
        for vpc in r.refs.get("vpcId", frozenset())
    }
    return [
        (r.name, f"{r.name} has no flow log of ALL traffic")
        for r in resources
        if r.type == "aws:ec2/vpc:Vpc" and r.name not in logged
    ]


MHLW = "MHLW medical information security guideline 6.0 (network separation)"
# --- the stack settings file ----------------------------------------------------------------

SECRET_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an AWS access key ID", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("an AWS secret access key",
     re.compile(r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])"
                r"(?=[A-Za-z0-9/+]*[0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")),
    ("a password in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)),
    ("a bearer or API token", re.compile(r"\b(ghp_|glpat-|xox[abp]-|pul-)[A-Za-z0-9_-]{16,}")),
)  # fmt: skip


def _plain_values(node: Any, path: str) -> Iterable[tuple[str, str]]:
    """Every plain string in a config value, with its key path; `{secure: ...}` values are
    ciphertext from `pulumi config set --secret`, and are skipped."""
    if isinstance(node, Mapping):
        if set(node) == {"secure"}:
            return
        for key, value in node.items():
            yield from _plain_values(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _plain_values(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def no_plain_secret(document: Mapping[str, Any], s: Settings) -> list[tuple[str, str]]:
    found = []
    config = document.get("config")
    for top, value in config.items() if isinstance(config, Mapping) else []:
        for path, text in _plain_values(value, str(top)):
            leaf = path.rsplit(".", 1)[-1]
            if SECRET_KEY_NAME.search(leaf) and text:
                found.append((path, f"{path} is a plain value under a secret's name; "
                                    "it would be stored unencrypted"))  # fmt: skip
                continue
            for what, shape in SECRET_SHAPES:
                if shape.search(text):
                    found.append((path, f"{path} holds what looks like {what}, in plain text"))
                    break
    return found


AWSKMS = re.compile(r"^awskms://(?P<key>[^?]+)\?region=(?P<region>[a-z0-9-]+)$")


def awskms_secrets_provider(document: Mapping[str, Any], s: Settings) -> list[tuple[str, str]]:
    provider = document.get("secretsprovider")
    if not isinstance(provider, str) or not provider:
        return [("secretsprovider", "no secretsprovider: secrets would use the passphrase or "
                                    "service default, not the organisation's KMS key")]  # fmt: skip
    match = AWSKMS.match(provider)
    if match is None:
        return [("secretsprovider", f"secretsprovider {provider!r} is not awskms://KEY?region=R")]
    if match["region"] not in s.allowed_regions:
        return [("secretsprovider", f"secretsprovider's key is in {match['region']}, outside "
                                    f"{', '.join(s.allowed_regions)}")]  # fmt: skip
    return []


RULES: tuple[Rule, ...] = (
    Rule(
        "CDC-NET-001",
        "critical",
        "No internet, egress-only or NAT gateway",
        "Remove the gateway; reach AWS services through VPC endpoints.",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        check=no_gateway_out,
    ),
    Rule(
        "CDC-NET-002",
        "critical",
        "No route to 0.0.0.0/0 or ::/0",
        "Route only the CIDRs the flow policy names.",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        check=no_default_route,
    ),
    Rule(
        "CDC-NET-003",
        "high",
        "No public IP on subnet, instance or interface, and no EIP",
        "Set mapPublicIpOnLaunch and associatePublicIpAddress to false; drop the EIP.",
        "checkov CKV_AWS_130, CKV_AWS_88; Trivy AVD-AWS-0164",
        check=no_public_ip,
    ),
    Rule(
        "CDC-NET-004",
        "high",
        "No security group rule open to 0.0.0.0/0 or ::/0",
        "Name the zone CIDR the flow policy allows.",
        "Trivy AVD-AWS-0107 (ingress), AVD-AWS-0104 (egress); checkov CKV_AWS_382, CKV_AWS_24",
        check=no_open_security_group,
    ),
    Rule(
        "CDC-NET-005",
        "high",
        "No NACL rule allowing 0.0.0.0/0 or ::/0",
        "Allow only the zone CIDRs of the flow policy.",
        "Trivy AVD-AWS-0105",
        check=no_open_nacl,
    ),
    Rule(
        "CDC-NET-006",
        "critical",
        "Routes lead only to private address space (no split default route)",
        "Route the zone CIDRs of the flow policy; a public or half-of-everything destination "
        "is a way out.",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        check=routes_stay_private,
    ),
    Rule(
        "CDC-NET-007",
        "high",
        "No route or transit gateway reference to a prefix list",
        "Route the zone CIDRs by name; S3 is reached through the gateway endpoint alone.",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        check=no_prefix_list_route,
    ),
    Rule(
        "CDC-NET-008",
        "critical",
        "VPC endpoints reach only the region's AWS services, or a service the stack accepts",
        "Use an AWS service of infra/network/services.py, or list the service under "
        "claims-dc:endpointServices with the reason (policy config endpointServices for the pack).",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        check=endpoint_services,
    ),
    Rule(
        "CDC-NET-009",
        "high",
        "No Lambda function or Client VPN in the data center's subnets",
        "Run the work on the declared hosts; operators come in through the bastion.",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        check=no_foreign_compute_in_subnets,
    ),
    Rule(
        "CDC-EC2-001",
        "high",
        "IMDSv2 required",
        "metadataOptions: httpTokens required, hop limit 1.",
        "checkov CKV_AWS_79; Trivy AVD-AWS-0028",
        check=imdsv2_required,
    ),
    Rule(
        "CDC-EC2-002",
        "high",
        "EBS encrypted with a customer managed key",
        "encrypted: true and kmsKeyId of the environment's storage key.",
        "checkov CKV_AWS_189; Trivy AVD-AWS-0131",
        check=ebs_encrypted_with_cmk,
    ),
    Rule(
        "CDC-KMS-001",
        "medium",
        "KMS key rotation on",
        "enableKeyRotation: true.",
        "checkov CKV_AWS_7; Trivy AVD-AWS-0065",
        check=kms_rotation,
    ),
    Rule(
        "CDC-LOG-002",
        "medium",
        "CloudTrail log file validation",
        "enableLogFileValidation.",
        "checkov CKV_AWS_36; Trivy AVD-AWS-0016",
        check=trail_validation,
    ),
    Rule(
        "CDC-GOV-001",
        "critical",
        "Resources stay in Tokyo or Osaka",
        "Use ap-northeast-1 or ap-northeast-3.",
        "claims-dc (data residency for the privacy council); no checkov/Trivy equivalent",
        check=allowed_region,
    ),
    Rule(
        "CDC-S3-001",
        "critical",
        "Every bucket blocks public access (all four flags)",
        "A BucketPublicAccessBlock with all four flags true.",
        "checkov CKV_AWS_53 (and its three sibling flags); Trivy AVD-AWS-0086..0093",
        stack_check=bucket_public_access_block,
    ),
    Rule(
        "CDC-S3-002",
        "high",
        "Every bucket is versioned",
        "BucketVersioning status Enabled.",
        "Trivy AVD-AWS-0090",
        stack_check=bucket_versioning,
    ),
    Rule(
        "CDC-S3-003",
        "critical",
        "Object Lock COMPLIANCE for at least the configured days",
        "objectLockEnabled on the bucket and a COMPLIANCE default retention.",
        "checkov CKV_AWS_143 (lock enabled; the mode and days are claims-dc's)",
        stack_check=bucket_object_lock,
    ),
    Rule(
        "CDC-S3-004",
        "high",
        "SSE-KMS with a customer managed key",
        "BucketServerSideEncryptionConfiguration with aws:kms and the key's ARN.",
        "checkov CKV_AWS_145; Trivy AVD-AWS-0132",
        stack_check=bucket_sse_kms,
    ),
    Rule(
        "CDC-S3-005",
        "high",
        "Bucket policy refuses requests without TLS",
        "A Deny on s3:* when aws:SecureTransport is false.",
        "AWS Config s3-bucket-ssl-requests-only; no checkov/Trivy equivalent verified",
        stack_check=bucket_tls_only,
    ),
    Rule(
        "CDC-LOG-001",
        "high",
        "Flow logs of ALL traffic on every VPC",
        "An ec2.FlowLog with trafficType ALL for the VPC.",
        "checkov CKV2_AWS_11; Trivy AVD-AWS-0178",
        stack_check=flow_logs_everywhere,
    ),
    Rule(
        "CDC-CFG-001",
        "critical",
        "No secret in the stack file's plain config",
        "Set it with `pulumi config set --secret` (encrypted by the stack's KMS key), or keep it "
        "out of the stack entirely (Ansible Vault on the control node).",
        "claims-dc (checkov's secrets scan and Trivy's secret scanner look for the same shapes)",
        file_check=no_plain_secret,
    ),
    Rule(
        "CDC-CFG-002",
        "high",
        "Stack secrets encrypted with a KMS key in Tokyo or Osaka",
        "pulumi stack init --secrets-provider 'awskms://alias/claims-dc-pulumi-secrets"
        "?region=ap-northeast-1' (or change-secrets-provider for an existing stack).",
        f"claims-dc ({MHLW}); no checkov/Trivy equivalent",
        file_check=awskms_secrets_provider,
    ),
)


@dataclass(frozen=True)
class Violation:
    rule: str
    severity: str
    resource: str
    message: str
    fix: str


def evaluate_stack_file(
    document: Mapping[str, Any], source: str, settings: Settings | None = None
) -> list[Violation]:
    """The rules over the stack settings file itself; the resource is the file and key."""
    settings = settings or Settings()
    return [
        Violation(rule.id, rule.severity, f"{source}: {key}", msg, rule.fix)
        for rule in RULES
        if rule.file_check is not None
        for key, msg in rule.file_check(document, settings)
    ]


def stack_violations(
    resources: Sequence[Res], document: Mapping[str, Any], source: str, config: Any
) -> list[Violation]:
    """The whole pack over one stack: its resources and its settings file, with the settings
    the stack's own config gives (retention, region, accepted endpoint services)."""
    settings = Settings(
        min_retention_days=config.backup.retention_days,
        region=config.region,
        endpoint_exceptions=config.endpoint_exceptions,
    )
    return evaluate_rules(resources, settings) + evaluate_stack_file(document, source, settings)


def evaluate_rules(resources: Sequence[Res], settings: Settings | None = None) -> list[Violation]:
    settings = settings or Settings()
    found: list[Violation] = []
    for rule in RULES:
        if rule.check is not None:
            for r in resources:
                for msg in rule.check(r, settings):
                    found.append(Violation(rule.id, rule.severity, r.name, msg, rule.fix))
        if rule.stack_check is not None:
            for name, msg in rule.stack_check(resources, settings):
                found.append(Violation(rule.id, rule.severity, name, msg, rule.fix))
    return found
