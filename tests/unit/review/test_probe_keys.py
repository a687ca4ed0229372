"""The probe reads authorized_keys as sshd does: every file sshd -T names for the account,
options with quoted strings and any whitespace, fingerprints from the blob; a line it cannot
read is reported, never skipped; an AuthorizedKeysCommand makes the host INCOMPLETE."""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ops.reviewlib import checks, hosts, probe
from ops.reviewlib.roster import parse_roster
from tests.support.sshstub import misbehaving_host


def _key(tmp_path: Path, name: str) -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    listed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True,
                            text=True, check=True).stdout.split()[1]  # fmt: skip
    return (tmp_path / f"{name}.pub").read_text().strip(), listed


@pytest.mark.parametrize(
    "shape",
    [
        "{key}",
        "{kind}\t\t{blob}  a comment with spaces",
        'command="/usr/bin/printf \\"a, b\\"",no-pty {key}',
        'from="10.0.0.1,10.0.0.2",restrict\t{key}',
        'environment="X=a b",permitopen="h:22" {key}',
        'cert-authority,principals="d010" {key}',
        "   {key}   ",
    ],
)
def test_every_line_sshd_accepts_is_listed_with_its_fingerprint(tmp_path: Path, shape: str) -> None:
    key, listed = _key(tmp_path, "k")
    kind, blob = key.split()[:2]
    got = probe.parse_key_line(shape.format(key=key, kind=kind, blob=blob))
    assert got is not None and got["fingerprint"] == listed


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("garbage", "no key"),
        ("garbage here", "no known key type"),
        ("ssh-ed25519 !!!notbase64", "not valid base64"),
        ("ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQAB", "not a ssh-ed25519 key"),
        ('command="unterminated {key}', "unterminated"),
        ("@cert-authority {key}", "not one sshd knows"),
        ("frobnicate {key}", "not one sshd knows"),
    ],
)
def test_a_line_it_cannot_read_is_an_error_never_a_skip(
    tmp_path: Path, line: str, why: str
) -> None:
    key, _ = _key(tmp_path, "k")
    with pytest.raises(probe.KeyLineError, match=why):
        probe.parse_key_line(line.format(key=key))


def _user(tmp_path: Path, name: str, uid: int) -> pwd.struct_passwd:
    home = tmp_path / "home" / name
    (home / ".ssh").mkdir(parents=True)
    return pwd.struct_passwd((name, "x", uid, uid, "", str(home), "/bin/bash"))


def test_every_file_sshd_names_is_read_and_bad_lines_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d010 = _user(tmp_path, "d010", 1010)
    first, first_fp = _key(tmp_path, "first")
    second, second_fp = _key(tmp_path, "second")
    (Path(d010.pw_dir) / ".ssh" / "authorized_keys").write_text(
        f'command="echo \\"hi there\\"" {first}\n# a comment\n\nnot a key at all\n'
    )
    shared = tmp_path / "etc-keys"
    shared.mkdir()
    (shared / "d010").write_text(second + "\n")
    principals = tmp_path / "principals"
    principals.mkdir()
    (principals / "d010").write_text("d010\n")

    def settings(user: str | None = None) -> dict[str, str]:
        return {"authorizedkeysfile": f".ssh/authorized_keys {shared}/%u",
                "authorizedprincipalsfile": f"{principals}/%u",
                "authorizedkeyscommand": "none", "trustedusercakeys": "none"}  # fmt: skip

    monkeypatch.setattr(probe, "sshd_settings", settings)
    out: dict[str, Any] = {"keys": {}, "bad_key_lines": {}, "principals": {},
                           "trusted_ca_keys": [], "incomplete": []}  # fmt: skip
    probe._keys([d010], out)
    assert {k["fingerprint"] for k in out["keys"]["d010"]} == {first_fp, second_fp}
    (bad,) = out["bad_key_lines"]["d010"]
    assert bad["line"] == 4 and "no known key type" in bad["reason"]
    assert out["principals"]["d010"]["principals"] == ["d010"] and not out["incomplete"]
    # The collector: the unreadable line is a finding, the principal the account's own.
    data = {"format": probe.FORMAT, "users": [{"name": "d010", "uid": 1010, "gid": 1010,
            "shell": "/bin/bash", "home": d010.pw_dir}], "groups": [], "nopasswd": [],
            "lastlog": {}, "shadow": {}, **out}  # fmt: skip
    roster = parse_roster(
        b"staff_id,name,organisation,job,roles,start,end\n"
        b"D010,x,dc-operator,operator,host:operator,2024-01-01,\n",
        "r.csv",
    )
    found = {
        f.check
        for f in checks.review(
            hosts.parse("app-1", data, {}),
            checks.Context(roster, __import__("datetime").date(2026, 12, 1)),
        )
    }
    assert "HOST-004" in found and "HOST-005" not in found


def test_an_authorized_keys_command_makes_the_host_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d010 = _user(tmp_path, "d010", 1010)
    monkeypatch.setattr(probe, "sshd_settings", lambda user=None: {
        "authorizedkeysfile": ".ssh/authorized_keys",
        "authorizedkeyscommand": "/usr/local/bin/keys-from-ldap %u"})  # fmt: skip
    out: dict[str, Any] = {"keys": {}, "bad_key_lines": {}, "principals": {},
                           "trusted_ca_keys": [], "incomplete": []}  # fmt: skip
    probe._keys([d010], out)
    assert out["incomplete"] and "keys-from-ldap" in out["incomplete"][0]


def test_a_host_whose_probe_reports_a_gap_is_incomplete(tmp_path: Path) -> None:
    body = {
        "format": probe.FORMAT,
        "users": [],
        "groups": [],
        "nopasswd": [],
        "keys": {},
        "lastlog": {},
        "shadow": {},
        "incomplete": ["AuthorizedKeysCommand '/x %u'"],
    }
    with misbehaving_host(tmp_path, "answer", json.dumps(body).encode()) as stub:
        _, (scope,) = hosts.collect(
            [hosts.HostTarget("app-1", "127.0.0.1", stub.port)], user="r",
            key_file=stub.key_file, known_hosts=stub.known_hosts, service={}, timeout=10,
        )  # fmt: skip
    assert scope.status == "INCOMPLETE" and "AuthorizedKeysCommand" in scope.reason
