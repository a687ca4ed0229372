"""The rotation's status for the fleet board (ops/status.py): every secret's last rotation
from the ledger with its kind's interval, and when each certificate the control node issued
expires. Published by `rotate` after each run, from the control node, where the ledger is."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography import x509

from ops.rotation.calendar import Due
from ops.rotation.driver import KINDS, Site, due_calendar
from ops.rotation.ledger import Ledger
from ops.status import CONTROL_NODE, OPERATIONS, Publisher, StatusError


def certificates(pki: Path) -> list[dict[str, str]]:
    """The internal CA's certificate and each host's served one (pki/<host>.crt)."""
    out = []
    for path in sorted(pki.glob("*.crt")):
        if path.name.endswith((".next.crt", ".prev.crt")):
            continue  # staged or kept for rollback: not served
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as e:
            raise StatusError(f"{path}: not a PEM certificate ({e})") from None
        name = "internal-ca" if path.stem == "ca" else f"tls:{path.stem}"
        out.append({"name": name, "not_after": cert.not_valid_after_utc.isoformat()})
    return out


def body(calendar: list[Due], pki: Path) -> dict[str, Any]:
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "secrets": [
            {k: v for k, v in asdict(d).items()
             if k in ("secret", "kind", "every_days", "last_rotated", "status")}
            for d in calendar
        ],
        "certificates": certificates(pki),
    }  # fmt: skip


def publish(site: Site, ledger: Ledger) -> str:
    """After every run: the key it went to, or why not. A status that cannot be published
    does not undo a rotation; the board shows it growing old instead."""
    bucket = site.vars.get("claims_dc_status_bucket")
    if not bucket:
        return "not published: the inventory names no status bucket"
    try:
        publisher = Publisher(str(bucket), str(site.vars.get("claims_dc_stack")), OPERATIONS,
                              CONTROL_NODE)  # fmt: skip
        doc = body(due_calendar(site, list(KINDS), ledger), site.state / "pki")
        return publisher.publish(site.aws().client("s3"), "rotation", doc)
    except StatusError as e:
        return f"not published: {e}"
