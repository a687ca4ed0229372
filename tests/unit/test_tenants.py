"""Synthetic tenants load, do not overlap one another, and prove clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.check import main as check_main
from infra.config import load_file
from infra.offline import evaluate
from infra.proof import model_of
from infra.proof.fleet import check_fleet
from infra.proof.tenants import tenant_config, write_tenants
from infra.proof.verdicts import prove


def test_tenants_are_valid_and_disjoint(tmp_path: Path) -> None:
    configs = [load_file(p) for p in write_tenants(tmp_path, 12)]
    blocks = [z.cidr for c in configs for z in c.zones.values()]
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert len({c.municipality.code for c in configs}) == 12


def test_a_tenant_proves_clean(tmp_path: Path) -> None:
    (path,) = write_tenants(tmp_path, 1)
    assert prove(model_of(evaluate(path)), load_file(path)).holds


def test_tenant_index_is_bounded() -> None:
    with pytest.raises(ValueError, match="outside"):
        tenant_config(0)


def _write(directory: Path, *documents: dict[str, Any]) -> list[Path]:
    paths = []
    for i, doc in enumerate(documents, 1):
        path = directory / f"Pulumi.tenant-{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(path)
    return paths


def test_a_clean_fleet_holds(tmp_path: Path) -> None:
    result = check_fleet(write_tenants(tmp_path, 3))
    assert result.holds and len(result.tenants) == 3


def test_tenants_sharing_a_line_must_not_overlap(tmp_path: Path) -> None:
    one, two = tenant_config(1), tenant_config(2)
    # Tenant 2 reuses tenant 1's LGWAN customer gateway and its LGWAN range.
    two["config"]["claims-dc:lines"]["lgwan"] = one["config"]["claims-dc:lines"]["lgwan"]
    two["config"]["claims-dc:zones"]["lgwan"] = one["config"]["claims-dc:zones"]["lgwan"]
    result = check_fleet(_write(tmp_path, one, two))
    assert not result.holds
    assert any("overlaps" in p and "share the line 203.0.113.2" in p for p in result.problems)


def test_a_tenant_routing_towards_another_is_flagged(tmp_path: Path) -> None:
    one, two = tenant_config(1), tenant_config(2)
    # Tenant 2's LGWAN range is set to tenant 1's VPC: its app table routes there.
    two["config"]["claims-dc:zones"]["lgwan"] = {"cidr": "10.1.0.0/24"}
    result = check_fleet(_write(tmp_path, one, two))
    assert any("tenant-2 routes 10.1.0.0/24 towards tenant-1's VPC" in p for p in result.problems)


def test_fleet_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tenants(tmp_path, 2)
    assert check_main(["--fleet", str(tmp_path)]) == 0
    assert "2 tenants, 0 fleet problem(s)" in capsys.readouterr().out
    assert check_main(["--fleet", str(tmp_path / "empty")]) == 2
