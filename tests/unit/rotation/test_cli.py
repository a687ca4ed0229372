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
    assert json.loads(capsys.readouterr().out) == {"revoked": [1], "published": False}
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


def test_a_stopped_rotation_can_be_closed_by_the_operator_with_a_reason(
    tmp_path: Path, capsys: Any
) -> None:
    from ops.rotation.machine import pending

    ledger = tmp_path / "ledger.jsonl"
    Ledger(ledger).append(Entry("host-key:app-1", "r1", "published", old="o", new="n"))
    assert pending(Ledger(ledger), "host-key:app-1") is not None
    args = ["--ledger", str(ledger), "abandon", "host-key:app-1"]
    assert main(args) == 2  # the reason is required
    assert main([*args, "--reason", "host remade"]) == 0
    assert pending(Ledger(ledger), "host-key:app-1") is None
    last = Ledger(ledger).last("host-key:app-1")
    assert last is not None and last.outcome == "rolled-back" and "host remade" in last.note
    assert main([*args, "--reason", "again"]) == 1
    assert "no rotation under way" in capsys.readouterr().err


def test_rotate_needs_an_inventory_and_names_what_it_lacks(capsys: Any) -> None:
    assert main(["rotate", "all"]) == 2 and "needs -i INVENTORY" in capsys.readouterr().err
    assert main(["-i", "x.yml", "rotate", "everything"]) == 2  # not a kind
    assert main(["-i", "x.yml", "rotate", "ssh-user-ca", "--operator-key", "k.pub"]) == 2
    assert "needs --identity and --principal" in capsys.readouterr().err
    assert main(["-i", "x.yml", "rotate", "sftp-key", "--fund-window", "3w"]) == 2
    assert "window '3w'" in capsys.readouterr().err


def test_an_unexpected_error_is_named_not_a_traceback(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import ops.rotation.__main__ as cli

    def broken(args: Any) -> int:
        raise KeyError("hosts")

    monkeypatch.setattr(cli, "run", broken)
    assert main(["--ledger", str(tmp_path / "l.jsonl"), "ledger"]) == 4
    err = capsys.readouterr().err
    assert "unexpected failure: KeyError: 'hosts'" in err and "Traceback" not in err
