"""Parts of the rotation driver that need no host: known_hosts edits, the failure message
read from Ansible's output, the database login's state files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.rotation.db_login import in_use
from ops.rotation.host_keys import KnownHosts
from ops.rotation.steps import StepFailed, failure

OLD = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJR+pAoh7bl4HJPNHbgv//jqcViZBlP4clC3EeR5uFdp"
NEW = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNuUF3HhN/R/+7dQ8oRYNbeF4Qe30XTQeFPOw5H5keZ"


def test_known_hosts_holds_both_keys_during_the_overlap_then_the_new_alone(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"app-1,10.0.0.1 {OLD}\ndb-1,10.0.0.2 {OLD}\n")
    known = KnownHosts(path)
    known.add("app-1", "10.0.0.1", NEW)
    known.add("app-1", "10.0.0.1", NEW)  # a resumed run adds nothing twice
    assert known.keys("app-1") == [OLD, NEW]
    known.remove("app-1", OLD)
    assert known.keys("app-1") == [NEW] and known.keys("db-1") == [OLD]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_tasks_own_words_are_read_from_ansibles_output() -> None:
    result = {"changed": False, "msg": "non-zero return code", "stderr": "line 9: Bad option"}
    out = f"TASK [x]\nfatal: [app-1]: FAILED! => {json.dumps(result)}\n"
    assert failure(out) == "app-1: line 9: Bad option"
    hidden = {"censored": "hidden", "changed": False}
    assert failure(f"fatal: [db-1]: FAILED! => {json.dumps(hidden)}\n") == (
        "db-1: (output hidden: no_log)"
    )


def test_the_login_in_use_must_be_one_of_the_two(tmp_path: Path) -> None:
    assert in_use(tmp_path) == "claims_app_a"  # nothing rotated yet
    (tmp_path / "db-app-login").write_text("claims_app_b\n")
    assert in_use(tmp_path) == "claims_app_b"
    (tmp_path / "db-app-login").write_text("postgres\n")
    with pytest.raises(StepFailed, match="'postgres' is not one of"):
        in_use(tmp_path)
