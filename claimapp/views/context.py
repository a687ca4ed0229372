"""What every view needs: the request's database connection, who is asking and from where,
the role check, the CSRF check and the shared response headers."""

from __future__ import annotations

import atexit
import ipaddress
from urllib.parse import urlsplit

import psycopg
from flask import Flask, Response, abort, current_app, g, request
from psycopg_pool import ConnectionPool

from claimapp.accounts import Policy, User, audit, session_user

COOKIE = "claimapp_session"
READ_RECEIPTS = ("caseworker", "supervisor")
READ_AUDIT = ("auditor", "admin")
POOL = "claimapp.pool"
# Per process: a gunicorn sync worker serves one request at a time, so one connection is busy
# and the rest are headroom for a threaded server.
POOL_MIN, POOL_MAX = 1, 4
WAIT_SECONDS = 10.0  # for a free connection, and for the database to answer a new one


def policy() -> Policy:
    return current_app.config["CLAIMAPP_POLICY"]  # type: ignore[no-any-return]


def make_pool(dsn: str) -> ConnectionPool:
    """The process's connections, reused from request to request. Opened by the first request
    that needs one, in the process that serves it: a pool's threads and sockets would not
    survive gunicorn forking its workers. Each connection is checked as it is handed out, so
    one the server closed (a restart, a terminated backend) is replaced, not used."""
    return ConnectionPool(
        dsn,
        kwargs={"autocommit": True, "connect_timeout": int(WAIT_SECONDS)},
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        open=False,
        check=ConnectionPool.check_connection,
        timeout=WAIT_SECONDS,
        num_workers=1,
        name="claimapp",
    )


def close_pool(app: Flask) -> None:
    app.extensions[POOL].close()


def conn() -> psycopg.Connection:
    if "db" not in g:
        pool: ConnectionPool = current_app.extensions[POOL]
        pool.open()  # a no-op once open
        g.db = pool.getconn()
    return g.db  # type: ignore[no-any-return]


def close(_: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        current_app.extensions[POOL].putconn(db)


def address() -> str | None:
    # nginx in front sets X-Real-IP; directly, the peer address is the client.
    return request.headers.get("X-Real-IP") or request.remote_addr


def well_formed() -> None:
    """A malformed request is the client's error (400), never the server's (500): a NUL in
    any parameter (PostgreSQL text cannot hold one), an X-Real-IP that is not an address."""
    pairs = [*request.args.items(multi=True)]
    if request.mimetype == "application/x-www-form-urlencoded":
        pairs += request.form.items(multi=True)
    if any("\0" in k or "\0" in v for k, v in pairs):
        abort(400)
    real_ip = request.headers.get("X-Real-IP")
    if real_ip is not None:
        try:
            ipaddress.ip_address(real_ip)
        except ValueError:
            abort(400)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.is_json


def current_user() -> User | None:
    if "user" not in g:
        g.user = session_user(conn(), request.cookies.get(COOKIE))
    return g.user  # type: ignore[no-any-return]


def require(roles: tuple[str, ...]) -> User:
    user = current_user()
    if user is None:
        abort(401)
    if user.role not in roles:
        audit(conn(), user.username, "denied", request.path, address(), False)
        abort(403)
    return user


def same_origin_only() -> None:
    """CSRF: a POST is accepted only from a page of this site. A browser names the page's
    origin in the Origin header of every POST; a cross-site form or script cannot forge it.
    A JSON POST without Origin is a client outside any browser (a browser could send JSON
    cross-site only after a CORS preflight, which this site never grants)."""
    if request.method != "POST":
        return
    origin = request.headers.get("Origin")
    if origin is None and request.is_json:
        return
    if origin is None or urlsplit(origin).netloc != request.host:
        user = current_user()
        audit(conn(), user.username if user else "-", "csrf-refused", request.path, address(),
              False)  # fmt: skip
        abort(403)


def security_headers(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"  # personal data never lands in a cache
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'self'"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def install(app: Flask) -> None:
    app.extensions[POOL] = make_pool(app.config["CLAIMAPP_DSN"])
    # A worker that exits says goodbye to the server rather than dropping its sockets.
    atexit.register(close_pool, app)
    app.before_request(well_formed)
    app.before_request(same_origin_only)
    app.after_request(security_headers)
    app.teardown_appcontext(close)
