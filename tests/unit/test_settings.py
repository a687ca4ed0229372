"""Configuration from a file and the environment; the password only from a private file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from claimapp.settings import SettingsError, load

REPO = Path(__file__).resolve().parents[2]
CONF = """
[database]
dsn = "host=/run/postgresql dbname=claims user=claims_app"
password_file = "{pw}"
[paths]
drop = "/srv/x/incoming"
[web]
session_minutes = 20
"""


def _conf(tmp_path: Path, mode: int = 0o600, text: str = CONF) -> Path:
    pw = tmp_path / "db-password"
    pw.write_text("s3cret-from-file\n")
    os.chmod(pw, mode)
    path = tmp_path / "claimapp.toml"
    path.write_text(text.format(pw=pw))
    return path


def test_file_then_environment(tmp_path: Path) -> None:
    s = load(_conf(tmp_path), env={"CLAIMAPP_SESSION_MINUTES": "10"})
    assert "password=s3cret-from-file" in s.dsn and "user=claims_app" in s.dsn
    assert s.drop == Path("/srv/x/incoming") and s.session_minutes == 10
    assert s.quarantine == Path("/srv/claims/quarantine")  # the default


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="mode 644, must not be readable by others"):
        load(_conf(tmp_path, mode=0o644), env={})


def test_a_password_in_the_dsn_is_refused(tmp_path: Path) -> None:
    text = '[database]\ndsn = "host=/run/postgresql dbname=claims password=oops"\n'
    with pytest.raises(SettingsError, match="carries a password"):
        load(_conf(tmp_path, text=text), env={})


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"CLAIMAPP_DSN": ""}, "database.dsn"),
        ({"CLAIMAPP_THROTTLE_AFTER": "zero"}, "throttle_after = 'zero'"),
        ({"CLAIMAPP_SESSION_MINUTES": "0"}, "session_minutes = 0: must be 1"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load(_conf(tmp_path), env=env)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "claimapp.toml"
    path.write_text("[database\n")
    with pytest.raises(SettingsError, match=re.escape("claimapp.toml: not valid TOML")):
        load(path, env={})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    import yaml

    from tests.conftest import render_template

    # The units are the claim_app role's templates, rendered with its defaults; `current`
    # points at this test's venv so every ExecStart resolves.
    role = REPO / "playbooks" / "roles" / "claim_app"
    values = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    home = tmp_path / "home"
    home.mkdir()
    (home / "current").symlink_to(Path(sys.executable).parent.parent)
    drop = tmp_path / "drop"
    drop.mkdir()
    values |= {
        "claim_app_home": str(home),
        "claim_app_drop_dir": str(drop),
        "claim_app_data_dir": str(tmp_path),
        "claim_app_intake_alert": str(tmp_path / "alert"),
    }
    for template in role.glob("templates/claimapp-*.*.j2"):
        text = render_template(template, values)
        target = tmp_path / template.name.removesuffix(".j2")
        if target.suffix == ".sh":
            target = tmp_path / "alert"
        target.write_text(text)
    (tmp_path / "alert").chmod(0o755)

    def verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *map(str, paths)],
            capture_output=True,
            text=True,
            check=False,
        )

    good = verify(sorted(tmp_path.glob("claimapp-*.*")))
    assert good.returncode == 0 and good.stderr.strip() == "", good.stderr
    # ...and the check fires on a broken unit (a relative ExecStart).
    broken = tmp_path / "claimapp-broken.service"
    broken.write_text("[Service]\nExecStart=python -m claimapp.intake\n")
    assert verify([broken]).returncode != 0


def test_the_wsgi_entry_builds_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib

    monkeypatch.setenv("CLAIMAPP_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CLAIMAPP_DSN", "host=/nonexistent dbname=claims user=claims_app")
    import claimapp.wsgi

    module = importlib.reload(claimapp.wsgi)
    assert module.app.name == "claimapp.web"


def test_intake_cli_refuses_bad_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from claimapp.intake import main

    monkeypatch.setenv("CLAIMAPP_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("CLAIMAPP_DSN", raising=False)
    assert main(["--drop", str(tmp_path)]) == 2
    assert "database.dsn" in capsys.readouterr().err
