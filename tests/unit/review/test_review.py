"""The access review library: the roster, every check with a failing and a passing
fixture, and the IAM collector against moto."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest

from ops.reviewlib import checks, iam
from ops.reviewlib.model import Account, Credential
from ops.reviewlib.roster import RosterError, parse_keys, parse_roster

TODAY = dt.date(2026, 11, 26)
ROSTER = (
    "staff_id,name,organisation,job,roles,start,end\n"
    "S001,山田太郎,city-welfare,caseworker,app:caseworker,2024-04-01,\n"
    "D010,佐藤花子,dc-operator,operator,aws:readonly host:operator,2023-10-01,\n"
    "D011,鈴木一郎,dc-operator,operator,aws:readonly,2023-10-01,2026-03-31\n"
)


def roster() -> Any:
    return parse_roster(ROSTER.encode("utf-8"), "roster.csv")


FP = "SHA256:" + "k" * 43


def ctx() -> checks.Context:
    r = roster()
    r.keys = {FP: "D010"}
    return checks.Context(r, TODAY)


def t(days_ago: int) -> dt.datetime:
    return dt.datetime.combine(TODAY, dt.time(9), dt.UTC) - dt.timedelta(days=days_ago)


# --- the roster ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_the_roster_reads_utf8_with_or_without_bom_and_cp932(encoding: str) -> None:
    r = parse_roster(ROSTER.encode(encoding), "roster.csv")
    assert r.person("S001").name == "山田太郎"  # type: ignore[union-attr]
    assert r.person("D010").roles == {"aws": "readonly", "host": "operator"}  # type: ignore[union-attr]
    assert not r.person("D011").current(TODAY)  # type: ignore[union-attr]


def test_every_roster_problem_is_named_with_its_line() -> None:
    bad = ROSTER + (
        "x1,,city,job,aws-readonly,2024-13-01,\n"
        "S001,二重,city-welfare,caseworker,,2024-04-01,2024-01-01\n"
    )
    with pytest.raises(RosterError) as e:
        parse_roster(bad.encode(), "roster.csv")
    text = str(e.value)
    for expected in (
        "roster.csv:5: staff_id 'x1'",
        "roster.csv:5: name is empty",
        "roster.csv:5: organisation 'city'",
        "roster.csv:5: role 'aws-readonly'",
        "roster.csv:5: start '2024-13-01' is not a date",
        "roster.csv:6: staff_id S001 appears twice",
        "roster.csv:6: end 2024-01-01 is before start",
    ):
        assert expected in text, text


def test_the_key_registry_takes_service_owners() -> None:
    keys = parse_keys(f"{FP},service:fund\n".encode(), "keys.csv", roster())
    assert keys == {FP: "service:fund"}
    with pytest.raises(RosterError, match="'service:'"):
        parse_keys(f"{FP},service:\n".encode(), "keys.csv", roster())


def test_the_key_registry_refuses_unknown_staff_and_bad_fingerprints() -> None:
    good = "SHA256:" + "A" * 43
    assert parse_keys(f"fingerprint,staff_id\n{good},D010\n".encode(), "keys.csv", roster()) == {
        good: "D010"
    }
    with pytest.raises(RosterError, match=r"(?s)keys.csv:1: fingerprint 'MD5:aa'.*staff_id 'Z999'"):
        parse_keys(b"MD5:aa,Z999\n", "keys.csv", roster())


# --- every check, tripped and passed ------------------------------------------------------------

FIXTURES: dict[str, tuple[Account, Account]] = {
    "ACR-001": (Account("aws", "ghost", staff_id="Z999"), Account("aws", "d010", staff_id="D010")),
    "ACR-002": (
        Account(
            "aws", "d011", staff_id="D011", credentials=[Credential("password", "console", True)]
        ),
        Account("aws", "d011", staff_id="D011", enabled=False),
    ),
    "ACR-003": (
        Account(
            "aws",
            "d010",
            staff_id="D010",
            created=t(400),
            credentials=[Credential("access_key", "AKIANEVERUSED", True, t(400))],
        ),
        Account(
            "aws",
            "d010",
            staff_id="D010",
            created=t(400),
            credentials=[Credential("access_key", "AKIAUSED", True, t(400), t(3))],
        ),
    ),
    "ACR-004": (
        Account("aws", "d010", staff_id="D010", privileges=["AdministratorAccess"]),
        Account("aws", "d010", staff_id="D010", privileges=["ReadOnlyAccess"]),
    ),
    "IAM-001": (
        Account(
            "aws",
            "d010",
            staff_id="D010",
            credentials=[Credential("access_key", "AKIAOLD", True, t(120), t(1))],
        ),
        Account(
            "aws",
            "d010",
            staff_id="D010",
            credentials=[Credential("access_key", "AKIANEW", True, t(30), t(1))],
        ),
    ),
    "IAM-002": (
        Account(
            "aws",
            "d010",
            staff_id="D010",
            credentials=[
                Credential("access_key", "AKIA1", True, t(10)),
                Credential("access_key", "AKIA2", True, t(5)),
            ],
        ),
        Account(
            "aws",
            "d010",
            staff_id="D010",
            credentials=[
                Credential("access_key", "AKIA1", False, t(10)),
                Credential("access_key", "AKIA2", True, t(5)),
            ],
        ),
    ),
    "IAM-003": (
        Account("aws", "d010", staff_id="D010", console=True, mfa=False),
        Account("aws", "d010", staff_id="D010", console=True, mfa=True),
    ),
    "IAM-004": (
        Account(
            "aws",
            "d010",
            staff_id="D010",
            policy_documents=[
                {"_name": "god", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ],
        ),
        Account(
            "aws",
            "d010",
            staff_id="D010",
            policy_documents=[
                {
                    "_name": "s3",
                    "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
                }
            ],
        ),
    ),
}


FIXTURES["IAM-005"] = (
    Account("aws", "d010", staff_id="D010", console=True, mfa=True,
            credentials=[Credential("access_key", "access key 1", True, t(1))]),
    Account("aws", "d010", staff_id="D010", console=True, mfa=True,
            credentials=[Credential("access_key", "access key 1", True, t(1), t(0))]),
)  # fmt: skip
FIXTURES["ACR-005"] = (
    Account("host:db-1", "admin", credentials=[Credential("ssh_key", "k", True)]),
    Account("host:db-1", "d010", staff_id="D010"),
)
FIXTURES["DB-001"] = (
    Account("db", "claims_owner", privileges=["BYPASSRLS"]),
    Account("db", "claims_app", privileges=[]),
)


def _trust(principal: object, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal}
    if condition:
        st["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [st]}


OWN = "123456789012"
FIXTURES["IAM-006"] = (
    Account("aws", "role/open", service=True, attributes={
        "kind": "role", "account_id": OWN, "trust": _trust({"AWS": "*"})}),
    Account("aws", "role/ec2", service=True, attributes={
        "kind": "role", "account_id": OWN, "trust": _trust({"Service": "ec2.amazonaws.com"})}),
)  # fmt: skip
FIXTURES["IAM-007"] = (
    Account("aws", "role/forgotten", service=True, created=t(400),
            attributes={"kind": "role"}),
    Account("aws", "role/claims-dc-break-glass", service=True, created=t(400),
            attributes={"kind": "role", "break_glass": "sealed, logged"}),
)  # fmt: skip
FIXTURES["HOST-004"] = (
    Account("host:app-1", "d010", staff_id="D010", attributes={
        "unreadable_key_lines": ["/home/d010/.ssh/authorized_keys:3: option 'x' is unknown"]}),
    Account("host:app-1", "d010", staff_id="D010", attributes={"unreadable_key_lines": []}),
)  # fmt: skip
FIXTURES["HOST-005"] = (
    Account("host:app-1", "root", service=True,
            credentials=[Credential("ssh_principal", "d010", True)]),
    Account("host:app-1", "opsadmin",
            credentials=[Credential("ssh_principal", "opsadmin", True)]),
)  # fmt: skip
FIXTURES["HOST-001"] = (
    Account("host:db-1", "toor", attributes={"uid": 0}),
    Account("host:db-1", "root", attributes={"uid": 0}),
)
FIXTURES["HOST-002"] = (
    Account("host:db-1", "d010", attributes={"uid": 1001, "shares_uid_with": ["x"]}),
    Account("host:db-1", "d010", attributes={"uid": 1001, "shares_uid_with": []}),
)
FIXTURES["HOST-003"] = (
    Account(
        "host:db-1",
        "d010",
        attributes={"nopasswd": ["/etc/sudoers.d/x:1: d010 ALL=(ALL) NOPASSWD: ALL"]},
    ),
    Account("host:db-1", "d010", attributes={"nopasswd": []}),
)
FIXTURES["ACR-006"] = (
    Account(
        "host:db-1",
        "d010",
        staff_id="D010",
        credentials=[Credential("ssh_key", "SHA256:" + "u" * 43, True)],
    ),
    Account("host:db-1", "d010", staff_id="D010", credentials=[Credential("ssh_key", FP, True)]),
)


def test_every_check_has_a_failing_and_a_passing_fixture() -> None:
    assert {c.id for c in checks.CHECKS} == set(FIXTURES)


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.id)
def test_each_check_fires_on_its_bad_case_and_not_on_its_good_one(check: checks.Check) -> None:
    bad, good = FIXTURES[check.id]
    finding = check.run(bad, ctx())
    assert finding is not None and finding.check == check.id and finding.evidence
    assert (
        finding.fix
        and finding.references
        and finding.severity in ("low", "medium", "high", "critical")
    )
    assert check.run(good, ctx()) is None


def test_finding_ids_are_stable_and_distinct() -> None:
    bad, _ = FIXTURES["IAM-003"]
    a, b = checks.CHECKS[6].run(bad, ctx()), checks.CHECKS[6].run(bad, ctx())
    assert a is not None and b is not None and a.id == b.id
    other = Account("aws", "s001", staff_id="S001", console=True, mfa=False)
    c = checks.CHECKS[6].run(other, ctx())
    assert c is not None and c.id != a.id


# --- the IAM collector on moto ------------------------------------------------------------------


@pytest.fixture
def iam_client(moto_endpoint: str) -> Any:
    return boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")


def test_the_iam_collector_finds_a_leaver_a_never_used_key_and_a_console_without_mfa(
    iam_client: Any,
) -> None:
    for user, staff in (("d010", "D010"), ("d011", "D011"), ("contractor", "")):
        iam_client.create_user(
            UserName=user, Tags=[{"Key": "StaffId", "Value": staff}] if staff else []
        )
    iam_client.create_login_profile(UserName="d011", Password="Not-a-real-one-9x")
    iam_client.create_access_key(UserName="d010")
    # moto loads no AWS managed policies: a customer policy of the same name stands in.
    arn = iam_client.create_policy(
        PolicyName="ReadOnlyAccess",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}
                ],
            }
        ),
    )["Policy"]["Arn"]
    iam_client.attach_user_policy(UserName="d010", PolicyArn=arn)
    accounts, scope, meta = iam.collect(iam_client)
    assert scope.complete and scope.population >= 3 and meta["calls"] >= 3
    mine = [a for a in accounts if a.name in ("d010", "d011", "contractor")]
    findings = checks.review(mine, checks.Context(roster(), dt.date.today(), dormant_days=-1))
    got = {(f.check, f.account) for f in findings}
    assert ("ACR-002", "d011") in got  # left on 2026-03-31, console still on
    assert ("IAM-003", "d011") in got  # console without MFA
    assert ("ACR-001", "contractor") in got  # "CONTRACTOR" is no staff ID in the roster
    assert ("ACR-003", "d010") in got  # a key never used (any age counts with dormant_days -1)
    assert ("ACR-004", "d010") not in got  # ReadOnlyAccess is what the roster approves


class BrokenIam:
    """An IAM API that fails midway, as a throttled or denied call would."""

    def get_paginator(self, name: str) -> Any:
        raise RuntimeError("AccessDenied: iam:GetAccountAuthorizationDetails")


def test_an_unreadable_iam_makes_the_scope_incomplete_never_complete() -> None:
    accounts, scope, _ = iam.collect(BrokenIam())
    assert accounts == [] and scope.status == "INCOMPLETE"
    assert "GetAccountAuthorizationDetails" in scope.reason


# --- the database layer, on the suite's private PostgreSQL ------------------------------------


def test_database_roles_and_application_accounts_are_collected(postgres: dict[str, str]) -> None:
    import psycopg

    from ops.reviewlib import database

    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE username IN ('s001', 'kanri', 'x9')")
        for name, role in (("s001", "supervisor"), ("kanri", "admin")):
            conn.execute(
                "INSERT INTO users (username, role, password_hash) VALUES (%s, %s, 'x')",
                (name, role),
            )
    roles, scope = database.collect_db_roles(postgres["owner"], {"claims_owner": "owner"})
    assert scope.complete and {"claims_owner", "claims_app"} <= {a.name for a in roles}
    apps, app_scope = database.collect_app_accounts(postgres["owner"], {})
    assert app_scope.complete and app_scope.population == len(apps)
    findings = checks.review([a for a in apps if a.name in ("s001", "kanri")], ctx())
    got = {(f.check, f.account) for f in findings}
    assert ("ACR-004", "s001") in got  # supervisor, where the roster approves caseworker
    assert ("ACR-005", "kanri") in got and ("ACR-001", "kanri") in got
    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE username IN ('s001', 'kanri')")


def test_an_unreachable_database_makes_its_scopes_incomplete(tmp_path: Any) -> None:
    from ops.reviewlib import database

    dsn = f"host={tmp_path} dbname=claims user=nobody"
    _, roles = database.collect_db_roles(dsn, {})
    _, apps = database.collect_app_accounts(dsn, {})
    assert roles.status == apps.status == "INCOMPLETE" and "could not be read" in roles.reason


# --- hosts: the probe's output, and a host that cannot be reached ---------------------------

PROBED = {
    "users": [
        {"name": "root", "uid": 0, "gid": 0, "shell": "/bin/bash", "home": "/root"},
        {"name": "toor", "uid": 0, "gid": 0, "shell": "/bin/bash", "home": "/root"},
        {"name": "d010", "uid": 1001, "gid": 1001, "shell": "/bin/bash", "home": "/home/d010"},
        {"name": "d011", "uid": 1002, "gid": 1002, "shell": "/bin/bash", "home": "/home/d011"},
        {
            "name": "fund",
            "uid": 1003,
            "gid": 1003,
            "shell": "/usr/sbin/nologin",
            "home": "/srv/sftp/fund",
        },
        {
            "name": "postgres",
            "uid": 102,
            "gid": 104,
            "shell": "/bin/bash",
            "home": "/var/lib/postgresql",
        },
    ],
    "groups": [
        {"name": "operators", "gid": 990, "members": ["d010", "d011"]},
        {"name": "root", "gid": 0, "members": []},
    ],
    "nopasswd": [
        {"file": "/etc/sudoers.d/legacy", "line": 1, "rule": "%operators ALL=(ALL) NOPASSWD: ALL"}
    ],
    "keys": {
        "d010": [{"fingerprint": FP, "file": "/home/d010/.ssh/authorized_keys", "comment": ""}],
        "d011": [
            {
                "fingerprint": "SHA256:" + "z" * 43,
                "file": "/home/d011/.ssh/authorized_keys",
                "comment": "",
            }
        ],
        "fund": [
            {
                "fingerprint": "SHA256:" + "f" * 43,
                "file": "/etc/ssh/authorized_keys/fund",
                "comment": "",
            }
        ],
    },
    "lastlog": {"d010": 1764000000},
    "shadow": {
        "root": {"password": "locked", "expire": ""},
        "d010": {"password": "locked", "expire": ""},
    },
}


def test_a_probed_host_yields_its_findings() -> None:
    from ops.reviewlib import hosts

    accounts = hosts.parse("db-1", PROBED, {"fund": "the fund's SFTP delivery account"})
    got = {(f.check, f.account) for f in checks.review(accounts, ctx())}
    assert ("HOST-001", "toor") in got and ("HOST-002", "toor") in got
    assert ("HOST-003", "d010") in got and ("HOST-003", "d011") in got
    assert ("ACR-006", "d011") in got and ("ACR-006", "d010") not in got
    assert ("ACR-002", "d011") in got  # the leaver still has a key
    assert ("ACR-001", "fund") not in got  # a documented service account has no staff owner,
    assert ("ACR-006", "fund") in got  # but its keys must still be registered
    assert not any(a == "postgres" for _, a in got)  # a system account


def test_an_unreachable_host_is_incomplete_never_pass(tmp_path: Any) -> None:
    import socket

    from ops.reviewlib import hosts

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "known_hosts").write_text("")
    key = tmp_path / "id"
    key.write_text("")
    _, scopes = hosts.collect(
        [hosts.HostTarget("db-1", "127.0.0.1", port)],
        user="x",
        key_file=key,
        known_hosts=tmp_path / "known_hosts",
        service={},
        timeout=2,
    )
    assert scopes[0].status == "INCOMPLETE" and f"127.0.0.1:{port}" in scopes[0].reason
    assert "ConnectionRefused" in scopes[0].reason or "NoValidConnections" in scopes[0].reason


def test_the_database_host_unreachable_makes_db_and_app_incomplete_too(tmp_path: Any) -> None:
    import socket

    from ops.reviewlib import hosts

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "id").write_text("")
    _, scopes = hosts.collect(
        [hosts.HostTarget("db-1", "127.0.0.1", port)],
        user="x",
        key_file=tmp_path / "id",
        known_hosts=tmp_path / "known_hosts",
        service={},
        database_host="db-1",
        timeout=2,
    )
    by = {s.system: s for s in scopes}
    assert {by[x].status for x in ("host:db-1", "db", "app")} == {"INCOMPLETE"}
    assert "through host db-1" in by["db"].reason


def test_the_database_layer_from_the_probe_and_its_failures() -> None:
    from ops.reviewlib import database

    pg = {
        "roles": [
            {"name": "claims_owner", "login": True, "superuser": False, "createrole": False,
             "createdb": False, "replication": False, "bypassrls": True,
             "valid_until": "infinity"},
            {"name": "d011", "login": True, "superuser": False, "createrole": False,
             "createdb": False, "replication": False, "bypassrls": False,
             "valid_until": "2026-12-31T00:00:00+00:00"},
        ],
        "app_accounts": [
            {"username": "s001", "role": "caseworker", "disabled": False,
             "created_at": "2024-04-01T09:00:00+09:00", "last_login": None},
        ],
    }  # fmt: skip
    accounts, scopes = database.from_probe("db-1", {"postgres": pg}, {"db": {"claims_owner": "x"}})
    assert [(s.system, s.status, s.population) for s in scopes] == [
        ("db", "COMPLETE", 2),
        ("app", "COMPLETE", 1),
    ]
    owner = next(a for a in accounts if a.name == "claims_owner")
    assert owner.service and owner.privileges == ["BYPASSRLS"] and owner.valid_until is None
    got = {(f.check, f.account) for f in checks.review(accounts, ctx())}
    assert ("DB-001", "claims_owner") in got and ("ACR-002", "d011") in got
    for data, why in (
        (None, "could not be probed"),
        ({}, "no database settings"),
        ({"postgres": {"error": "psql -d claims: FATAL: no such database"}}, "FATAL"),
    ):
        _, failed = database.from_probe("db-1", data, {})
        assert [s.status for s in failed] == ["INCOMPLETE", "INCOMPLETE"]
        assert all(why in s.reason for s in failed)


def test_the_installed_probe_reads_this_machine() -> None:
    """The probe script itself, run here as root: the shape the collector parses."""
    import subprocess
    import sys

    from ops.reviewlib import hosts, probe

    out = subprocess.run(
        [sys.executable, probe.__file__], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out)
    assert data["format"] == probe.FORMAT and "postgres" not in data
    accounts = hosts.parse("here", data, {})
    root = next(a for a in accounts if a.name == "root")
    assert root.attributes["uid"] == 0 and root.service


def test_a_host_account_belongs_to_whoever_holds_its_keys() -> None:
    other = "SHA256:" + "o" * 43
    c = ctx()
    c.roster.keys[other] = "S001"
    ops = Account("host:db-1", "opsadmin", credentials=[Credential("ssh_key", FP, True)],
                  privileges=["operators"])  # fmt: skip
    keys = [Credential("ssh_key", FP, True), Credential("ssh_key", other, True)]
    shared = Account("host:db-1", "maint", credentials=keys)
    got = {(f.check, f.account): f for f in checks.review([ops, shared], c)}
    assert ("ACR-001", "opsadmin") not in got  # D010's key: D010's account
    assert "D010, S001" in got[("ACR-005", "maint")].evidence


def test_a_service_key_must_be_registered_to_that_service() -> None:
    c = ctx()
    fund_key = "SHA256:" + "f" * 43
    fund = Account("host:intake-1", "fund", service=True,
                   credentials=[Credential("ssh_key", fund_key, True)])  # fmt: skip
    c.roster.keys[fund_key] = "service:fund"
    assert not [f for f in checks.review([fund], c) if f.check == "ACR-006"]
    c.roster.keys[fund_key] = "service:backup"
    assert [f.check for f in checks.review([fund], c)] == ["ACR-006"]
    c.roster.keys[fund_key] = "D010"  # a person's key on a machine account
    assert [f.check for f in checks.review([fund], c)] == ["ACR-006"]


def test_a_service_account_may_run_one_fixed_command_without_a_password() -> None:
    rule = '/etc/sudoers.d/r:1: claims-dc-review ALL=(root) NOPASSWD: /usr/local/libexec/p ""'
    review_account = Account("host:db-1", "claims-dc-review", service=True,
                             attributes={"nopasswd": [rule]})  # fmt: skip
    assert checks.review([review_account], ctx()) == []
    for wider in (
        rule[: -len(' ""')],  # any arguments
        '/etc/sudoers.d/r:1: claims-dc-review ALL=(root) NOPASSWD: /usr/bin/python3 "", ALL',
        '/etc/sudoers.d/r:1: claims-dc-review ALL=(root) NOPASSWD: /usr/bin/* ""',
    ):
        review_account.attributes["nopasswd"] = [wider]
        assert [f.check for f in checks.review([review_account], ctx())] == ["HOST-003"], wider
    person = Account("host:db-1", "d010", staff_id="D010", attributes={"nopasswd": [rule]})
    assert [f.check for f in checks.review([person], ctx())] == ["HOST-003"]


def test_key_ids_on_request_and_from_the_report_by_default(iam_client: Any) -> None:
    iam_client.create_user(UserName="d030", Tags=[{"Key": "StaffId", "Value": "D030"}])
    key = iam_client.create_access_key(UserName="d030")["AccessKey"]["AccessKeyId"]
    by_report, _, cheap = iam.collect(iam_client)
    by_calls, _, dear = iam.collect(iam_client, key_ids=True)
    mine = next(a for a in by_report if a.name == "d030")
    assert [c.ident for c in mine.credentials] == ["access key 1"] and mine.credentials[0].active
    assert key in [c.ident for a in by_calls if a.name == "d030" for c in a.credentials]
    assert cheap["calls"] < dear["calls"]


def test_iam_roles_are_read_and_their_policies_checked(iam_client: Any) -> None:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "ec2.amazonaws.com"}}]}  # fmt: skip
    for name in ("app-host", "legacy-admin"):
        iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    star = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}  # fmt: skip
    iam_client.put_role_policy(RoleName="legacy-admin", PolicyName="god",
                               PolicyDocument=json.dumps(star))  # fmt: skip
    accounts, scope, _ = iam.collect(iam_client)
    roles = {a.name: a for a in accounts if a.attributes.get("kind") == "role"}
    assert {"role/app-host", "role/legacy-admin"} <= set(roles) and scope.complete
    got = {(f.check, f.account) for f in checks.review(list(roles.values()), ctx())}
    assert got == {("IAM-004", "role/legacy-admin")}  # no roster owner asked of a machine role


@pytest.mark.parametrize(
    ("trust", "why"),
    [
        (_trust({"AWS": "*"}), "anyone"),
        (_trust({"AWS": "arn:aws:iam::210987654321:root"}), "without an ExternalId"),
        (_trust({"AWS": f"arn:aws:iam::{OWN}:root"}), "without MFA"),
        (_trust({"AWS": [f"arn:aws:iam::{OWN}:user/d010"]}), "without MFA"),
        (_trust("*"), "anyone"),
    ],
)
def test_role_trust_policies_are_checked(iam_client: Any, trust: dict[str, Any], why: str) -> None:
    iam_client.create_role(RoleName="assumable", AssumeRolePolicyDocument=json.dumps(trust))
    accounts, _, _ = iam.collect(iam_client)
    role = next(a for a in accounts if a.name == "role/assumable")
    found = [f for f in checks.review([role], ctx()) if f.check == "IAM-006"]
    assert found and why in found[0].evidence, found
    iam_client.delete_role(RoleName="assumable")


@pytest.mark.parametrize(
    "trust",
    [
        _trust({"AWS": "arn:aws:iam::210987654321:root"},
               {"StringEquals": {"sts:ExternalId": "claims-dc-999997"}}),
        _trust({"AWS": f"arn:aws:iam::{OWN}:root"},
               {"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
        _trust({"Service": "ec2.amazonaws.com"}),
    ],
)  # fmt: skip
def test_role_trust_that_names_its_principals_passes(
    iam_client: Any, trust: dict[str, Any]
) -> None:
    iam_client.create_role(RoleName="assumable", AssumeRolePolicyDocument=json.dumps(trust))
    accounts, _, _ = iam.collect(iam_client)
    role = next(a for a in accounts if a.name == "role/assumable")
    assert [f for f in checks.review([role], ctx()) if f.check == "IAM-006"] == []
    iam_client.delete_role(RoleName="assumable")


class _ReportFails:
    """The moto IAM client, but the credential report is refused, or never ready."""

    def __init__(self, client: Any, never_ready: bool) -> None:
        self.client, self.never_ready = client, never_ready

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def generate_credential_report(self) -> dict[str, str]:
        return {"State": "STARTED" if self.never_ready else "COMPLETE"}

    def get_credential_report(self) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetCredentialReport"
        )


@pytest.mark.parametrize("never_ready", [False, True], ids=["refused", "never-ready"])
def test_a_failing_credential_report_makes_iam_incomplete(
    iam_client: Any, never_ready: bool
) -> None:
    name = "d041" if never_ready else "d040"
    iam_client.create_user(UserName=name, Tags=[{"Key": "StaffId", "Value": name.upper()}])
    accounts, scope, _ = iam.collect(_ReportFails(iam_client, never_ready), timeout=1)
    assert accounts == [] and scope.status == "INCOMPLETE"
    assert ("not ready within 1s" if never_ready else "AccessDenied") in scope.reason
