"""python -m ops.fleet new: a municipality joins the fleet as a stack file whose networks and
ASNs collide with no other tenant, whose blanks the loader refuses by name until filled in,
and whose code and name are checked against the national list."""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError, load_file, placeholders
from infra.proof.fleet import check_fleet
from ops.fleet.__main__ import main
from ops.fleet.codes import code_list, look_up, source
from ops.fleet.onboard import FLOWS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    directory = tmp_path / "fleet"
    directory.mkdir()
    for stack in ("lab", "omuta-prod"):
        shutil.copy(REPO / f"Pulumi.{stack}.yaml", directory)
    return directory


def _new(fleet: Path, capsys: Any, *args: str) -> dict[str, Any]:
    assert main(["new", *args, "--fleet", str(fleet), "--json"]) == 0, capsys.readouterr().err
    return dict(json.loads(capsys.readouterr().out))


def _fill(path: Path, n: int) -> None:
    """What the municipality and the fund tell us, in documentation addresses."""
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    config = doc["config"]
    config["claims-dc:zones"]["lgwan"]["cidr"] = f"172.16.{n}.0/24"
    config["claims-dc:zones"]["fund"]["cidr"] = "172.31.1.0/28"
    config["claims-dc:lines"]["lgwan"]["customerGatewayIp"] = f"198.51.100.{n}"
    config["claims-dc:lines"]["fund"]["customerGatewayIp"] = "203.0.113.99"
    config["aws:allowedAccountIds"] = [f"1111222233{n:02d}"]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def test_a_new_tenant_loads_once_its_blanks_are_filled_and_collides_with_none(
    fleet: Path, capsys: Any
) -> None:
    made = _new(fleet, capsys, "--code", "401307", "--name", "福岡市",
                "--operations-account", "444455556666")  # fmt: skip
    path = Path(made["stack_file"])
    assert path.name == "Pulumi.401307.yaml"
    assert {b["key"] for b in made["fill_in"]} == {
        "claims-dc:zones.lgwan.cidr", "claims-dc:zones.fund.cidr",
        "claims-dc:lines.lgwan.customerGatewayIp", "claims-dc:lines.fund.customerGatewayIp",
        "aws:allowedAccountIds",
    }  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        load_file(path)
    assert len(refused.value.problems) == 5
    assert all("not filled in yet (FILL IN:" in p for p in refused.value.problems)
    assert any("claims-dc:lines.lgwan.customerGatewayIp" in p for p in refused.value.problems)
    _fill(path, 7)
    config = load_file(path)
    assert config.municipality.code == "401307" and config.municipality.name == "福岡市"
    others = [load_file(fleet / f"Pulumi.{s}.yaml") for s in ("lab", "omuta-prod")]
    assert not any(config.vpc_cidr.overlaps(o.vpc_cidr) for o in others)
    assert {line.bgp_asn for line in config.lines.values()}.isdisjoint(
        {line.bgp_asn for o in others for line in o.lines.values()}
    )
    assert config.host_key_pinned_by("intake-1") == ["fund"]
    assert config.account_id == "111122223307"
    assert config.fleet_reader is not None
    assert config.fleet_reader.operations_account_id == "444455556666"
    assert config.fleet_reader.external_id.startswith("401307-")
    assert check_fleet(sorted(fleet.glob("Pulumi.*.yaml"))).holds


def test_a_hundred_tenants_each_get_their_own_networks_and_asns(
    tmp_path: Path, capsys: Any
) -> None:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    codes = [m for m in code_list().values() if m.city][:100]
    for m in codes:
        _new(fleet, capsys, "--code", m.code, "--name", m.name)
    docs = [yaml.safe_load(p.read_text(encoding="utf-8"))["config"]
            for p in sorted(fleet.glob("Pulumi.*.yaml"))]  # fmt: skip
    vpcs = [ipaddress.IPv4Network(d["claims-dc:vpcCidr"]) for d in docs]
    assert len(vpcs) == 100 and len(set(vpcs)) == 100
    asns = [line["bgpAsn"] for d in docs for line in d["claims-dc:lines"].values()]
    assert len(set(asns)) == 200 and all(64512 <= a <= 65534 for a in asns)
    # Without --operations-account it is a blank too; each tenant its own external ID.
    assert all(len(placeholders(d)) == 6 for d in docs)
    assert len({d["claims-dc:fleetReader"]["externalId"] for d in docs}) == 100


def test_the_flow_policy_written_is_the_designs(fleet: Path) -> None:
    for stack in ("lab", "omuta-prod"):
        doc = yaml.safe_load((fleet / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
        assert doc["config"]["claims-dc:flows"] == FLOWS


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--code", "402027", "--name", "大牟田市"], "check digit must be 8"),
        (["--code", "40202", "--name", "大牟田市"], "six digits"),
        (
            ["--code", "\uff14\uff10\uff12\uff10\uff12\uff18", "--name", "大牟田市"],
            "is a tenant already",
        ),  # full-width digits: NFKC
        (["--code", "999997", "--name", "ラボ市"], "not on the list of local government codes"),
        (["--code", "401307", "--name", "大牟田市"], "so the name is '福岡市'"),
        (["--code", "401307", "--name", "福岡市", "--region", "us-east-1"], "stays in Japan"),
        (["--code", "401307", "--name", "福岡市", "--stack", "Omuta Prod"], "--stack"),
        (["--code", "401307", "--name", "福岡市", "--stack", "lab"], "exists"),
    ],
)
def test_bad_input_is_refused_by_name_and_nothing_is_written(
    fleet: Path, capsys: Any, args: list[str], says: str
) -> None:
    before = sorted(p.name for p in fleet.iterdir())
    assert main(["new", *args, "--fleet", str(fleet)]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.name for p in fleet.iterdir()) == before


def test_an_unreadable_stack_file_in_the_fleet_is_named(fleet: Path, capsys: Any) -> None:
    (fleet / "Pulumi.broken.yaml").write_bytes(b"config: [\xff")
    assert main(["new", "--code", "401307", "--name", "福岡市", "--fleet", str(fleet)]) == 2
    assert "Pulumi.broken.yaml: cannot be read as a stack file" in capsys.readouterr().err


def test_the_code_list_says_where_it_comes_from() -> None:
    assert "soumu.go.jp" in source() and "2020-10-12" in source()
    assert len(code_list()) == 1788  # 47 prefectures, 1,741 municipalities
    assert look_up("402028", "福岡県大牟田市").name == "大牟田市"
    assert look_up("400009", "福岡県").city == ""


def test_operators_onboarding_at_once_get_different_networks(tmp_path: Path) -> None:
    """The directory lock: eight `new` at the same moment, eight distinct VPCs and ASNs."""
    import threading

    from ops.fleet.onboard import new_tenant

    fleet = tmp_path / "fleet"
    fleet.mkdir()
    chosen = [m for m in code_list().values() if m.city][:8]
    start = threading.Barrier(len(chosen))
    errors: list[BaseException] = []

    def onboard(m: Any) -> None:
        start.wait()
        try:
            new_tenant(fleet, m, region="ap-northeast-1", stack=m.code,
                       lines={"lgwan": "vpn", "fund": "vpn"})  # fmt: skip
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=onboard, args=(m,)) for m in chosen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    docs = [yaml.safe_load(p.read_text(encoding="utf-8"))["config"]
            for p in fleet.glob("Pulumi.*.yaml")]  # fmt: skip
    assert len({d["claims-dc:vpcCidr"] for d in docs}) == 8
    assert len({ln["bgpAsn"] for d in docs for ln in d["claims-dc:lines"].values()}) == 16
