"""python -m ops.rotation: the operator's way to the CA and the ledger."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ops.rotation.__main__ import main
from ops.rotation.ledger import Entry, Ledger


def test_init_trust_issue_revoke_and_the_ledger(tmp_path: Path, capsys: Any) -> None:
    ca = ["--ca-dir", str(tmp_path / "ca"), "--json"]
    assert main([*ca, "ca", "init", "user-ca-1"]) == 0
    fp = json.loads(capsys.readouterr().out)["fingerprint"]
    assert main([*ca, "ca", "trust", "user-ca-1"]) == 0
    assert json.loads(capsys.readouterr().out) == {"trusted": [fp]}
    key = tmp_path / "op"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    assert main([*ca, "issue", "--ca", "user-ca-1", "--key", f"{key}.pub",
                 "--identity", "L0001", "--principal", "opsadmin"]) == 0  # fmt: skip
    cert = json.loads(capsys.readouterr().out)
    assert cert["serial"] == 1 and cert["principals"] == ["opsadmin"]
    assert main([*ca, "revoke", "--ca", "user-ca-1", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == {"revoked": [1]}
    ledger = tmp_path / "ledger.jsonl"
    Ledger(ledger).append(Entry("ssh-user-ca", "r1", "staged", new=fp))
    assert main(["--ledger", str(ledger), "ledger"]) == 0
    assert "ssh-user-ca" in capsys.readouterr().out


def test_mistakes_are_named_with_their_exit_codes(tmp_path: Path, capsys: Any) -> None:
    ca = ["--ca-dir", str(tmp_path / "ca")]
    assert main([*ca, "ca", "trust", "nope"]) == 1
    assert "no CA 'nope'" in capsys.readouterr().err
    assert main(["ca", "init", "x"]) == 2 and "needs --ca-dir" in capsys.readouterr().err
    assert main(["ledger"]) == 2
    assert main([*ca, "issue", "--ca", "x"]) == 2  # argparse: --key, --identity missing
