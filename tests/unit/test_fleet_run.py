"""python -m ops.fleet run: one playbook over every tenant through ansible-runner, a few at
once, each with its own inventory and log; one tenant's failure does not stop the others."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.fleet import runner
from ops.fleet.__main__ import main

PLAYBOOKS = Path(__file__).resolve().parents[1] / "data" / "fleet-playbooks"


def _inventory(inventories: Path, stack: str, fail: bool) -> None:
    directory = inventories / stack
    directory.mkdir(parents=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "fleet_test_tenant": stack, "fleet_test_fail": fail}  # fmt: skip
    doc = {"all": {"hosts": {f"{stack}-host": host}}}
    (directory / runner.INVENTORY_NAME).write_text(yaml.safe_dump(doc))


def test_each_tenant_runs_alone_and_a_failure_stops_no_other(tmp_path: Path) -> None:
    inventories = tmp_path / "inventories"
    for stack, fail in (("a", False), ("b", True), ("c", False)):
        _inventory(inventories, stack, fail)
    runs = runner.run_fleet(["a", "b", "c", "d"], inventories, "daily_backup.yml",
                            tmp_path / "out", parallel=2, playbooks=PLAYBOOKS)  # fmt: skip
    by = {r.stack: r for r in runs}
    assert [r.stack for r in runs] == ["a", "b", "c", "d"]
    assert by["a"].ok and by["c"].ok
    assert (by["b"].status, by["b"].rc) == ("failed", 2)
    assert by["b"].hosts["b-host"]["failures"] == 1
    assert by["d"].status == "no-inventory" and "inventories/d/inventory.yml" in str(by["d"].error)
    for stack in ("a", "c"):
        assert (inventories / stack / "ran").read_text() == f"{stack}\n"
    assert not (inventories / "b" / "ran").exists()
    # Each tenant's own log, with its own host in it.
    for stack in ("a", "b", "c"):
        log = Path(str(by[stack].log))
        assert log.is_relative_to(tmp_path / "out" / stack)
        assert f"{stack}-host" in log.read_text()
    assert "was told to fail" in Path(str(by["b"].log)).read_text()
    # ansible-runner's default would stop checking host keys; the runs keep checking them.
    command = json.loads((Path(str(by["a"].log)).parent / "command").read_text())
    assert command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_only_the_fleet_playbooks_run_and_bad_input_is_named(tmp_path: Path, capsys: Any) -> None:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    assert main(["run", "lab_baseline.yml", "--fleet", str(fleet), "--inventories",
                 str(tmp_path)]) == 2  # fmt: skip
    assert "one of site.yml" in capsys.readouterr().err
    assert main(["run", "site.yml", "--fleet", str(fleet), "--inventories", str(tmp_path)]) == 2
    assert "no Pulumi.<stack>.yaml" in capsys.readouterr().err
    (fleet / "Pulumi.a.yaml").write_text("config: {}\n")
    assert main(["run", "site.yml", "--fleet", str(fleet), "--inventories", str(tmp_path),
                 "--stacks", "zz"]) == 2  # fmt: skip
    assert "--stacks zz: not a tenant" in capsys.readouterr().err
    # A tenant without an inventory: named in the summary, exit 1.
    code = main(["run", "site.yml", "--fleet", str(fleet), "--inventories", str(tmp_path),
                 "--out", str(tmp_path / "runs"), "--json"])  # fmt: skip
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["tenants"][0]["status"] == "no-inventory"


@pytest.mark.parametrize("parallel", ["0", "-1"])
def test_parallel_must_be_positive(tmp_path: Path, parallel: str, capsys: Any) -> None:
    assert main(["run", "site.yml", "--fleet", str(tmp_path), "--inventories", str(tmp_path),
                 "--parallel", parallel]) == 2  # fmt: skip
    assert "at least 1" in capsys.readouterr().err
