"""Synthetic tenants load, do not overlap one another, and prove clean."""

from __future__ import annotations

import json
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
from ops.fleet.__main__ import main as fleet_main


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


def test_a_clean_fleet_holds_in_parallel_as_in_one_process(tmp_path: Path) -> None:
    files = write_tenants(tmp_path, 3)
    parallel, serial = check_fleet(files, jobs=2), check_fleet(files, jobs=1)
    assert parallel.holds and len(parallel.tenants) == 3 and parallel.jobs == 2
    # The same findings either way (routes in any order: the program registers them as it goes).
    strip = [(t.stack, t.verdicts, t.blocks, sorted(t.routed)) for t in serial.tenants]
    assert [(t.stack, t.verdicts, t.blocks, sorted(t.routed)) for t in parallel.tenants] == strip


def test_a_tenant_that_fails_is_named_and_the_others_are_still_checked(tmp_path: Path) -> None:
    files = write_tenants(tmp_path, 3)
    doc = yaml.safe_load(files[1].read_text())
    doc["config"]["claims-dc:vpcCidr"] = "10.2.0.0/33"
    files[1].write_text(yaml.safe_dump(doc))
    result = check_fleet(files, jobs=2)
    assert not result.holds
    bad = result.tenants[1]
    assert not bad.holds and any("10.2.0.0/33" in p for p in bad.problems)
    assert result.tenants[0].holds and result.tenants[2].holds  # checked all the same


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
    assert "2 tenants (0 failing), 0 fleet problem(s)" in capsys.readouterr().out
    assert fleet_main(["check", "--fleet", str(tmp_path), "--json", "--jobs", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["jobs"] == 1
    assert check_main(["--fleet", str(tmp_path / "empty")]) == 2


def test_a_fleet_check_past_its_deadline_names_the_tenants_left(tmp_path: Path) -> None:
    files = write_tenants(tmp_path, 2)
    result = check_fleet(files, jobs=2, tenant_seconds=0.01)
    assert not result.holds
    assert all(any("no result within the fleet's deadline" in p for p in t.problems)
               for t in result.tenants)  # fmt: skip


def test_the_mocks_are_sped_up_only_while_a_program_runs() -> None:
    import gc

    from pulumi.runtime import resource as sdk_resource

    from infra import offline

    # If the SDK renames what is replaced, the speed-up is gone silently: this says so.
    original = sdk_resource._get_stack_trace
    before = gc.get_threshold()
    with offline._fast_mocks():
        assert gc.get_threshold() == offline.FEW_COLLECTIONS
        assert not sdk_resource._get_stack_trace().frames
    assert gc.get_threshold() == before
    assert sdk_resource._get_stack_trace is original
