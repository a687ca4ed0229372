"""The network model and the packet walk on small hand-built graphs, one idea per test.

Each graph is a handful of resources written out by hand, with ids as the mocks make them
("<name>-id"), so that a reader can follow every hop.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from infra.proof.model import Declared, build_model
from infra.proof.reach import INTERNET_V4, Context, Site, Source, trace

A = ipaddress.ip_address


def d(type_: str, name: str, **inputs: Any) -> Declared:
    outputs = inputs.pop("_outputs", {})
    return Declared(f"aws:{type_}", name, inputs, outputs)


def one_vpc(*extra: Declared) -> list[Declared]:
    """A VPC with two subnets (web, data), one route table each, an instance in each."""
    return [
        d("ec2/vpc:Vpc", "vpc", cidrBlock="10.0.0.0/16"),
        d("ec2/subnet:Subnet", "web", vpcId="vpc-id", cidrBlock="10.0.1.0/24"),
        d("ec2/subnet:Subnet", "data", vpcId="vpc-id", cidrBlock="10.0.2.0/24"),
        d("ec2/routeTable:RouteTable", "web-rt", vpcId="vpc-id"),
        d("ec2/routeTable:RouteTable", "data-rt", vpcId="vpc-id"),
        d("ec2/routeTableAssociation:RouteTableAssociation", "a1", subnetId="web-id",
          routeTableId="web-rt-id"),
        d("ec2/routeTableAssociation:RouteTableAssociation", "a2", subnetId="data-id",
          routeTableId="data-rt-id"),
        d("ec2/securityGroup:SecurityGroup", "web-sg", vpcId="vpc-id",
          egress=[{"protocol": "tcp", "fromPort": 5432, "toPort": 5432,
                   "cidrBlocks": ["10.0.2.0/24"]}]),
        d("ec2/securityGroup:SecurityGroup", "data-sg", vpcId="vpc-id",
          ingress=[{"protocol": "tcp", "fromPort": 5432, "toPort": 5432,
                    "cidrBlocks": ["10.0.1.0/24"]}]),
        d("ec2/instance:Instance", "web-1", subnetId="web-id", privateIp="10.0.1.10",
          vpcSecurityGroupIds=["web-sg-id"]),
        d("ec2/instance:Instance", "db-1", subnetId="data-id", privateIp="10.0.2.10",
          vpcSecurityGroupIds=["data-sg-id"]),
        *extra,
    ]  # fmt: skip


def ctx_of(resources: list[Declared], sites: dict[str, Site] | None = None) -> Context:
    return Context(build_model(resources), sites or {})


def src(ctx: Context, name: str) -> Source:
    iface = next(i for i in ctx.model.interfaces if i.name == name)
    assert iface.address is not None
    return Source("interface", name, iface.address, interface=iface)


def test_local_route_and_both_security_groups() -> None:
    ctx = ctx_of(one_vpc())
    ok = trace(ctx, src(ctx, "web-1"), A("10.0.2.10"), 5432)
    assert ok.arrived and ok.exit == "host:db-1"
    assert any("security group web-sg egress" in h for h in ok.hops)
    assert any("security group data-sg ingress" in h for h in ok.hops)
    # Port 22 is in neither group: the source's egress stops it first.
    no = trace(ctx, src(ctx, "web-1"), A("10.0.2.10"), 22)
    assert not no.arrived and "web-sg" in (no.blocked or "")


def test_subnets_without_a_nacl_get_the_default_one_that_allows_all() -> None:
    ctx = ctx_of(one_vpc())
    t = trace(ctx, src(ctx, "web-1"), A("10.0.2.10"), 5432)
    assert any("default NACL" in h for h in t.hops)


def test_nacl_first_matching_rule_by_number_wins() -> None:
    nacl = [
        d("ec2/networkAcl:NetworkAcl", "data-acl", vpcId="vpc-id", subnetIds=["data-id"]),
        d("ec2/networkAclRule:NetworkAclRule", "deny-web", networkAclId="data-acl-id",
          ruleNumber=100, egress=False, protocol="-1", ruleAction="deny",
          cidrBlock="10.0.1.0/24"),
        d("ec2/networkAclRule:NetworkAclRule", "allow-all", networkAclId="data-acl-id",
          ruleNumber=200, egress=False, protocol="-1", ruleAction="allow",
          cidrBlock="10.0.0.0/8"),
    ]  # fmt: skip
    ctx = ctx_of(one_vpc(*nacl))
    t = trace(ctx, src(ctx, "web-1"), A("10.0.2.10"), 5432)
    assert not t.arrived
    assert "rule #100" in (t.blocked or "") and "denies" in (t.blocked or "")


def test_a_route_to_an_internet_gateway_leads_out() -> None:
    out = [
        d("ec2/internetGateway:InternetGateway", "igw", vpcId="vpc-id"),
        d("ec2/route:Route", "default", routeTableId="web-rt-id",
          destinationCidrBlock="0.0.0.0/0", gatewayId="igw-id"),
        d("ec2/securityGroupRule:SecurityGroupRule", "web-out", securityGroupId="web-sg-id",
          type="egress", protocol="-1", cidrBlocks=["0.0.0.0/0"]),
    ]  # fmt: skip
    ctx = ctx_of(one_vpc(*out))
    t = trace(ctx, src(ctx, "web-1"), INTERNET_V4, 443)
    assert t.arrived and t.exit == "internet"
    assert any("default 0.0.0.0/0 -> igw igw" in h for h in t.hops)
    # The data subnet's table has no such route: it stays in.
    assert not trace(ctx, src(ctx, "db-1"), INTERNET_V4, 443).arrived


def test_no_route_means_no_path() -> None:
    ctx = ctx_of(
        one_vpc(
            d(
                "ec2/securityGroupRule:SecurityGroupRule",
                "web-out",
                securityGroupId="web-sg-id",
                type="egress",
                protocol="-1",
                cidrBlocks=["0.0.0.0/0"],
            )
        )
    )
    t = trace(ctx, src(ctx, "web-1"), INTERNET_V4, 443)
    assert not t.arrived and "no route" in (t.blocked or "")


def _line(site_ip: str, cidr: str, to: str) -> list[Declared]:
    """A transit gateway with one VPN line and one VPC attachment, routes both ways."""
    return [
        d("ec2transitgateway/transitGateway:TransitGateway", "tgw",
          defaultRouteTableAssociation="disable", defaultRouteTablePropagation="disable"),
        d("ec2/customerGateway:CustomerGateway", "cgw", ipAddress=site_ip, bgpAsn="65000"),
        d("ec2/vpnConnection:VpnConnection", "vpn", customerGatewayId="cgw-id",
          transitGatewayId="tgw-id", staticRoutesOnly=True,
          _outputs={"transitGatewayAttachmentId": "tgw-attach-vpn"}),
        d("ec2transitgateway/vpcAttachment:VpcAttachment", "att", transitGatewayId="tgw-id",
          vpcId="vpc-id", subnetIds=["web-id"]),
        d("ec2transitgateway/routeTable:RouteTable", "line-side", transitGatewayId="tgw-id"),
        d("ec2transitgateway/routeTable:RouteTable", "vpc-side", transitGatewayId="tgw-id"),
        d("ec2transitgateway/routeTableAssociation:RouteTableAssociation", "as1",
          transitGatewayAttachmentId="tgw-attach-vpn", transitGatewayRouteTableId="line-side-id"),
        d("ec2transitgateway/routeTableAssociation:RouteTableAssociation", "as2",
          transitGatewayAttachmentId="att-id", transitGatewayRouteTableId="vpc-side-id"),
        d("ec2transitgateway/route:Route", "to-vpc", destinationCidrBlock=to,
          transitGatewayAttachmentId="att-id", transitGatewayRouteTableId="line-side-id"),
        d("ec2transitgateway/route:Route", "to-site", destinationCidrBlock=cidr,
          transitGatewayAttachmentId="tgw-attach-vpn", transitGatewayRouteTableId="vpc-side-id"),
        d("ec2/route:Route", "web-to-site", routeTableId="web-rt-id", destinationCidrBlock=cidr,
          transitGatewayId="tgw-id"),
        d("ec2/securityGroupRule:SecurityGroupRule", "web-in", securityGroupId="web-sg-id",
          type="ingress", protocol="tcp", fromPort=443, toPort=443, cidrBlocks=[cidr]),
    ]  # fmt: skip


def test_a_site_reaches_only_what_the_line_side_table_routes() -> None:
    site = Site("branch", "192.0.2.50", ipaddress.ip_network("172.16.0.0/24"))
    ctx = ctx_of(
        one_vpc(*_line("192.0.2.50", "172.16.0.0/24", "10.0.1.0/24")), {"192.0.2.50": site}
    )
    branch = Source("site", "branch", A("172.16.0.10"), site=site)
    ok = trace(ctx, branch, A("10.0.1.10"), 443)
    assert ok.arrived and ok.exit == "host:web-1"
    assert any("route table line-side: 10.0.1.0/24 -> attachment att" in h for h in ok.hops)
    no = trace(ctx, branch, A("10.0.2.10"), 5432)
    assert not no.arrived and "line-side has no route" in (no.blocked or "")
    # The reply goes back through the VPC's table and the VPC-side table.
    back = trace(ctx, src(ctx, "web-1"), A("172.16.0.10"), 49152, stateful_return=True)
    assert back.arrived and back.exit == "site:branch"


def test_two_vpns_on_one_virtual_private_gateway_reach_each_other() -> None:
    hub = [
        d("ec2/vpnGateway:VpnGateway", "vgw", vpcId="vpc-id"),
        d("ec2/customerGateway:CustomerGateway", "cgw-a", ipAddress="192.0.2.1"),
        d("ec2/customerGateway:CustomerGateway", "cgw-b", ipAddress="192.0.2.2"),
        d("ec2/vpnConnection:VpnConnection", "vpn-a", customerGatewayId="cgw-a-id",
          vpnGatewayId="vgw-id", staticRoutesOnly=True),
        d("ec2/vpnConnection:VpnConnection", "vpn-b", customerGatewayId="cgw-b-id",
          vpnGatewayId="vgw-id", staticRoutesOnly=True),
        d("ec2/vpnConnectionRoute:VpnConnectionRoute", "ra", vpnConnectionId="vpn-a-id",
          destinationCidrBlock="172.16.1.0/24"),
        d("ec2/vpnConnectionRoute:VpnConnectionRoute", "rb", vpnConnectionId="vpn-b-id",
          destinationCidrBlock="172.16.2.0/24"),
    ]  # fmt: skip
    sites = {
        "192.0.2.1": Site("a", "192.0.2.1", ipaddress.ip_network("172.16.1.0/24")),
        "192.0.2.2": Site("b", "192.0.2.2", ipaddress.ip_network("172.16.2.0/24")),
    }
    ctx = ctx_of(one_vpc(*hub), sites)
    t = trace(
        ctx, Source("site", "a", A("172.16.1.5"), site=sites["192.0.2.1"]), A("172.16.2.5"), 22
    )
    assert t.arrived and t.exit == "site:b"  # VPN CloudHub
    assert any("VPN vpn-b" in h for h in t.hops)


def test_a_type_the_model_does_not_know_is_listed_not_ignored() -> None:
    model = build_model(one_vpc(d("networkfirewall/firewall:Firewall", "fw", vpcId="vpc-id")))
    assert model.unknown == ["aws:networkfirewall/firewall:Firewall fw"]
    # ...while identities, keys and storage carry no traffic.
    quiet = build_model(one_vpc(d("kms/key:Key", "k"), d("iam/role:Role", "r")))
    assert quiet.unknown == []


def test_the_internet_gets_in_only_to_public_addresses() -> None:
    public = [
        d("ec2/internetGateway:InternetGateway", "igw", vpcId="vpc-id"),
        d("ec2/eip:Eip", "eip", instance="web-1-id"),
        d("ec2/securityGroupRule:SecurityGroupRule", "web-in", securityGroupId="web-sg-id",
          type="ingress", protocol="tcp", fromPort=443, toPort=443, cidrBlocks=["0.0.0.0/0"]),
    ]  # fmt: skip
    ctx = ctx_of(one_vpc(*public))
    internet = Source("internet", "internet", INTERNET_V4)
    assert trace(ctx, internet, A("10.0.1.10"), 443).arrived
    assert not trace(ctx, internet, A("10.0.2.10"), 5432).arrived


def _endpoint(name: str, service: str, kind: str = "Interface", **inputs: Any) -> Declared:
    return d("ec2/vpcEndpoint:VpcEndpoint", name, vpcId="vpc-id", serviceName=service,
             vpcEndpointType=kind, **inputs)  # fmt: skip


def test_each_interface_endpoint_has_its_own_address_and_a_trace_lands_on_the_right_one() -> None:
    ctx = ctx_of(one_vpc(
        _endpoint("kms", "com.amazonaws.ap-northeast-1.kms", subnetIds=["data-id"],
                  securityGroupIds=["data-sg-id"]),
        _endpoint("relay", "com.amazonaws.vpce.ap-northeast-1.vpce-svc-0123456789abcdef0",
                  subnetIds=["data-id"], securityGroupIds=["data-sg-id"]),
    ))  # fmt: skip
    kms, relay = (
        next(i for i in ctx.model.interfaces if i.endpoint == n) for n in ("kms", "relay")
    )
    assert kms.address != relay.address  # and neither is db-1's 10.0.2.10
    assert {kms.address, relay.address}.isdisjoint({A("10.0.2.10")})
    assert kms.address is not None and relay.address is not None
    to_kms = trace(ctx, src(ctx, "web-1"), kms.address, 5432)
    assert to_kms.exit == f"host:{kms.name}"
    # A service that is not AWS's is a network the model cannot see, never a host.
    to_relay = trace(ctx, src(ctx, "web-1"), relay.address, 5432)
    assert to_relay.arrived and to_relay.exit == "unknown"


def test_only_an_allowed_gateway_endpoint_counts_as_aws() -> None:
    def exit_via(service: str) -> str | None:
        resources = one_vpc(
            _endpoint("gw", service, "Gateway", routeTableIds=["web-rt-id"],
                      _outputs={"prefixListId": "pl-1"}),
            d("ec2/securityGroupRule:SecurityGroupRule", "web-out", securityGroupId="web-sg-id",
              type="egress", protocol="-1", prefixListIds=["pl-1"]),
        )  # fmt: skip
        model = build_model(resources, prefix_cidrs={"pl-1": ["52.219.0.0/20"]})
        assert model.unknown == []
        ctx = Context(model, {})
        return trace(ctx, src(ctx, "web-1"), A("52.219.1.1"), 443).exit

    assert exit_via("com.amazonaws.ap-northeast-1.s3") == "aws-service"
    assert exit_via("com.amazonaws.us-east-1.s3") == "unknown"
    assert exit_via("com.amazonaws.ap-northeast-1.kms") == "unknown"  # not a gateway service


def test_every_address_of_an_interface_is_modelled() -> None:
    ctx = ctx_of(one_vpc(
        d("ec2/networkInterface:NetworkInterface", "eni", subnetId="data-id",
          privateIps=["10.0.2.20", "10.0.2.21"], securityGroups=["data-sg-id"]),
        d("ec2/networkInterface:NetworkInterface", "counted", subnetId="data-id",
          privateIpsCount=2, securityGroups=["data-sg-id"]),
    ))  # fmt: skip
    second = trace(ctx, src(ctx, "web-1"), A("10.0.2.21"), 5432)
    assert second.arrived and second.exit == "host:eni"
    counted = next(i for i in ctx.model.interfaces if i.name == "counted")
    # AWS numbers it: a primary and two secondaries, none of them an address already taken.
    assert len(counted.addresses) == 3 and len(set(counted.addresses)) == 3
    taken = {a for i in ctx.model.interfaces if i.name != "counted" for a in i.addresses}
    assert taken.isdisjoint(counted.addresses)


def test_ipv6_is_modelled_in_full() -> None:
    ctx = ctx_of([
        d("ec2/vpc:Vpc", "vpc", cidrBlock="10.0.0.0/16", assignGeneratedIpv6CidrBlock=True),
        d("ec2/subnet:Subnet", "web", vpcId="vpc-id", cidrBlock="10.0.1.0/24",
          ipv6CidrBlock="2001:db8:c1a1:ff01::/64", assignIpv6AddressOnCreation=True),
        d("ec2/securityGroup:SecurityGroup", "sg", vpcId="vpc-id",
          ingress=[{"protocol": "-1", "ipv6CidrBlocks": ["::/0"]}],
          egress=[{"protocol": "-1", "ipv6CidrBlocks": ["::/0"]}]),
        d("ec2/routeTable:RouteTable", "rt", vpcId="vpc-id"),
        d("ec2/routeTableAssociation:RouteTableAssociation", "as", subnetId="web-id",
          routeTableId="rt-id"),
        d("ec2/instance:Instance", "a", subnetId="web-id", privateIp="10.0.1.10",
          vpcSecurityGroupIds=["sg-id"]),
        d("ec2/instance:Instance", "b", subnetId="web-id", privateIp="10.0.1.11",
          ipv6Addresses=["2001:db8:c1a1:ff01::b"], vpcSecurityGroupIds=["sg-id"]),
    ])  # fmt: skip
    a = next(i for i in ctx.model.interfaces if i.name == "a")
    assert any(x.version == 6 for x in a.addresses) and a.public_ip  # numbered on launch
    v6 = next(x for x in a.addresses if x.version == 6)
    t = trace(ctx, Source("interface", "a", v6, interface=a), A("2001:db8:c1a1:ff01::b"), 22)
    assert t.arrived and t.exit == "host:b"  # the VPC's IPv6 local route
    assert any("(local)" in h for h in t.hops)


def test_references_the_program_does_not_declare_are_unknown_wherever_they_are() -> None:
    cases = {
        "route target": d("ec2/route:Route", "r", routeTableId="web-rt-id",
                          destinationCidrBlock="10.9.0.0/16", natGatewayId="nat-0abc"),
        "prefix list destination": d("ec2/route:Route", "r", routeTableId="web-rt-id",
                                     destinationPrefixListId="pl-0abc", gatewayId="local"),
        "inline rule's prefix list": d("ec2/securityGroup:SecurityGroup", "g", vpcId="vpc-id",
                                       egress=[{"protocol": "-1", "prefixListIds": ["pl-0abc"]}]),
        "inline rule's group": d("ec2/securityGroup:SecurityGroup", "g", vpcId="vpc-id",
                                 ingress=[{"protocol": "-1", "securityGroups": ["sg-0abc"]}]),
        "inline route": d("ec2/routeTable:RouteTable", "t", vpcId="vpc-id",
                          routes=[{"cidrBlock": "10.9.0.0/16", "transitGatewayId": "tgw-0abc"}]),
        "instance's group": d("ec2/instance:Instance", "i", subnetId="web-id",
                              privateIp="10.0.1.99", vpcSecurityGroupIds=["sg-0abc"]),
        "association's table": d("ec2/routeTableAssociation:RouteTableAssociation", "a",
                                 subnetId="data-id", routeTableId="rtb-0abc"),
        "endpoint's subnet": _endpoint("e", "com.amazonaws.ap-northeast-1.kms",
                                       subnetIds=["subnet-0abc"]),
        "a route with no destination": d("ec2/route:Route", "r", routeTableId="web-rt-id",
                                         transitGatewayId="web-rt-id"),
        "a CIDR that is not one": d("ec2/securityGroupRule:SecurityGroupRule", "x",
                                    securityGroupId="web-sg-id", type="egress", protocol="-1",
                                    cidrBlocks=["10.0.0.0/33"]),
    }  # fmt: skip
    for what, resource in cases.items():
        model = build_model(one_vpc(resource))
        assert any(f" {resource.name} (" in u for u in model.unknown), (what, model.unknown)


def test_a_declared_prefix_list_is_read_not_unknown() -> None:
    model = build_model(one_vpc(
        d("ec2/managedPrefixList:ManagedPrefixList", "pl", addressFamily="IPv4", maxEntries=5,
          entries=[{"cidr": "10.0.1.0/24"}]),
        d("ec2/managedPrefixListEntry:ManagedPrefixListEntry", "e", prefixListId="pl-id",
          cidr="10.0.3.0/24"),
        d("vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in",
          securityGroupId="data-sg-id", prefixListId="pl-id", ipProtocol="tcp", fromPort=22,
          toPort=22),
    ))  # fmt: skip
    assert model.unknown == []
    assert [str(c) for c in model.prefix_cidrs["pl-id"]] == ["10.0.1.0/24", "10.0.3.0/24"]
