"""The evidence pack (python -m ops.evidence): the control matrix complete, each check firing on
its bad case and passing on real hosts' evidence, stale evidence failing, the pack signed and
a tampered pack named, and the page printed by Chromium.

The passing fixture is real: tests/unit/data/evidence holds what playbooks/evidence.yml read
from the lab's hosts, and a signed access review as the lab fetched it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import load_stack
from lab.browser import print_report
from ops import manifest
from ops.evidence import collect as collect_mod
from ops.evidence import controls, pack
from ops.evidence.__main__ import main
from ops.evidence.collect import Collected

FIXTURES = Path(__file__).parent / "data" / "evidence"
NOW = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)  # an hour after the fixture's backups


def build(out: Path, now: dt.datetime = NOW) -> Collected:
    """A Collected from the fixture, through the collector's own readers where it has them."""
    c = Collected("lab", now.isoformat(timespec="seconds"), load_stack("lab"))
    c.network = {
        "verdicts": {"closed": "HOLDS", "policy": "HOLDS", "separated": "HOLDS"},
        "counterexamples": {},
        "rules": 30,
        "violations": [],
        "config_sha256": "ab" * 32,
        "report": "network/linkage-report.html",
    }
    c.artifact("network-proof", "network/check.json", c.generated_at)
    c.artifact("linkage-report", "network/linkage-report.html", c.generated_at)
    c.audit = {
        "trails": [
            {
                "name": "audit-trail",
                "log_file_validation": True,
                "multi_region": True,
                "kms": True,
                "bucket": "b",
            }
        ],
        "audit_lock": {"defaultRetention": {"mode": "COMPLIANCE", "days": 1827.0}},
        "volumes_encrypted": True,
        "log_group_kms": True,
        "regions": ["ap-northeast-1"],
    }
    c.cost = {
        "months": 60,
        "total_usd": 35076.6,
        "total_yen": 5261490,
        "prices_as_of": "2025-01",
        "on_premises_total_yen": 8280000,
        "difference_yen": 3018510,
        "components": {},
        "assumptions": {},
        "notes": [],
        "jpy_per_usd": 150,
    }
    c.artifact("cost-estimate", "cost/cost.json", c.generated_at)
    (out / "hosts").mkdir(parents=True, exist_ok=True)
    for path in sorted((FIXTURES / "hosts").glob("*.json")):
        shutil.copy(path, out / "hosts" / path.name)  # as playbooks/evidence.yml writes it
        data = json.loads(path.read_text(encoding="utf-8"))
        c.hosts[path.stem] = data
        c.artifact("host-settings", f"hosts/{path.name}", c.generated_at)
        reports = collect_mod._reports(c, path.stem, data["backup_reports"])
        if reports:
            c.backups[path.stem] = reports
            collect_mod._write_backups(c, out, path.stem, reports)
    state = out.parent / "state"
    shutil.copytree(FIXTURES / "review", state / collect_mod.REVIEWS, dirs_exist_ok=True)
    collect_mod.review(c, state / "inventory.yml", out)
    c.rotation = json.loads((FIXTURES / "rotation.json").read_text())
    c.artifact("rotation-ledger", "rotation/summary.json", "2026-12-03T23:58:00+00:00")
    return c


@pytest.fixture
def good(tmp_path: Path) -> Collected:
    c = build(tmp_path / "pack")
    assert c.review is not None and not c.problems, c.problems
    c.review["findings"] = []  # the lab's review has its seeded problems; this one is clean
    return c


def status(c: Collected) -> dict[str, str]:
    return {r.id: r.status for r in controls.matrix(c)}


def test_every_requirement_is_checked_or_says_why_not() -> None:
    data = controls.load()
    ids = [r["id"] for r in data["requirements"]]
    assert len(ids) == len(set(ids))
    used = set()
    for r in data["requirements"]:
        assert r["guideline"] in data["guidelines"], r["id"]
        assert data["guidelines"][r["guideline"]].keys() >= {"short", "ja", "en"}
        assert r["section"] and r["ja"] and r["en"], r["id"]
        assert ("check" in r) != ("not_covered" in r), f"{r['id']}: one of check, not_covered"
        if "check" in r:
            assert r["check"] in controls.CHECKS, r["id"]
            used.add(r["check"])
        else:
            assert len(str(r["not_covered"])) > 40, f"{r['id']}: NOT COVERED needs its reason"
    assert used == set(controls.CHECKS), "a check no requirement uses"
    assert {r["guideline"] for r in data["requirements"]} == set(data["guidelines"])


def test_real_hosts_evidence_passes_every_check(good: Collected) -> None:
    rows = controls.matrix(good)
    failing = {r.id: r.detail for r in rows if r.status == controls.FAIL}
    assert not failing, failing
    n = controls.counts(rows)
    assert n["PASS"] == len(controls.CHECKS) and n["NOT COVERED"] == 10 and n["stale"] == 0
    assert len(rows) == len(controls.load()["requirements"])  # none left out
    drill = next(r for r in rows if r.id == "BAK-RESTORE")
    assert drill.artifacts == ["backups/db-1/drill.json"] and drill.evidence_at


def _host(c: Collected, host: str, key: str, edit: Callable[[str], str]) -> None:
    c.hosts[host][key] = edit(c.hosts[host][key])


def _pg_hba(c: Collected, rule: dict[str, Any]) -> None:
    rules = json.loads(c.hosts["db-1"]["pg_hba"])
    c.hosts["db-1"]["pg_hba"] = json.dumps([*rules[:-2], rule, *rules[-2:]])


def _report(c: Collected, host: str, command: str, **changes: Any) -> None:
    c.backups[host][command].update(changes)


def _artifact_at(c: Collected, kind: str, when: str) -> None:
    # Re-dated as the collector would have dated an older report.
    for a in c.artifacts:
        if a.kind == kind:
            a.at = when
            a.stale = (
                c.now - collect_mod.parse_time(when)
                > {  # type: ignore[operator]
                    "backup-run": collect_mod.BACKUP_MAX_AGE,
                    "backup-drill": collect_mod.DRILL_MAX_AGE,
                    "access-review": collect_mod.REVIEW_MAX_AGE,
                }[kind]
            )


BAD_CASES: list[tuple[str, Callable[[Collected], None], str]] = [
    ("NET-CLOSED", lambda c: c.network["verdicts"].update(closed="VIOLATED"), "VIOLATED"),
    (
        "NET-CLOSED",
        lambda c: c.network["violations"].append({"rule": "CDC-NET-001", "severity": "critical"}),
        "CDC-NET-001",
    ),
    ("NET-LINES", lambda c: c.network["verdicts"].update(separated="UNKNOWN"), "UNKNOWN"),
    ("NET-FLOWS", lambda c: c.network["verdicts"].pop("policy"), "did not run"),
    (
        "NET-HOSTFW",
        lambda c: _host(
            c,
            "app-1",
            "nftables",
            lambda s: s.replace(
                "hook input priority filter; policy drop",
                "hook input priority filter; policy accept",
            ),
        ),
        "input chain policy accept",
    ),
    (
        "NET-LISTEN",
        lambda c: _host(
            c, "db-1", "sockets", lambda s: s + "\ntcp LISTEN 0 128 0.0.0.0:6379 0.0.0.0:*"
        ),
        "0.0.0.0:6379/tcp",
    ),
    (
        "NET-MUTUAL",
        lambda c: _host(
            c,
            "intake-1",
            "sshd",
            lambda s: s.replace("passwordauthentication no", "passwordauthentication yes"),
        ),
        "with a password",
    ),
    (
        "NET-TLS",
        lambda c: _host(
            c, "app-1", "sockets", lambda s: s + "\ntcp LISTEN 0 511 10.231.10.10:80 0.0.0.0:*"
        ),
        "plain HTTP",
    ),
    (
        "NET-TLS",
        lambda c: _pg_hba(
            c,
            {
                "line_number": 12,
                "type": "host",
                "address": "10.231.10.10",
                "auth_method": "scram-sha-256",
                "error": None,
            },
        ),
        "without TLS",
    ),
    (
        "AUTH-SSH",
        lambda c: _host(
            c, "bastion-1", "sshd", lambda s: s.replace("permitrootlogin no", "permitrootlogin yes")
        ),
        "bastion-1: sshd permitrootlogin yes",
    ),
    (
        "AUTH-DB",
        lambda c: _pg_hba(
            c,
            {
                "line_number": 12,
                "type": "hostssl",
                "address": "10.231.10.10",
                "auth_method": "trust",
                "error": None,
            },
        ),
        "auth trust",
    ),
    (
        "AUTH-DB",
        lambda c: _pg_hba(
            c,
            {
                "line_number": 12,
                "type": "hostssl",
                "address": "0.0.0.0",
                "auth_method": "scram-sha-256",
                "error": None,
            },
        ),
        "any address",
    ),
    (
        "AUTH-REVIEW",
        lambda c: c.review.update(
            signed=False, signature="SHA256SUMS: review.json: changed since it was signed"
        ),
        "changed since",
    ),  # type: ignore[union-attr]
    ("AUTH-REVIEW", lambda c: c.review.update(verdict="INCOMPLETE"), "INCOMPLETE"),  # type: ignore[union-attr]
    (
        "AUTH-REVIEW",
        lambda c: _artifact_at(c, "access-review", "2026-08-01T00:00:00+00:00"),
        "stale",
    ),
    (
        "AUTH-NEED",
        lambda c: c.review["findings"].append(  # type: ignore[index]
            {"check": "ACR-002", "account": "d0102", "system": "host:app-1"}
        ),
        "d0102",
    ),
    ("KEY-ROTATION", lambda c: c.rotation[0].update(status="due"), "not current"),  # type: ignore[index]
    ("KEY-ROTATION", lambda c: setattr(c, "rotation", None), "no rotation ledger"),
    (
        "SYS-SANDBOX",
        lambda c: _host(
            c, "app-1", "units", lambda s: s.replace("NoNewPrivileges=yes", "NoNewPrivileges=no", 1)
        ),
        "NoNewPrivileges=no",
    ),
    (
        "BAK-DAILY",
        lambda c: _report(c, "intake-1", "run", ok=False, error="KMS refused"),
        "KMS refused",
    ),
    ("BAK-DAILY", lambda c: _artifact_at(c, "backup-run", "2026-12-02T20:00:00+00:00"), "stale"),
    ("BAK-DAILY", lambda c: c.backups.pop("app-1"), "app-1: no run report"),
    (
        "BAK-VERIFY",
        lambda c: _report(c, "db-1", "verify", ok=False, problems=["pack 3f: bad tag"]),
        "bad tag",
    ),
    (
        "BAK-RESTORE",
        lambda c: _report(c, "db-1", "drill", ok=False, problems=["row counts differ"]),
        "row counts differ",
    ),
    (
        "BAK-RESTORE",
        lambda c: _artifact_at(c, "backup-drill", "2026-10-20T00:00:00+00:00"),
        "stale",
    ),
    (
        "BAK-IMMUTABLE",
        lambda c: _report(c, "db-1", "run", retain_until="2026-11-01T00:00:00Z"),
        "retention ended",
    ),
    ("BAK-IMMUTABLE", lambda c: _report(c, "app-1", "run", immutability=None), "without a lock"),
    ("INFO-ENCRYPT", lambda c: c.audit.update(volumes_encrypted=False), "without a KMS key"),
    (
        "INFO-ENCRYPT",
        lambda c: _report(c, "db-1", "run", key={"kind": "file"}),
        "not wrapped by KMS",
    ),
    ("AUDIT-TRAIL", lambda c: c.audit.update(audit_lock=None), "audit bucket lock"),
    ("DOCS-CONFIG", lambda c: c.network.pop("report"), "no linkage report"),
    ("DATA-JAPAN", lambda c: c.audit.update(regions=["ap-northeast-1", "us-east-1"]), "us-east-1"),
    ("COST", lambda c: setattr(c, "cost", None), "claims-dc:cost"),
]


@pytest.mark.parametrize(
    ("control", "edit", "named"),
    BAD_CASES,
    ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BAD_CASES)],
)
def test_each_check_fails_on_its_bad_case(
    good: Collected, control: str, edit: Callable[[Collected], None], named: str
) -> None:
    assert status(good)[control] == controls.PASS
    edit(good)
    [row] = [r for r in controls.matrix(good) if r.id == control]
    assert row.status == controls.FAIL
    assert named in row.detail, row.detail


def test_every_check_has_a_bad_case() -> None:
    data = {r["id"]: r.get("check") for r in controls.load()["requirements"]}
    covered = {data[control] for control, _, _ in BAD_CASES}
    assert covered == set(controls.CHECKS)


def test_a_host_without_evidence_fails_what_rests_on_it(good: Collected) -> None:
    del good.hosts["db-1"]
    got = status(good)
    for control in ("NET-HOSTFW", "NET-LISTEN", "AUTH-SSH", "AUTH-DB", "SYS-SANDBOX"):
        assert got[control] == controls.FAIL, control


def test_stale_evidence_is_marked_and_fails(tmp_path: Path) -> None:
    later = NOW + dt.timedelta(days=40)
    c = build(tmp_path / "pack", now=later)
    rows = {r.id: r for r in controls.matrix(c)}
    for control in ("BAK-DAILY", "BAK-VERIFY", "BAK-RESTORE"):
        assert rows[control].stale and rows[control].status == controls.FAIL, control
        assert "stale evidence" in rows[control].detail
    assert not rows["AUTH-REVIEW"].stale  # 40 days is within the review's 90
    # BAK-IMMUTABLE and INFO-ENCRYPT rest on the backup runs too.
    assert controls.counts(list(rows.values()))["stale"] == 5


def test_the_review_is_verified_and_diffed(tmp_path: Path) -> None:
    c = build(tmp_path / "pack")
    assert c.review is not None and c.review["signed"] and c.review["verdict"] == "FINDINGS"
    assert {f["check"] for f in c.review["findings"]} == {"ACR-002", "ACR-006", "IAM-005"}
    assert len(c.review["diff"]["new"]) == 3  # nothing before it
    assert (tmp_path / "pack" / "review" / "diff.json").exists()
    # A review edited after it was signed is reported, and fails its control.
    state = tmp_path / "tampered"
    shutil.copytree(FIXTURES / "review", state / collect_mod.REVIEWS)
    [run] = list((state / collect_mod.REVIEWS).iterdir())
    body = json.loads((run / "review.json").read_text())
    body["findings"] = []
    (run / "review.json").write_text(json.dumps(body))
    other = Collected("lab", NOW.isoformat(), load_stack("lab"))
    collect_mod.review(other, state / "inventory.yml", tmp_path / "other")
    assert other.review is not None and not other.review["signed"]
    assert any("changed since it was signed" in p for p in other.problems)
    assert status(other)["AUTH-REVIEW"] == controls.FAIL


def test_review_diff_names_new_resolved_and_open() -> None:
    def finding(check: str, account: str) -> dict[str, str]:
        return {"check": check, "system": "host:app-1", "account": account}

    before = {
        "review_date": "2026-09-01",
        "findings": [finding("ACR-002", "a"), finding("ACR-006", "b")],
    }
    now = {"findings": [finding("ACR-006", "b"), finding("ACR-001", "c")]}
    diff = collect_mod.review_diff(now, before)
    assert [d["account"] for d in diff["new"]] == ["c"]
    assert [d["account"] for d in diff["resolved"]] == ["a"]
    assert [d["account"] for d in diff["still_open"]] == ["b"]


def test_hostile_host_output_is_refused_by_name(tmp_path: Path) -> None:
    c = Collected("lab", NOW.isoformat(), load_stack("lab"))
    (tmp_path / "db-1.json").write_bytes(b"\xff\xfe not json")
    (tmp_path / "app-1.json").write_text(
        json.dumps({"host": "db-1", "sshd": "", "nftables": "", "sockets": "", "units": ""})
    )
    big = tmp_path / "intake-1.json"
    with big.open("wb") as f:
        f.truncate(collect_mod.MAX_HOST_FILE + 1)
    for path in sorted(tmp_path.glob("*.json")):
        assert collect_mod._host_file(c, path) is None
    assert len(c.problems) == 3
    assert any("over" in p for p in c.problems) and any("not the probe's" in p for p in c.problems)
    # A verify that did not read the data is not the evidence asked for; junk is named.
    reports = collect_mod._reports(
        c, "db-1", [json.dumps({"command": "verify", "ok": True, "read_data": False}), "{no"]
    )
    assert reports == {} and "db-1: a backup report that is not JSON" in c.problems


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: Path) -> pack.Pack:
    key = tmp_path / "keys" / "evidence"

    def fake_collect(
        stack_file: Path, config: Any, inventory: Path, staging: Path, now: Any = None
    ) -> Collected:
        return build(staging)

    monkeypatch.setattr(pack, "collect", fake_collect)
    return pack.write(Path("Pulumi.lab.yaml"), load_stack("lab"), tmp_path / "inv.yml", out, key)


def test_the_pack_is_signed_and_a_tampered_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "pack-2026-12"
    written = _write(tmp_path, monkeypatch, out)
    assert written.counts["FAIL"] == 1  # the lab's review with its three seeded problems
    signers = pack.trusted_signers(tmp_path / "keys" / "evidence")
    assert pack.verify(out, signers) == []
    doc = json.loads((out / "evidence.json").read_text(encoding="utf-8"))
    assert doc["counts"] == written.counts and len(doc["matrix"]) == len(written.rows)
    assert set(manifest.listed(out)) >= {
        "evidence.json",
        "evidence.html",
        "backups/db-1/drill.json",
    }

    (out / "backups" / "db-1" / "drill.json").write_text('{"ok": true}')
    (out / "hosts" / "app-1.json").unlink()
    (out / "extra.txt").write_text("added later")
    problems = pack.verify(out, signers)
    assert "backups/db-1/drill.json: changed since it was signed" in problems
    assert "hosts/app-1.json: listed in SHA256SUMS but missing" in problems
    assert "extra.txt: not in SHA256SUMS: added after signing" in problems

    # Re-signed with another key: the trusted signer file does not accept it.
    other = manifest.ensure_key(tmp_path / "other" / "key", pack.SIGNER)
    manifest.sign(out, other, pack.NAMESPACE)
    assert any("signature does not verify" in p for p in pack.verify(out, signers))


def test_an_interrupted_pack_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Collected:
        raise RuntimeError("the bastion went away")

    monkeypatch.setattr(pack, "collect", broken)
    with pytest.raises(RuntimeError):
        pack.write(
            Path("Pulumi.lab.yaml"),
            load_stack("lab"),
            tmp_path / "inv.yml",
            tmp_path / "out",
            tmp_path / "key",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "key.allowed_signers", "key.pub"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("an earlier pack")
    with pytest.raises(pack.PackError, match="not an empty directory"):
        pack.write(
            Path("Pulumi.lab.yaml"),
            load_stack("lab"),
            tmp_path / "inv.yml",
            tmp_path / "full",
            tmp_path / "key",
        )


def test_the_page_shows_the_matrix_and_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "pack"
    _write(tmp_path, monkeypatch, out)
    printed = print_report(out / "evidence.html")
    assert not printed.escaped, printed.escaped
    for words in (
        "管理策対応表 / Control matrix",
        "不合格",
        "FAIL",
        "対象外",
        "NOT COVERED",
        "項番要確認",
        "システム運用編 13 遵守事項⑫",
        "d0102",
        "JST",
    ):
        assert words in printed.text, words
    assert printed.pdf.startswith(b"%PDF") and len(printed.pdf) > 20_000


def test_cli_usage_errors_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "nowhere", "-i", str(tmp_path / "i.yml"), "--out", "x"]) == 2
    assert "no stack file Pulumi.nowhere.yaml" in capsys.readouterr().err
    assert main(["--stack", "lab", "-i", str(tmp_path / "i.yml"), "--out", "x"]) == 2
    assert "no inventory" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "none")]) == 2
    assert main(["collect", "--stack", "lab"]) == 2  # -i and --out are required


def test_cli_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pack"
    _write(tmp_path, monkeypatch, out)
    signers = str(pack.trusted_signers(tmp_path / "keys" / "evidence"))
    assert main(["verify", str(out), "--allowed-signers", signers]) == 0
    (out / "evidence.html").write_text("<p>all PASS</p>")
    assert main(["verify", str(out), "--allowed-signers", signers, "--json"]) == 1
    printed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert printed["problems"] == ["evidence.html: changed since it was signed"]


def test_controls_file_is_plain_yaml() -> None:
    # The matrix is data an auditor can read and diff: it must load as it is written.
    raw = yaml.safe_load((Path(controls.__file__).parent / "controls.yml").read_text("utf-8"))
    assert copy.deepcopy(raw) == controls.load()


def test_the_network_and_cost_evidence_from_the_program(tmp_path: Path) -> None:
    from infra.offline import evaluate

    stack = Path(__file__).resolve().parents[2] / "Pulumi.lab.yaml"
    ev = evaluate(stack)
    c = Collected("lab", NOW.isoformat(), ev.config)
    collect_mod.network(c, ev, stack, tmp_path)
    collect_mod.cost(c, ev, tmp_path)
    assert c.network["verdicts"] == {"closed": "HOLDS", "policy": "HOLDS", "separated": "HOLDS"}
    assert (tmp_path / "network" / "linkage-report.html").exists()
    assert c.audit["audit_lock"] == {"defaultRetention": {"mode": "COMPLIANCE", "days": 1827.0}}
    assert c.audit["volumes_encrypted"] and c.audit["regions"] == ["ap-northeast-1"]
    assert c.cost is not None and c.cost["difference_yen"] > 0
    got = status(c)
    for control in ("NET-CLOSED", "NET-LINES", "NET-FLOWS", "AUDIT-TRAIL", "DOCS-CONFIG",
                    "DATA-JAPAN", "COST"):  # fmt: skip
        assert got[control] == controls.PASS, control


def test_a_hostile_review_directory_brings_nothing_else_in(tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(FIXTURES / "review", state / collect_mod.REVIEWS)
    [run] = list((state / collect_mod.REVIEWS).iterdir())
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("a file of the control node")
    (run / "review.csv").unlink()
    (run / "review.csv").symlink_to(secret)
    (run / "extra").write_text("not the review's")
    c = Collected("lab", NOW.isoformat(), load_stack("lab"))
    collect_mod.review(c, state / "inventory.yml", tmp_path / "pack")
    copied = tmp_path / "pack" / "review" / run.name
    assert sorted(p.name for p in copied.iterdir()) == [
        "SHA256SUMS", "SHA256SUMS.sig", "allowed_signers", "review.html", "review.json",
    ]  # fmt: skip
    assert c.review is not None and not c.review["signed"]
    assert any("review.csv is a symlink" in p for p in c.problems)
    assert status(c)["AUTH-REVIEW"] == controls.FAIL
    # A review.json that is not JSON is named, and the review counts as missing.
    (run / "review.json").write_bytes(b"\xff not json")
    other = Collected("lab", NOW.isoformat(), load_stack("lab"))
    collect_mod.review(other, state / "inventory.yml", tmp_path / "pack2")
    assert other.review is None and any("review.json unreadable" in p for p in other.problems)
