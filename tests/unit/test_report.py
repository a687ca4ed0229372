"""The linkage report: what the council reads, and the scopes for Network Access Analyzer."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import validate_parameters

from infra.offline import evaluate
from infra.proof import prove_evaluation
from infra.proof.report import access_scopes, markdown, write_report, zone_dot

REPO = Path(__file__).resolve().parents[2]
WHEN = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def lab() -> tuple:
    ev = evaluate(REPO / "Pulumi.lab.yaml")
    return ev.config, prove_evaluation(ev)


def test_markdown_has_lines_verdicts_hash_and_japanese_time(lab: tuple) -> None:
    config, proof = lab
    text = markdown(config, proof, "ab" * 32, WHEN)
    assert "総合行政ネットワーク (LGWAN)" in text and "支払基金 専用線" in text
    assert "| lgwan | app | 443/tcp |" in text
    assert "| fund | intake | 22/tcp (sftp) |" in text
    assert text.count("**成立 / HOLDS**") == 3
    assert "2026-11-26T12:00:00+09:00" in text  # UTC in data, Tokyo time for people
    assert "ab" * 32 in text


def test_diagram_has_every_allowed_flow_and_no_internet_edge(lab: tuple) -> None:
    config, _ = lab
    dot = zone_dot(config)
    assert dot.count(" -> ") == len(config.allowed())
    assert "internet ->" not in dot and "-> internet" not in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_files_are_written(lab: tuple, tmp_path: Path) -> None:
    config, proof = lab
    report = write_report(config, proof, REPO / "Pulumi.lab.yaml", tmp_path, WHEN)
    page = report.html.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page and "@page" in page
    assert report.svg.read_text().lstrip().startswith("<?xml")
    assert len(report.config_sha256) == 64


def test_a_violated_verdict_shows_its_path(lab: tuple) -> None:
    config, proof = lab
    proof.verdicts[0].violate("a test counterexample", ["hop one", "hop two"])
    try:
        text = markdown(config, proof, "0" * 64, WHEN)
        assert "**違反あり / VIOLATED**" in text and "1. hop two" in text
    finally:
        proof.verdicts[0].status = "HOLDS"
        proof.verdicts[0].counterexamples.clear()


def test_access_scopes_are_valid_api_requests(lab: tuple) -> None:
    config, _ = lab
    model = botocore.session.get_session().get_service_model("ec2")
    shape = model.operation_model("CreateNetworkInsightsAccessScope").input_shape
    scopes = access_scopes(config)
    assert set(scopes) == {"closed", "policy", "separated"}
    for name, scope in scopes.items():
        validate_parameters({**scope, "ClientToken": f"claims-dc-{name}"}, shape)
    assert len(scopes["policy"]["ExcludePaths"]) == len(config.allowed())
