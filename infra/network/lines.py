"""LgwanLink and DedicatedLine: the two private lines into the data center.

Each line has its own transit gateway, so they share nothing. A single virtual private gateway
with two customer gateways would be AWS VPN CloudHub, which routes between the sites: LGWAN
and the fund's line could reach each other. Each transit gateway has default association and
propagation off and two route tables:
- the line side knows only the one data-center zone the line serves (LGWAN: app; fund: intake);
- the VPC side knows only the line's remote CIDR.
The VPC's route to the remote CIDR goes into that zone's route table alone.

Connectivity resources are protected, and the inputs that would force a replacement are
ignored after creation: a config edit can never silently tear down and rebuild a live line.
Changing a line is a deliberate procedure (unprotect, targeted replace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.common import tags
from infra.config import Line, StackConfig

# Strong IKEv2-only tunnel settings for a Site-to-Site VPN.
VPN_TUNNEL = {
    "ike_versions": ["ikev2"],
    "phase1_encryption_algorithms": ["AES256-GCM-16"],
    "phase1_integrity_algorithms": ["SHA2-384"],
    "phase1_dh_group_numbers": [20],
    "phase2_encryption_algorithms": ["AES256-GCM-16"],
    "phase2_integrity_algorithms": ["SHA2-384"],
    "phase2_dh_group_numbers": [20],
}
REPLACING_INPUTS = {
    "customer_gateway": ["bgpAsn", "ipAddress", "type"],
    "vpn": ["customerGatewayId", "transitGatewayId", "type", "staticRoutesOnly"],
    "tgw": ["amazonSideAsn"],
    "vif": ["connectionId", "vlan", "bgpAsn", "addressFamily", "dxGatewayId"],
    "dx_gateway": ["amazonSideAsn"],
}


@dataclass
class LineArgs:
    config: StackConfig
    vpc_id: pulumi.Input[str]
    zone: str  # the one data-center zone this line serves
    subnet_ids: list[pulumi.Input[str]]  # that zone's subnets, one per AZ
    route_table_id: pulumi.Input[str]  # that zone's route table


def _opts(parent: pulumi.Resource, kind: str | None = None) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        parent=parent, protect=True, ignore_changes=REPLACING_INPUTS.get(kind or "", [])
    )


class _PrivateLine(pulumi.ComponentResource):
    transit_gateway: aws.ec2transitgateway.TransitGateway
    line_attachment_id: pulumi.Output[str]

    def __init__(
        self,
        type_token: str,
        name: str,
        line: Line,
        args: LineArgs,
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        super().__init__(type_token, name, None, opts)
        config = args.config
        remote = str(config.zones[line.name].cidr)
        local = str(config.zones[args.zone].cidr)
        self.transit_gateway = aws.ec2transitgateway.TransitGateway(
            f"{name}-tgw",
            description=f"claims-dc {config.stack}: {line.name} line only",
            amazon_side_asn=64512,
            default_route_table_association="disable",
            default_route_table_propagation="disable",
            auto_accept_shared_attachments="disable",
            dns_support="disable",
            vpn_ecmp_support="enable",
            tags=tags(config, f"{line.name}-tgw"),
            opts=_opts(self, "tgw"),
        )
        tgw = self.transit_gateway
        vpc_attachment = aws.ec2transitgateway.VpcAttachment(
            f"{name}-vpc-attachment",
            transit_gateway_id=tgw.id,
            vpc_id=args.vpc_id,
            subnet_ids=args.subnet_ids,
            transit_gateway_default_route_table_association=False,
            transit_gateway_default_route_table_propagation=False,
            tags=tags(config, f"{line.name}-vpc-attachment"),
            opts=_opts(self),
        )
        self.line_attachment_id = (
            self._vpn(name, line, config, tgw)
            if line.kind == "vpn"
            else self._dx(name, line, config, tgw, local)
        )
        line_side = aws.ec2transitgateway.RouteTable(
            f"{name}-line-side", transit_gateway_id=tgw.id,
            tags=tags(config, f"{line.name}-line-side"), opts=_opts(self),
        )  # fmt: skip
        vpc_side = aws.ec2transitgateway.RouteTable(
            f"{name}-vpc-side", transit_gateway_id=tgw.id,
            tags=tags(config, f"{line.name}-vpc-side"), opts=_opts(self),
        )  # fmt: skip
        aws.ec2transitgateway.RouteTableAssociation(
            f"{name}-line-side-assoc", transit_gateway_attachment_id=self.line_attachment_id,
            transit_gateway_route_table_id=line_side.id, opts=_opts(self),
        )  # fmt: skip
        aws.ec2transitgateway.RouteTableAssociation(
            f"{name}-vpc-side-assoc", transit_gateway_attachment_id=vpc_attachment.id,
            transit_gateway_route_table_id=vpc_side.id, opts=_opts(self),
        )  # fmt: skip
        aws.ec2transitgateway.Route(
            f"{name}-to-{args.zone}", destination_cidr_block=local,
            transit_gateway_attachment_id=vpc_attachment.id,
            transit_gateway_route_table_id=line_side.id, opts=_opts(self),
        )  # fmt: skip
        aws.ec2transitgateway.Route(
            f"{name}-to-{line.name}", destination_cidr_block=remote,
            transit_gateway_attachment_id=self.line_attachment_id,
            transit_gateway_route_table_id=vpc_side.id, opts=_opts(self),
        )  # fmt: skip
        aws.ec2.Route(
            f"{name}-{args.zone}-route",
            route_table_id=args.route_table_id,
            destination_cidr_block=remote,
            transit_gateway_id=tgw.id,
            opts=pulumi.ResourceOptions(parent=self, protect=True, depends_on=[vpc_attachment]),
        )
        self.register_outputs(
            {"transit_gateway_id": tgw.id, "line_attachment_id": self.line_attachment_id}
        )

    def _vpn(
        self, name: str, line: Line, config: StackConfig, tgw: aws.ec2transitgateway.TransitGateway
    ) -> pulumi.Output[str]:
        gateway = aws.ec2.CustomerGateway(
            f"{name}-cgw",
            bgp_asn=str(line.bgp_asn),
            ip_address=str(line.customer_gateway_ip),
            type="ipsec.1",
            tags=tags(config, f"{line.name}-cgw"),
            opts=_opts(self, "customer_gateway"),
        )
        tunnel: dict[str, Any] = {
            f"tunnel{n}_{k}": v for n in (1, 2) for k, v in VPN_TUNNEL.items()
        }
        vpn = aws.ec2.VpnConnection(
            f"{name}-vpn",
            customer_gateway_id=gateway.id,
            transit_gateway_id=tgw.id,
            type="ipsec.1",
            static_routes_only=True,
            tags=tags(config, f"{line.name}-vpn"),
            opts=_opts(self, "vpn"),
            **tunnel,
        )
        return vpn.transit_gateway_attachment_id

    def _dx(
        self,
        name: str,
        line: Line,
        config: StackConfig,
        tgw: aws.ec2transitgateway.TransitGateway,
        local: str,
    ) -> pulumi.Output[str]:
        dx_gateway = aws.directconnect.Gateway(
            f"{name}-dxgw", name=f"claims-dc-{config.stack}-{line.name}", amazon_side_asn="64513",
            opts=_opts(self, "dx_gateway"),
        )  # fmt: skip
        association = aws.directconnect.GatewayAssociation(
            f"{name}-dxgw-assoc",
            dx_gateway_id=dx_gateway.id,
            associated_gateway_id=tgw.id,
            allowed_prefixes=[local],  # the only prefix the line's site ever learns
            opts=_opts(self),
        )
        aws.directconnect.TransitVirtualInterface(
            f"{name}-vif",
            name=f"claims-dc-{config.stack}-{line.name}",
            connection_id=str(line.dx_connection_id),
            dx_gateway_id=dx_gateway.id,
            vlan=int(line.vlan or 0),
            bgp_asn=line.bgp_asn,
            address_family="ipv4",
            tags=tags(config, f"{line.name}-vif"),
            opts=_opts(self, "vif"),
        )
        attachment = aws.ec2transitgateway.get_direct_connect_gateway_attachment_output(
            transit_gateway_id=tgw.id,
            dx_gateway_id=dx_gateway.id,
            opts=pulumi.InvokeOutputOptions(depends_on=[association]),
        )
        return attachment.id


class LgwanLink(_PrivateLine):
    """The city's terminals over LGWAN, to the application zone only."""

    def __init__(
        self, name: str, args: LineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "claims-dc:network:LgwanLink", name, args.config.lines["lgwan"], args, opts
        )


class DedicatedLine(_PrivateLine):
    """The payment fund's sender over its dedicated line, to the intake zone only."""

    def __init__(
        self, name: str, args: LineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "claims-dc:network:DedicatedLine", name, args.config.lines["fund"], args, opts
        )
