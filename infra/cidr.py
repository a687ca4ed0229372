"""CIDR planning: a zone's block split into one subnet per availability zone."""

from __future__ import annotations

import ipaddress
import math

# AWS keeps the network address, the next three (router, DNS, future) and the broadcast.
AWS_RESERVED_HEAD = 4
MAX_SUBNET_PREFIX = 28


def split_for_azs(block: ipaddress.IPv4Network, count: int) -> list[ipaddress.IPv4Network]:
    """`count` equal, disjoint subnets of `block`, in address order, one per AZ.

    Raises ValueError when the pieces would be smaller than AWS allows (/28).
    """
    if count < 1:
        raise ValueError(f"need at least one subnet, got {count}")
    bits = math.ceil(math.log2(count)) if count > 1 else 0
    prefix = block.prefixlen + bits
    if prefix > MAX_SUBNET_PREFIX:
        raise ValueError(
            f"{block} is too small for {count} subnets: each would be /{prefix}, "
            f"AWS allows at most /{MAX_SUBNET_PREFIX}"
        )
    return list(block.subnets(new_prefix=prefix))[:count]


def aws_reserved(subnet: ipaddress.IPv4Network) -> frozenset[ipaddress.IPv4Address]:
    first = subnet.network_address
    return frozenset({first + i for i in range(AWS_RESERVED_HEAD)} | {subnet.broadcast_address})
