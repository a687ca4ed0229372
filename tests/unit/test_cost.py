"""The cost estimate (python -m infra.check --cost): figures checked by hand against AWS's
published prices, storage over time, the on-premises comparison, and bad input named."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import infra.check
from infra.config import ConfigError, parse
from infra.cost import CostError, Estimate, PriceTable, estimate, load_prices
from infra.offline import Evaluation, evaluate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab() -> Evaluation:
    return evaluate(REPO / "Pulumi.lab.yaml")


@pytest.fixture(scope="module")
def lab_cost(lab: Evaluation) -> Estimate:
    return estimate(lab, today=dt.date(2025, 6, 1))


def _item(e: Estimate, what: str) -> Any:
    [item] = [i for i in e.items if i.what == what]
    return item


def test_an_instance_hour_checked_by_hand_against_the_published_price(lab_cost: Estimate) -> None:
    # AWS's on-demand page, Asia Pacific (Tokyo), Linux: t3.medium $0.0544 an hour; a month is
    # 730 hours in AWS's own calculator.
    item = _item(lab_cost, "EC2 hosts-db-1 (t3.medium)")
    assert item.first_month == pytest.approx(730 * 0.0544) == pytest.approx(39.712)
    assert item.total == pytest.approx(60 * 39.712)
    disk = _item(lab_cost, "EBS hosts-db-1 gp3 40 GB")  # gp3 in Tokyo: $0.096 a GB-month
    assert disk.first_month == pytest.approx(40 * 0.096)


def test_an_interface_endpoint_checked_by_hand_against_the_published_price(
    lab_cost: Estimate,
) -> None:
    # AWS PrivateLink, Tokyo: $0.014 per endpoint per AZ an hour; the lab's are in two AZs.
    item = _item(lab_cost, "interface endpoint segment-kms")
    assert item.first_month == pytest.approx(2 * 730 * 0.014) == pytest.approx(20.44)
    vpn = _item(lab_cost, "Site-to-Site VPN lgwan-vpn")  # $0.048 a connection-hour in Tokyo
    assert vpn.first_month == pytest.approx(730 * 0.048)
    assert not [i for i in lab_cost.items if "segment-s3" in i.what]  # the gateway is free


def test_every_declared_priced_resource_has_its_line(lab: Evaluation, lab_cost: Estimate) -> None:
    named = " ".join(i.what for i in lab_cost.items)
    for type_token in (
        "aws:ec2/instance:Instance",
        "aws:kms/key:Key",
        "aws:ec2/vpnConnection:VpnConnection",
        "aws:ec2transitgateway/vpcAttachment:VpcAttachment",
    ):
        for r in lab.of_type(type_token):
            assert r.name in named, r.name
    interface = [
        r
        for r in lab.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if r.inputs["vpcEndpointType"] == "Interface"
    ]
    assert sum("interface endpoint segment-" in i.what for i in lab_cost.items) == len(interface)


def test_backup_storage_grows_with_the_lock_and_the_lifecycle(lab_cost: Estimate) -> None:
    bucket = _item(lab_cost, "S3 backup-bucket (ap-northeast-1)")
    # Month 1: 20 GB full + 0.5 GB x 30.4 days = 35.2 GB; the newest 30 days (15 GB) in
    # STANDARD at $0.025, the rest in STANDARD_IA at $0.0138 (the lifecycle's transition).
    assert bucket.monthly_usd[0] == pytest.approx(15 * 0.025 + 20.2 * 0.0138)
    # Kept 35 days locked + 400 noncurrent: after 435 days the volume stops growing.
    assert bucket.monthly_usd[-1] == bucket.monthly_usd[-2]
    assert bucket.monthly_usd[-1] == pytest.approx(15 * 0.025 + (20 + 0.5 * 435 - 15) * 0.0138)
    assert bucket.monthly_usd[3] > bucket.monthly_usd[0]


def test_the_osaka_replica_is_priced_in_osaka_with_its_transfer() -> None:
    e = estimate(evaluate(REPO / "Pulumi.omuta-prod.yaml"), today=dt.date(2025, 6, 1))
    assert _item(e, "S3 backup-replica (ap-northeast-3)").total > 0
    transfer = _item(e, "replication to ap-northeast-3")
    assert transfer.monthly_usd[1] == pytest.approx(0.8 * 30.4 * 0.09)
    assert transfer.monthly_usd[0] > transfer.monthly_usd[1]  # the first full copy
    assert any("dxcon-fg5abc12" in note for note in e.notes)  # the port is not the program's


def test_the_comparison_with_the_on_premises_baseline(lab_cost: Estimate) -> None:
    # 4.8M renewal + 0.48M x 5 years + (10,000 + 8,000) x 60 months
    assert lab_cost.on_premises_total_yen() == pytest.approx(8_280_000)
    out = lab_cost.as_dict()
    assert out["total_yen"] == round(lab_cost.total_usd * 150)
    assert out["difference_yen"] == round(8_280_000 - lab_cost.total_usd * 150)
    assert sum(c["total"] for c in out["components"].values()) == pytest.approx(
        out["total_usd"], abs=0.05
    )


def test_an_old_price_table_is_named_as_old(lab: Evaluation) -> None:
    fresh = estimate(lab, today=dt.date(2025, 6, 1))
    old = estimate(lab, today=dt.date(2026, 12, 1))
    assert not any("days old" in n for n in fresh.notes)
    assert "2025-01" in old.notes[0] and "refresh" in old.notes[0]


def test_a_type_the_table_does_not_price_is_named(lab: Evaluation) -> None:
    prices = load_prices()
    regions = {k: dict(v) for k, v in prices.regions.items()}
    regions["ap-northeast-1"]["ec2InstanceHour"] = {"t3.small": 0.0272}
    with pytest.raises(CostError, match=re.escape("ap-northeast-1 ec2InstanceHour t3.medium")):
        estimate(lab, PriceTable(prices.as_of, 730, prices.source, regions))


def _stack(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump({"config": raw}), encoding="utf-8")
    return path


def test_a_stack_without_a_cost_block_is_a_usage_error(
    tmp_path: Path,
    lab_raw: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    del lab_raw["claims-dc:cost"]
    _stack(tmp_path, lab_raw)
    monkeypatch.setattr(infra.check, "REPO", tmp_path)
    assert infra.check.main(["--stack", "lab", "--cost"]) == 2
    err = capsys.readouterr().err
    assert "no claims-dc:cost block" in err and "backupFullGb" in err


def test_the_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert infra.check.main(["--stack", "lab", "--cost", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["months"] == 60 and out["currency"] == "USD"
    assert set(out["components"]) == {
        "hosts",
        "segment",
        "lgwan",
        "fund",
        "backup",
        "audit",
        "keys",
    }
    assert out["assumptions"]["backupFullGb"] == 20


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c["usage"].update(backupFullGb=-1), "usage.backupFullGb = -1"),
        (lambda c: c["usage"].update(lgwanGbPerMonth="lots"), "usage.lgwanGbPerMonth = 'lots'"),
        (lambda c: c["usage"].pop("flowLogGbPerMonth"), "usage.flowLogGbPerMonth = None"),
        (lambda c: c["usage"].update(egressGb=1), "usage.egressGb = 1: unknown key"),
        (lambda c: c.update(jpyPerUsd=True), "jpyPerUsd = True"),
        (lambda c: c["onPremises"].pop("serverRenewalYen"), "onPremises.serverRenewalYen"),
        (lambda c: c.update(discount=0.2), "cost.discount = 0.2: unknown key"),
    ],
)
def test_bad_cost_input_is_named(lab_raw: dict[str, Any], edit: Any, named: str) -> None:
    edit(lab_raw["claims-dc:cost"])
    with pytest.raises(ConfigError) as caught:
        parse(lab_raw, stack="lab", source="Pulumi.lab.yaml")
    assert named in str(caught.value)
