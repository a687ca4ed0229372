"""CIDR planning, and config validation over generated address plans (hypothesis)."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.cidr import aws_reserved, split_for_azs
from infra.config import ConfigError, parse

REPO = Path(__file__).resolve().parents[2]
LAB_RAW: dict[str, Any] = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text("utf-8"))["config"]

blocks = st.builds(
    lambda addr, prefix: ipaddress.IPv4Network((addr, prefix), strict=False),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=16, max_value=28),
)


@given(block=blocks, count=st.integers(min_value=1, max_value=6))
def test_split_gives_disjoint_equal_subnets_inside_the_block(
    block: ipaddress.IPv4Network, count: int
) -> None:
    try:
        subnets = split_for_azs(block, count)
    except ValueError as exc:
        assert "too small" in str(exc)
        assert block.prefixlen + (count - 1).bit_length() > 28
        return
    assert len(subnets) == count
    assert len({s.prefixlen for s in subnets}) == 1
    for i, a in enumerate(subnets):
        assert a.subnet_of(block)
        for b in subnets[i + 1 :]:
            assert not a.overlaps(b)
        assert len(aws_reserved(a)) == 5


@settings(max_examples=60, deadline=None)
@given(last_octet=st.integers(min_value=0, max_value=255))
def test_host_addresses_accepted_exactly_when_usable(last_octet: int) -> None:
    raw = copy.deepcopy(LAB_RAW)
    raw["claims-dc:hosts"]["app-1"]["address"] = f"10.231.10.{last_octet}"
    # AZ subnets are 10.231.10.0/25 and .128/25; the router takes .254.
    reserved = {0, 1, 2, 3, 127, 128, 129, 130, 131, 254, 255}
    if last_octet in reserved:
        with pytest.raises(ConfigError, match="reserved"):
            parse(raw, stack="lab", source="t")
    else:
        config = parse(raw, stack="lab", source="t")
        zone = config.zones["app"]
        assert zone.subnet_of(config.hosts["app-1"].address) == (0 if last_octet < 128 else 1)


@settings(max_examples=60, deadline=None)
@given(port=st.one_of(st.integers(), st.booleans(), st.text(max_size=5), st.none()))
def test_flow_ports_accepted_exactly_when_valid(port: object) -> None:
    raw = copy.deepcopy(LAB_RAW)
    raw["claims-dc:flows"][0]["port"] = port
    valid = isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
    if valid:
        parse(raw, stack="lab", source="t")
    else:
        with pytest.raises(ConfigError, match=r"claims-dc:flows\[0\]\.port"):
            parse(raw, stack="lab", source="t")
