"""The claim application under gunicorn on a loopback port, for the browser tests and the bench:
configured the way the service is (settings from the environment, the database password in a
file of its own, never in the DSN)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

START_SECONDS = 30.0


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(app_dsn: str, workdir: Path, workers: int = 1) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT); stops the server afterwards."""
    port = free_port()
    parts = conninfo_to_dict(app_dsn)
    secret = workdir / "db-password"
    secret.write_text(str(parts.pop("password", "")))
    secret.chmod(0o600)
    env = {**os.environ, "CLAIMAPP_CONFIG": str(workdir / "absent.toml"),
           "CLAIMAPP_DSN": make_conninfo(**parts),
           "CLAIMAPP_DB_PASSWORD_FILE": str(secret)}  # fmt: skip
    binary = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(binary), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "claimapp.web:create_app(secure_cookies=False)"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as exc:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    _, err = server.communicate(timeout=5)
                    raise ServerDidNotStart(err.decode(errors="replace")[-2000:]) from exc
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
