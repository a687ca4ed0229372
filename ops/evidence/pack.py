"""Write the evidence pack (evidence.json, evidence.html and the artifacts), sign it, verify it.

The pack is built in a hidden directory beside its destination and renamed into place once
signed, so an interrupted run leaves no half-written pack under the name an auditor would open.
SHA256SUMS lists every file and SHA256SUMS.sig signs it (ops/manifest.py); `verify` names every
file that was edited, removed or added since. It checks the signature against a signer file
the verifier already trusts, never against the copy inside the pack, which anyone rewriting the
pack could rewrite too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infra.config import StackConfig
from ops import manifest
from ops.evidence.collect import Collected, collect
from ops.evidence.controls import Row, as_dicts, counts, load, matrix
from ops.status import for_people

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = SIGNER = "claims-dc-evidence"
DEFAULT_KEY = Path(os.environ.get("CLAIMS_DC_EVIDENCE_KEY", REPO / ".keys" / "evidence_ed25519"))
STATUS_JA = {"PASS": "合格", "FAIL": "不合格", "NOT COVERED": "対象外"}
FORMAT = 1


class PackError(Exception):
    """The pack cannot be written where asked (exit 2)."""


@dataclass
class Pack:
    directory: Path
    collected: Collected
    rows: list[Row]

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.rows)


def document(c: Collected, rows: list[Row], guidelines: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "municipality": {"code": c.config.municipality.code, "name": c.config.municipality.name},
        **c.summary(),
        "guidelines": guidelines,
        "counts": counts(rows),
        "matrix": as_dicts(rows),
    }


def to_html(doc: dict[str, Any], cost: dict[str, Any] | None) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    rows = [dict(r, evidence_local=for_people(r["evidence_at"])) for r in doc["matrix"]]
    backups = {
        host: {
            cmd: {**report, "when": for_people(report.get("time") or report.get("started"))}
            for cmd, report in {c: cmds.get(c, {}) for c in ("run", "verify", "drill")}.items()
        }
        for host, cmds in doc["backups"].items()
    }
    artifacts = [dict(a, at_local=for_people(a["at"])) for a in doc["artifacts"]]
    return env.get_template("evidence.html.j2").render(
        municipality=doc["municipality"]["name"],
        code=doc["municipality"]["code"],
        stack=doc["stack"],
        generated=for_people(doc["generated_at"]),
        counts=doc["counts"],
        problems=doc["problems"],
        rows=rows,
        guidelines=doc["guidelines"],
        status_ja=STATUS_JA,
        backups=backups,
        review=doc["review"],
        rotation=doc["rotation"] or [],
        cost=cost,
        artifacts=artifacts,
        namespace=NAMESPACE,
    )


def _staging(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackError(f"{out}: exists and is not an empty directory; give a new --out")
    if not out.parent.is_dir():
        raise PackError(f"{out.parent}: no such directory")
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o750)
    return staging


def write(
    stack_file: Path,
    config: StackConfig,
    inventory: Path,
    out: Path,
    key: Path,
    now: dt.datetime | None = None,
) -> Pack:
    """Collect, judge, render, sign; the pack appears at `out` only when complete."""
    staging = _staging(out)
    try:
        manifest.ensure_key(key, SIGNER)
        trusted_signers(key)  # beside the key, to hand over apart from the pack
        c = collect(stack_file, config, inventory, staging, now)
        data = load()
        rows = matrix(c, data["requirements"])
        doc = document(c, rows, data["guidelines"])
        (staging / "evidence.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        (staging / "evidence.html").write_text(to_html(doc, c.cost), encoding="utf-8")
        (staging / "allowed_signers").write_text(
            manifest.allowed_signers_line(key.with_name(key.name + ".pub"), SIGNER, NAMESPACE)
        )
        names = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        manifest.write(staging, names)
        manifest.sign(staging, key, NAMESPACE)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Pack(out, c, rows)


def trusted_signers(key: Path = DEFAULT_KEY) -> Path:
    """The signer file beside the signing key's public half: the copy a verifier trusts."""
    path = key.with_name(key.name + ".allowed_signers")
    path.write_text(
        manifest.allowed_signers_line(key.with_name(key.name + ".pub"), SIGNER, NAMESPACE)
    )
    return path


def verify(directory: Path, allowed_signers: Path) -> list[str]:
    """Every file edited, missing or added since the pack was signed, and a bad signature."""
    problems = manifest.verify(directory, allowed_signers, SIGNER, NAMESPACE)
    if (directory / manifest.SUMS).exists():
        problems += [
            f"{name}: not in {manifest.SUMS}: added after signing"
            for name in manifest.unlisted(directory)
        ]
    return problems


def summary(pack: Pack) -> dict[str, Any]:
    return {
        "pack": str(pack.directory),
        "counts": pack.counts,
        "problems": pack.collected.problems,
        "matrix": [asdict(r) for r in pack.rows],
    }
