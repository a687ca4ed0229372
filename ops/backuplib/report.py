"""Run reports for auditors: one JSON and one text file per run, in the state directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ops.backuplib.progress import human


def text(report: dict[str, Any]) -> str:
    cmd = report.get("command", "?")
    lines = [f"claims-dc backup: {cmd} - {'OK' if report.get('ok') else 'FAILED'}"]
    if report.get("error"):
        lines.append(f"error: {report['error']}")
    for k in (
        "repository",
        "repository_id",
        "snapshot",
        "time",
        "hostname",
        "target",
        "retain_until",
        "immutability",
    ):
        if report.get(k):
            lines.append(f"{k}: {report[k]}")
    if report.get("key"):
        k = report["key"]
        lines.append(f"key: {k['kind']}" + (f" ({k['kms_key_id']})" if k.get("kms_key_id") else ""))
    for s in report.get("sources", []):
        if isinstance(s, dict):
            lines.append(
                f"source {s['name']} ({s['kind']}): {s['entries']} entries, {human(s['bytes'])}"
            )
    if report.get("sizes"):
        z = report["sizes"]
        lines.append(
            f"sizes: logical {human(z['logical'])}, new {human(z['new'])}, "
            f"stored {human(z['stored'])}"
        )
    if report.get("removed_temporaries"):
        lines.append(f"removed temporary files of interrupted writes: "
                     f"{len(report['removed_temporaries'])}")  # fmt: skip
    if report.get("deleted_leases"):
        lines.append(f"deleted ended leases: {', '.join(report['deleted_leases'])}")
    if "extended_locks" in report:
        lines.append(f"locks extended: {report['extended_locks']}")
    for o in report.get("objects", []):
        lines.append(
            f"  object {o['key']} version {o['version_id']} sha256 {o['sha256']} "
            f"until {o['retain_until']}"
        )
    for p in report.get("problems", []):
        lines.append(f"PROBLEM: {p}")
    for p in report.get("unindexed_packs", []):
        lines.append(f"unindexed pack: {p} (present, in no index: the next run adopts it)")
    if report.get("coverage"):
        lines.append(f"coverage: {report['coverage']}")
    if "duration_seconds" in report:
        lines.append(f"duration: {report['duration_seconds']} s")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], state_dir: Path, stamp: str) -> tuple[Path, Path]:
    out = state_dir / "reports"
    out.mkdir(parents=True, exist_ok=True, mode=0o750)
    base = out / f"{stamp}-{report.get('command', 'run')}"
    js, tx = base.with_suffix(".json"), base.with_suffix(".txt")
    for path, body in ((js, json.dumps(report, indent=2, default=str) + "\n"), (tx, text(report))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, path)
    return js, tx
