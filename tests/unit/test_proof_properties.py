"""Properties of the proof over random additions to both stacks (hypothesis).

A grammar adds what a careless engineer or an attacker could add to a stack, as the engine would
record it (type, name, camelCase inputs): routes to every target type with random destinations
and prefix lists, filter rules with random CIDRs, prefix lists and groups, endpoints to random
services, attachments of every type, gateways, interfaces and addresses, types the model does not
know, and references to ids nothing declares. Over any such addition:

- the proof ends with a verdict: it never raises, and never fails halfway;
- adding resources never turns a VIOLATED or UNKNOWN verdict into HOLDS;
- an addition that references something undeclared, or is of a type the model does not
  understand, leaves no verdict HOLDS.

The stacks are evaluated once; each example builds the model and proves it (milliseconds).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.config import StackConfig
from infra.offline import KNOWN_INVOKES, evaluate
from infra.proof.model import Declared, build_model
from infra.proof.verdicts import HOLDS, Proof, prove

REPO = Path(__file__).resolve().parents[2]
STACKS = ("lab", "omuta-prod")
S3_LIST = KNOWN_INVOKES["aws:ec2/getPrefixList:getPrefixList"]
DX_ATTACHMENT = KNOWN_INVOKES[
    "aws:ec2transitgateway/getDirectConnectGatewayAttachment:getDirectConnectGatewayAttachment"
]["id"]


@dataclass
class Stack:
    config: StackConfig
    base: list[Declared]
    ids: dict[str, list[str]]  # kind -> ids the stack declares


def _stack(name: str) -> Stack:
    ev = evaluate(REPO / f"Pulumi.{name}.yaml")
    base = [Declared(r.type, r.name, r.inputs, r.outputs) for r in ev.resources]

    def of(type_token: str) -> list[str]:
        return [f"{r.name}-id" for r in base if r.type == type_token]

    attachments = of("aws:ec2transitgateway/vpcAttachment:VpcAttachment") + [
        r.outputs["transitGatewayAttachmentId"]
        for r in base
        if r.type == "aws:ec2/vpnConnection:VpnConnection"
    ]
    if any(r.type == "aws:directconnect/gatewayAssociation:GatewayAssociation" for r in base):
        attachments.append(DX_ATTACHMENT)
    ids = {
        "vpc": of("aws:ec2/vpc:Vpc"),
        "subnet": of("aws:ec2/subnet:Subnet"),
        "rt": of("aws:ec2/routeTable:RouteTable"),
        "tgw": of("aws:ec2transitgateway/transitGateway:TransitGateway"),
        "tgw-rt": of("aws:ec2transitgateway/routeTable:RouteTable"),
        "attachment": attachments,
        "sg": of("aws:ec2/securityGroup:SecurityGroup"),
        "nacl": of("aws:ec2/networkAcl:NetworkAcl"),
        "instance": of("aws:ec2/instance:Instance"),
        "vpce": of("aws:ec2/vpcEndpoint:VpcEndpoint"),
        "pl": [S3_LIST["prefixListId"]],
    }
    return Stack(ev.config, base, ids)


@pytest.fixture(scope="module")
def stacks() -> dict[str, Stack]:
    return {name: _stack(name) for name in STACKS}


# --- the grammar ------------------------------------------------------------------------------


@dataclass
class Addition:
    resources: list[Declared] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # why it must not HOLD, if it must not


UNDECLARED = st.sampled_from([
    "vpc-0123456789abcdef0", "subnet-0123456789abcdef0", "rtb-0123456789abcdef0",
    "sg-0123456789abcdef0", "pl-0123456789abcdef0", "tgw-0123456789abcdef0",
    "tgw-attach-0123456789abcdef0", "tgw-rtb-0123456789abcdef0", "igw-0123456789abcdef0",
    "nat-0123456789abcdef0", "eni-0123456789abcdef0", "vpce-0123456789abcdef0",
    "acl-0123456789abcdef0", "pcx-0123456789abcdef0", "i-0123456789abcdef0", "ghost-id",
])  # fmt: skip
UNKNOWN_TYPES = (
    ("aws:networkfirewall/firewall:Firewall", {"name": "fw"}),
    ("aws:ec2/carrierGateway:CarrierGateway", {}),
    ("aws:ec2transitgateway/peeringAttachment:PeeringAttachment",
     {"peerTransitGatewayId": "tgw-0fedcba9876543210", "peerRegion": "ap-northeast-3"}),
    ("aws:ec2transitgateway/connect:Connect", {}),
    ("aws:ec2clientvpn/endpoint:Endpoint", {"clientCidrBlock": "10.100.0.0/22"}),
    ("aws:lambda/function:Function", {"runtime": "python3.11"}),
    ("aws:ec2/localGatewayRoute:LocalGatewayRoute", {}),
    ("aws:globalaccelerator/accelerator:Accelerator", {}),
)  # fmt: skip
SERVICES = st.sampled_from([
    "com.amazonaws.{region}.s3", "com.amazonaws.{region}.kms", "com.amazonaws.{region}.sts",
    "com.amazonaws.us-east-1.s3", "com.amazonaws.us-east-1.kms",
    "com.amazonaws.vpce.{region}.vpce-svc-0123456789abcdef0",
    "aws.api.{region}.partner-relay", "com.example.proxy",
])  # fmt: skip
PROTOCOLS = st.sampled_from(["tcp", "udp", "-1", "icmp"])
PORTS = st.sampled_from([22, 443, 5432, 8080, 0, 65535])


@st.composite
def cidrs(draw: st.DrawFn, stack: Stack) -> str:
    config = stack.config
    known = [str(z.cidr) for z in config.zones.values()] + [
        str(config.vpc_cidr), "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "::/0", "2000::/3",
        "172.16.0.0/12", "10.0.0.0/8",
    ]  # fmt: skip
    pick = draw(st.integers(0, 5))
    if pick <= 1:
        return draw(st.sampled_from(known))
    if pick == 2:  # a part of a zone: a more specific route than the one the stack declares
        zone = draw(st.sampled_from(sorted(config.zones)))
        net = config.zones[zone].cidr
        prefix = draw(st.integers(net.prefixlen, 32))
        offset = draw(st.integers(0, net.num_addresses - 1))
        return str(ipaddress.ip_network((int(net.network_address) + offset, prefix), strict=False))
    if pick == 3:
        address6 = draw(st.integers(0, 2**128 - 1))
        return str(ipaddress.ip_network((address6, draw(st.integers(0, 128))), strict=False))
    address = draw(st.integers(0, 2**32 - 1))
    return str(ipaddress.ip_network((address, draw(st.integers(0, 32))), strict=False))


@st.composite
def additions(draw: st.DrawFn, stack: Stack) -> Addition:
    out = Addition()
    made: dict[str, list[str]] = {k: list(v) for k, v in stack.ids.items()}
    region = stack.config.region

    def ref(kind: str) -> str:
        """An id of that kind: declared (by the stack or this addition), or one nothing
        declares."""
        pool = made.get(kind, [])
        if not pool or draw(st.integers(0, 9)) == 0:
            value = draw(UNDECLARED)
            out.foreign.append(f"undeclared {kind} {value}")
            return value
        return draw(st.sampled_from(pool))

    def add(type_token: str, inputs: dict[str, Any], kind: str | None = None,
            outputs: dict[str, Any] | None = None) -> str:  # fmt: skip
        name = f"gen-{len(out.resources)}"
        out.resources.append(Declared(type_token, name, inputs, outputs or {}))
        if kind:
            made.setdefault(kind, []).append(f"{name}-id")
        return name

    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.integers(0, 17))
        if choice == 0:  # a route to any target type
            target_key, kind = draw(st.sampled_from([
                ("gatewayId", "igw"), ("gatewayId", "vgw"), ("natGatewayId", "nat"),
                ("transitGatewayId", "tgw"), ("vpcPeeringConnectionId", "pcx"),
                ("egressOnlyGatewayId", "eigw"), ("networkInterfaceId", "eni"),
                ("vpcEndpointId", "vpce"), ("gatewayId", "vpce"),
            ]))  # fmt: skip
            inputs: dict[str, Any] = {"routeTableId": ref("rt"), target_key: ref(kind)}
            if draw(st.integers(0, 4)) == 0:
                inputs["destinationPrefixListId"] = ref("pl")
            else:
                cidr = draw(cidrs(stack))
                key = "destinationIpv6CidrBlock" if ":" in cidr else "destinationCidrBlock"
                inputs[key] = cidr
            add("aws:ec2/route:Route", inputs)
        elif choice == 1:
            add("aws:ec2/internetGateway:InternetGateway", {"vpcId": ref("vpc")}, "igw")
        elif choice == 2:
            add("aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
                {"vpcId": ref("vpc")}, "eigw")  # fmt: skip
        elif choice == 3:
            add("aws:ec2/natGateway:NatGateway", {"subnetId": ref("subnet")}, "nat")
        elif choice == 4:
            add("aws:ec2/vpnGateway:VpnGateway", {"vpcId": ref("vpc")}, "vgw")
        elif choice == 5:
            add("aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
                {"vpcId": ref("vpc"), "peerVpcId": ref("vpc")}, "pcx")  # fmt: skip
        elif choice == 6:  # a security group rule on a CIDR, a prefix list or a group
            type_token = draw(st.sampled_from([
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
            ]))  # fmt: skip
            port = draw(PORTS)
            inputs = {"securityGroupId": ref("sg"), "ipProtocol": draw(PROTOCOLS),
                      "fromPort": port, "toPort": port}  # fmt: skip
            peer = draw(st.integers(0, 2))
            if peer == 0:
                cidr = draw(cidrs(stack))
                inputs["cidrIpv6" if ":" in cidr else "cidrIpv4"] = cidr
            elif peer == 1:
                inputs["prefixListId"] = ref("pl")
            else:
                inputs["referencedSecurityGroupId"] = ref("sg")
            add(type_token, inputs)
        elif choice == 7:  # an allowing NACL rule
            cidr = draw(cidrs(stack))
            port = draw(PORTS)
            add("aws:ec2/networkAclRule:NetworkAclRule", {
                "networkAclId": ref("nacl"), "ruleNumber": draw(st.integers(1, 32766)),
                "egress": draw(st.booleans()), "protocol": draw(PROTOCOLS),
                "ruleAction": "allow", ("ipv6CidrBlock" if ":" in cidr else "cidrBlock"): cidr,
                "fromPort": port, "toPort": port,
            })  # fmt: skip
        elif choice == 8:  # an endpoint to some service
            kind = draw(st.sampled_from(["Interface", "Gateway", "GatewayLoadBalancer"]))
            service = draw(SERVICES).format(region=region)
            inputs = {"vpcId": ref("vpc"), "serviceName": service, "vpcEndpointType": kind}
            outputs: dict[str, Any] = {}
            if kind == "Gateway":
                inputs["routeTableIds"] = [ref("rt")]
                outputs["prefixListId"] = S3_LIST["prefixListId"]
            else:
                inputs["subnetIds"] = [ref("subnet")]
                inputs["securityGroupIds"] = [ref("sg")]
            add("aws:ec2/vpcEndpoint:VpcEndpoint", inputs, "vpce", outputs)
        elif choice == 9:  # a VPC attachment, to the stack's VPC or a new one
            if draw(st.booleans()):
                vpc = add("aws:ec2/vpc:Vpc", {"cidrBlock": draw(st.sampled_from(
                    ["172.29.0.0/16", "192.168.0.0/16", "10.99.0.0/16"]))}, "vpc")  # fmt: skip
                vpc_id = f"{vpc}-id"
            else:
                vpc_id = ref("vpc")
            add("aws:ec2transitgateway/vpcAttachment:VpcAttachment", {
                "transitGatewayId": ref("tgw"), "vpcId": vpc_id, "subnetIds": [ref("subnet")],
                "transitGatewayDefaultRouteTableAssociation": False,
                "transitGatewayDefaultRouteTablePropagation": False,
            }, "attachment")  # fmt: skip
        elif choice == 10:  # a transit gateway route
            add("aws:ec2transitgateway/route:Route", {
                "destinationCidrBlock": draw(cidrs(stack)),
                "transitGatewayAttachmentId": ref("attachment"),
                "transitGatewayRouteTableId": ref("tgw-rt"),
            })  # fmt: skip
        elif choice == 11:  # an attachment or line of another type
            type_token, inputs = draw(st.sampled_from(UNKNOWN_TYPES[2:4]))
            add(type_token, {**inputs, "transitGatewayId": ref("tgw")}, "attachment")
            out.foreign.append(f"a {type_token}")
        elif choice == 12:  # a VPN line on a transit gateway
            cgw = add(
                "aws:ec2/customerGateway:CustomerGateway",
                {"ipAddress": "198.51.100.9", "bgpAsn": "65099", "type": "ipsec.1"},
            )
            name = f"gen-{len(out.resources)}"
            add("aws:ec2/vpnConnection:VpnConnection", {
                "customerGatewayId": f"{cgw}-id", "transitGatewayId": ref("tgw"),
                "type": "ipsec.1", "staticRoutesOnly": draw(st.booleans()),
            }, outputs={"transitGatewayAttachmentId": f"tgw-attach-{name}"})  # fmt: skip
            made["attachment"].append(f"tgw-attach-{name}")
        elif choice == 13:  # an instance or interface, numbered or not, forwarding or not
            subnet = ref("subnet")
            inputs = {"subnetId": subnet, "sourceDestCheck": draw(st.booleans())}
            if draw(st.booleans()):
                inputs["vpcSecurityGroupIds"] = [ref("sg")]
                add("aws:ec2/instance:Instance", inputs, "instance")
            else:
                inputs["securityGroups"] = [ref("sg")]
                inputs["privateIpsCount"] = draw(st.integers(0, 3))
                add("aws:ec2/networkInterface:NetworkInterface", inputs, "eni")
        elif choice == 14:  # a public address
            if draw(st.booleans()):
                add("aws:ec2/eip:Eip", {"instance": ref("instance")})
            else:
                add("aws:ec2/eipAssociation:EipAssociation",
                    {"allocationId": "eipalloc-0123456789abcdef0",
                     "instanceId": ref("instance")})  # fmt: skip
                out.foreign.append("an Elastic IP allocation nothing declares")
        elif choice == 15:  # a prefix list of the program's own
            entries = [{"cidr": draw(cidrs(stack))} for _ in range(draw(st.integers(0, 3)))]
            add(
                "aws:ec2/managedPrefixList:ManagedPrefixList",
                {"addressFamily": "IPv4", "maxEntries": 5, "entries": entries},
                "pl",
            )
        elif choice == 16:  # a type the model does not know
            type_token, inputs = draw(st.sampled_from(UNKNOWN_TYPES))
            add(type_token, {**inputs, "vpcId": ref("vpc")})
            out.foreign.append(f"a {type_token}")
        else:  # a subnet moved to another route table
            add("aws:ec2/routeTableAssociation:RouteTableAssociation",
                {"subnetId": ref("subnet"), "routeTableId": ref("rt")})  # fmt: skip
    return out


# --- the properties ---------------------------------------------------------------------------


def _prove(stack: Stack, extra: list[Declared]) -> Proof:
    model = build_model(
        stack.base + extra,
        prefix_cidrs={S3_LIST["prefixListId"]: S3_LIST["cidrBlocks"]},
        dx_attachment_id=DX_ATTACHMENT,
        region=stack.config.region,
    )
    return prove(model, stack.config)


def _verdicts(proof: Proof) -> dict[str, str]:
    return {v.id: v.status for v in proof.verdicts}


PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)  # fmt: skip


@pytest.mark.parametrize("name", STACKS)
def test_the_proof_fails_closed_on_any_addition(stacks: dict[str, Stack], name: str) -> None:
    stack = stacks[name]
    assert set(_verdicts(_prove(stack, [])).values()) == {HOLDS}

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        first = data.draw(additions(stack), label="first")
        second = data.draw(additions(stack), label="then")
        before = _prove(stack, first.resources)
        after = _prove(stack, first.resources + second.resources)
        for proof in (before, after):
            failed = [c.summary for v in proof.verdicts for c in v.counterexamples
                      if c.summary.startswith("the proof failed")]  # fmt: skip
            assert not failed, failed
        was, now = _verdicts(before), _verdicts(after)
        for verdict, status in was.items():
            if status != HOLDS:
                assert now[verdict] != HOLDS, (verdict, status, second.resources)
        for addition, proof in ((first, before), (second, after)):
            if addition.foreign:
                assert HOLDS not in _verdicts(proof).values(), (addition.foreign, proof.unknown)

    check()


def test_a_repair_after_a_diversion_does_not_bring_back_holds(stacks: dict[str, Stack]) -> None:
    """Part of LGWAN's prefix sent to a NAT gateway, then a yet more specific route back to
    the line: the sampled terminal's packets work again, but the diversion is still declared."""
    stack = stacks["lab"]
    nat = Declared("aws:ec2/natGateway:NatGateway", "n",
                   {"subnetId": "segment-app-ap-northeast-1a-id"})  # fmt: skip
    away = Declared("aws:ec2/route:Route", "away", {"routeTableId": "segment-app-rt-id",
                    "destinationCidrBlock": "10.232.1.0/25", "natGatewayId": "n-id"})  # fmt: skip
    back = Declared("aws:ec2/route:Route", "back", {"routeTableId": "segment-app-rt-id",
                    "destinationCidrBlock": "10.232.1.0/26",
                    "transitGatewayId": "lgwan-tgw-id"})  # fmt: skip
    diverted = _verdicts(_prove(stack, [nat, away]))
    repaired = _prove(stack, [nat, away, back])
    assert HOLDS not in diverted.values()
    assert HOLDS not in _verdicts(repaired).values()
    policy = next(v for v in repaired.verdicts if v.id == "policy")
    assert any("sends part of zone lgwan to nat n" in c.summary for c in policy.counterexamples)
