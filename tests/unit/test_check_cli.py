"""python -m infra.check: exit 0 when every rule holds, 1 on a violation, 2 on bad input."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

import infra.program
from infra.check import main
from infra.config import StackConfig
from infra.policy.rules import RULES


def test_clean_stack_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "lab", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["violations"] == [] and out["rules"] == len(RULES)
    assert [v["status"] for v in out["proof"]] == ["HOLDS", "HOLDS", "HOLDS"]
    assert {"segment", "lgwan", "fund", "hosts", "backup", "audit", "keys"} <= set(
        out["components"]
    )


def test_a_program_that_opens_a_way_out_exits_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = infra.program.run

    def leaky(config: StackConfig) -> None:
        original(config)
        igw = aws.ec2.InternetGateway("segment-igw")
        aws.ec2.Route(
            "segment-default",
            route_table_id="segment-app-rt-id",
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=pulumi.ResourceOptions(),
        )

    monkeypatch.setattr(infra.program, "run", leaky)
    assert main(["--stack", "lab"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION CDC-NET-001 [critical] segment-igw" in out
    assert "VIOLATION CDC-NET-002 [critical] segment-default" in out
    assert "proof closed    VIOLATED" in out


def test_unknown_stack_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "nowhere"]) == 2
    assert "Pulumi.nowhere.yaml" in capsys.readouterr().err


def test_rule_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rules", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows][:2] == ["CDC-NET-001", "CDC-NET-002"]


def test_a_program_that_fails_under_the_mocks_is_a_named_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(config: StackConfig) -> None:
        raise RuntimeError("subnet index out of range")

    monkeypatch.setattr(infra.program, "run", broken)
    assert main(["--stack", "lab"]) == 4
    out = capsys.readouterr()
    assert "the check could not run: RuntimeError: subnet index out of range" in out.err
    assert "Traceback" not in out.out + out.err
