"""ops/backup.py: the CLI's commands, reports, exit codes; and the drill on a real PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import backup as cli
from ops.backuplib import settings

from .conftest import free_port, make_bucket, make_tree, tree_digest


def write_config(tmp_path: Path, repo: str, extra: str = "", key: str | None = None) -> Path:
    key = key or f'key_file = "{tmp_path / "repo.key"}"'
    path = tmp_path / "backup.toml"
    path.write_text(f'''
[repository]
url = "{repo}"
{key}
lock_days = 1

[retention]
daily = 2
monthly = 0
yearly = 0

[state]
dir = "{tmp_path / "state"}"

[[source]]
name = "claim-files"
kind = "files"
paths = ["{tmp_path / "srv"}"]
{extra}
''')
    return path


def run(config: Path, *args: str, capsys: Any) -> tuple[int, dict[str, Any] | list[Any]]:
    code = cli.main(["--config", str(config), "--json", "--quiet", *args])
    return code, json.loads(capsys.readouterr().out or "null")


def test_help_teaches_and_usage_errors_exit_2(capsys: Any) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("init", "run", "list", "show", "verify", "drill", "restore", "prune"):
        assert command in out
    assert "Exit codes" in out
    assert cli.main(["frobnicate"]) == 2


def test_a_local_repository_through_the_cli(tmp_path: Path, capsys: Any) -> None:
    src = make_tree(tmp_path / "srv")
    config = write_config(tmp_path, str(tmp_path / "repo"))
    code, out = run(config, "init", "--new-key-file", capsys=capsys)
    assert code == 0 and out["ok"]  # type: ignore[index]
    assert (tmp_path / "repo.key").stat().st_mode & 0o777 == 0o600
    code, out = run(config, "run", capsys=capsys)
    assert code == 0
    report = json.loads(Path(out["report"][0]).read_text())  # type: ignore[index]
    assert report["snapshot"] == out["snapshot"]  # type: ignore[index]
    text = Path(out["report"][1]).read_text()  # type: ignore[index]
    assert "OK" in text and out["snapshot"] in text  # type: ignore[index]
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["ok"] and status["snapshot"] == out["snapshot"]  # type: ignore[index]
    code, snaps = run(config, "list", capsys=capsys)
    assert code == 0 and len(snaps) == 1
    code, out = run(config, "verify", "--read-data", "--subset", "50%", capsys=capsys)
    assert code == 0 and out["coverage"]["covered_percent"] >= 50  # type: ignore[index]
    code, out = run(
        config,
        "restore",
        "--target",
        str(tmp_path / "out"),
        "--as-of",
        "2999-01-01",
        "--source",
        "claim-files",
        capsys=capsys,
    )
    assert code == 0 and out["paths"] == {"claim-files": [str(src)]}  # type: ignore[index]
    assert tree_digest(tmp_path / "out" / "claim-files" / str(src).lstrip("/")) == tree_digest(src)
    # What was restored is what the snapshot recorded, file by file; a changed byte is named.
    restored = tmp_path / "out" / "claim-files"
    code, out = run(config, "compare", "--source", "claim-files", "--root", str(restored),
                    capsys=capsys)  # fmt: skip
    assert code == 0 and out["checked"] == out["entries"] > 0  # type: ignore[index]
    victim = next(p for p in restored.rglob("*") if p.is_file() and not p.is_symlink())
    victim.write_bytes(victim.read_bytes() + b"x")
    code, out = run(config, "compare", "--source", "claim-files", "--root", str(restored),
                    capsys=capsys)  # fmt: skip
    assert code == 1 and out["problems"] == [f"{victim}: SHA-256 differs from the snapshot's"]  # type: ignore[index]
    code, out = run(config, "prune", "--dry-run", capsys=capsys)
    assert code == 0 and out["forget"] == []  # type: ignore[index]


def test_a_recovery_moment_without_its_zone_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    config = write_config(tmp_path, str(tmp_path / "repo"))
    assert cli.main(["--config", str(config), "recover", "--to", "2026-12-02 14:05"]) == 2
    assert "'2026-12-02 14:05': say which zone" in capsys.readouterr().err


def test_a_failed_run_leaves_a_status_operators_can_see(tmp_path: Path, capsys: Any) -> None:
    config = write_config(tmp_path, str(tmp_path / "repo"))
    make_tree(tmp_path / "srv")
    assert run(config, "init", "--new-key-file", capsys=capsys)[0] == 0
    os.chmod(tmp_path / "repo.key", 0o644)
    code, out = run(config, "run", capsys=capsys)
    assert code == 2 and "lets others read it" in out["error"]  # type: ignore[index]
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["ok"] is False and "lets others read it" in status["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[repository]\n", "url must be a directory or s3://bucket/prefix, got nothing"),
        ('[repository]\nurl = "/r"\n', "exactly one of kms_key_id and key_file"),
        ('[repository]\nurl = "/r"\nkey_file = "/k"\nlock_days = 0\n', "lock_days must be"),
        (
            '[repository]\nurl = "/r"\nkey_file = "/k"\n[[source]]\nname = "x"\nkind = "tape"\n',
            "unknown kind 'tape'",
        ),
        (
            '[repository]\nurl = "/r"\nkey_file = "/k"\n[[source]]\nname = "x"\nkind = "files"\n'
            'paths = ["relative"]\n',
            "paths must be absolute",
        ),
        ("[repository\n", "not valid TOML"),
        ('[repository]\nurl = 5\nkey_file = "/k"\n', "url must be a directory or s3://"),
        ('[repository]\nurl = "/r"\nkey_file = 5\n', "key_file must be the absolute path"),
        ('[repository]\nurl = "/r"\nkey_file = "k"\n', "key_file must be an absolute path"),
        ('[repository]\nurl = "/r"\nkey_file = "/k"\n[state]\ndir = 5\n', "dir must be"),
        ('[repository]\nurl = "/r"\nkey_file = "/k"\nstate = 5\n', "unknown key(s)"),
        ('repository = "/r"\n', "[repository] must be a table"),
        (
            '[repository]\nurl = "/r"\nkey_file = "/k"\n[retention]\ndaily = "7"\n',
            "retention.daily must be a whole number",
        ),
        ('[repository]\nurl = "/r"\nkey_file = "/k"\n[source]\nname = "x"\n', "written [[source]]"),
        (
            '[repository]\nurl = "/r"\nkey_file = "/k"\n[[source]]\nname = "x"\nkind = "files"\n'
            'paths = "/x"\n',
            "paths must be a list, like ['/x']",
        ),
        (
            '[repository]\nurl = "/r"\nkey_file = "/k"\n[[source]]\nname = "x"\n'
            'kind = "postgres"\ndatabase = "c"\npg_options = "-p 5"\n',
            "pg_options must be a list",
        ),
        (
            '[repository]\nurl = "/r"\nkey_file = "/k"\n[[source]]\nname = "x"\n'
            'kind = "postgres"\ndatabase = "c"\nbase_backup = "yes"\n',
            "base_backup must be true or false, got 'yes'",
        ),
    ],
)
def test_bad_settings_exit_2_and_name_the_problem(
    tmp_path: Path, capsys: Any, body: str, message: str
) -> None:
    config = tmp_path / "backup.toml"
    config.write_text(body)
    assert cli.main(["--config", str(config), "list"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err


def test_a_wrong_key_file_is_a_configuration_error_exit_2(tmp_path: Path, capsys: Any) -> None:
    config = write_config(tmp_path, str(tmp_path / "repo"))
    make_tree(tmp_path / "srv")
    assert run(config, "init", "--new-key-file", capsys=capsys)[0] == 0
    (tmp_path / "repo.key").unlink()
    from ops.backuplib import crypto

    crypto.make_key_file(tmp_path / "repo.key")  # another key, in the same place
    code, out = run(config, "list", capsys=capsys)
    assert code == 2 and "wrong key" in out["error"]  # type: ignore[index]
    code, out = run(config, "run", capsys=capsys)
    assert code == 2 and "wrong key" in out["error"]  # type: ignore[index]


def test_an_unexpected_error_is_named_exit_1_and_reported(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, str(tmp_path / "repo"))
    make_tree(tmp_path / "srv")
    assert run(config, "init", "--new-key-file", capsys=capsys)[0] == 0

    def broken(*_: Any, **__: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli.archiver, "backup", broken)
    code, out = run(config, "run", capsys=capsys)
    assert code == 4 and out["error"] == "unexpected failure: ZeroDivisionError: a bug"  # type: ignore[index]
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["ok"] is False and "ZeroDivisionError" in status["error"]


def test_two_runs_on_one_host_the_second_is_told_at_once(tmp_path: Path, capsys: Any) -> None:
    config = write_config(tmp_path, str(tmp_path / "repo"))
    make_tree(tmp_path / "srv")
    assert run(config, "init", "--new-key-file", capsys=capsys)[0] == 0
    held = cli._LocalLock(tmp_path / "state")
    try:
        code, out = run(config, "run", capsys=capsys)
    finally:
        held.release()
    assert code == 1 and "another claims-dc-backup is running" in out["error"]  # type: ignore[index]


def test_s3_with_kms_through_the_cli(
    tmp_path: Path, capsys: Any, s3: Any, kms_key: str, moto_endpoint: str
) -> None:
    bucket = make_bucket(s3)
    config = write_config(
        tmp_path,
        f"s3://{bucket}/db-1",
        key=f'kms_key_id = "{kms_key}"\nendpoint_url = "{moto_endpoint}"\n'
        'region = "ap-northeast-1"',
    )
    src = make_tree(tmp_path / "srv")
    assert run(config, "init", capsys=capsys)[0] == 0
    code, out = run(config, "run", capsys=capsys)
    assert code == 0 and out["key"]["kms_key_id"] == kms_key  # type: ignore[index]
    assert all(o["version_id"] for o in out["objects"])  # type: ignore[index]
    code, out = run(config, "restore", "--target", str(tmp_path / "out"), capsys=capsys)
    assert code == 0
    assert tree_digest(tmp_path / "out" / "claim-files" / str(src).lstrip("/")) == tree_digest(src)


def test_an_unreachable_endpoint_is_a_failure_with_the_endpoint_named(
    tmp_path: Path, capsys: Any, kms_key: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path,
        "s3://claims-dc-nowhere/db-1",
        key=f'key_file = "{tmp_path}/k"\nendpoint_url = "{endpoint}"\nregion = "ap-northeast-1"',
    )
    s = settings.load(config)
    storage, _ = cli._clients(s)
    storage.attempts, storage.backoff = 2, 0.01  # type: ignore[attr-defined]
    with pytest.raises(Exception, match=f"{endpoint}.*after 2 attempts"):
        storage.get("config")


# --- the drill, on the suite's private PostgreSQL -------------------------------------------


def db_config(tmp_path: Path, host: str, capsys: Any) -> Path:
    """An initialised repository whose sources include the suite's claims database."""
    extra = f"""
[[source]]
name = "claims-db"
kind = "postgres"
database = "claims"
pg_bin = "/usr/lib/postgresql/15/bin"
pg_options = ["--host={host}", "--username=claims_owner"]
"""
    make_tree(tmp_path / "srv")
    config = write_config(tmp_path, str(tmp_path / "repo"), extra)
    assert run(config, "init", "--new-key-file", capsys=capsys)[0] == 0
    return config


def test_the_drill_restores_into_a_scratch_cluster_and_matches(
    postgres: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    owner = dict(kv.split("=", 1) for kv in postgres["owner"].split())
    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS drill_probe (id int PRIMARY KEY, note text)")
        conn.execute("TRUNCATE drill_probe")
        conn.execute(
            "INSERT INTO drill_probe SELECT g, 'row ' || g FROM generate_series(1, 1000) g"
        )
    monkeypatch.setenv("PGPASSWORD", owner["password"])
    config = db_config(tmp_path, owner["host"], capsys)
    code, out = run(config, "run", capsys=capsys)
    assert code == 0, out
    code, out = run(config, "drill", capsys=capsys)
    assert code == 0, out
    assert out["restored"]["row_counts"]["public.drill_probe"] == 1000  # type: ignore[index]
    assert out["restored"]["dump_sha256"] == out["live"]["dump_sha256"]  # type: ignore[index]
    assert "row 1" not in json.dumps(out), "the report names tables and counts, not contents"
    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("DELETE FROM drill_probe WHERE id > 990")
    code, out = run(config, "drill", capsys=capsys)
    assert code == 1
    assert "table public.drill_probe: live 990 rows, restored 1000" in out["problems"]  # type: ignore[index]
    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("DROP TABLE drill_probe")


def test_a_failing_pg_dump_fails_the_run_and_writes_no_snapshot(
    postgres: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    owner = dict(kv.split("=", 1) for kv in postgres["owner"].split())
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    config = db_config(tmp_path, owner["host"], capsys)
    code, out = run(config, "run", capsys=capsys)
    assert code == 1 and "on 'claims'" in out["error"]  # type: ignore[index]
    assert "password authentication failed" in out["error"]  # type: ignore[index]
    code, snaps = run(config, "list", capsys=capsys)
    assert snaps == []
