"""`python -m claimapp.db check`: the rotation's proof that the database admits the
application's login: the session's login and the role it acts as, from the
application's own settings; --as-login tries another login before the application moves."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from claimapp import db


@pytest.fixture
def app_settings(
    postgres: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    params = conninfo_to_dict(postgres["app"])
    password = params.pop("password")
    secret = tmp_path / "db-password"
    secret.write_text(f"{password}\n")
    secret.chmod(0o600)
    monkeypatch.setenv("CLAIMAPP_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("CLAIMAPP_DSN", make_conninfo(**{k: str(v) for k, v in params.items()}))
    monkeypatch.setenv("CLAIMAPP_DB_PASSWORD_FILE", str(secret))
    return {"password": str(password), "user": str(params["user"])}


def test_check_reports_the_login_of_the_applications_own_settings(
    app_settings: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert db.main(["check"]) == 0
    assert json.loads(capsys.readouterr().out)["session_user"] == app_settings["user"]


def test_check_as_another_login_reads_its_password_from_stdin(
    app_settings: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(app_settings["password"] + "\n"))
    assert db.main(["check", "--as-login", app_settings["user"]]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("not-the-password\n"))
    assert db.main(["check", "--as-login", app_settings["user"]]) == 1
    err = capsys.readouterr().err
    assert "password authentication failed" in err and "not-the-password" not in err
