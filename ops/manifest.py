"""A signed SHA-256 manifest of the files in a directory: SHA256SUMS (sha256sum's format) and
SHA256SUMS.sig (`ssh-keygen -Y sign` with a namespace). The release bundles (ops/bundle.py)
and the access review's reports (ops/reviewlib/report.py) are both signed and checked this way,
so a host can check a bundle, and an auditor a report, with nothing but OpenSSH and sha256sum:

    ssh-keygen -Y verify -f allowed_signers -I SIGNER -n NAMESPACE -s SHA256SUMS.sig < SHA256SUMS
    sha256sum --check --strict SHA256SUMS
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

SUMS, SIG = "SHA256SUMS", "SHA256SUMS.sig"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write(directory: Path, names: Iterable[str]) -> Path:
    """SHA256SUMS over `names` (files in `directory`)."""
    path = directory / SUMS
    path.write_text("".join(f"{sha256_file(directory / n)}  {n}\n" for n in names))
    return path


def sign(directory: Path, key: Path, namespace: str) -> Path:
    """SHA256SUMS.sig beside SHA256SUMS; raises CalledProcessError with ssh-keygen's reason."""
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", namespace, SUMS],
        cwd=directory, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return directory / SIG


def verify(directory: Path, allowed_signers: Path, signer: str, namespace: str) -> list[str]:
    """What is wrong: the signature, then every listed file; empty when all of it holds."""
    sums, sig = directory / SUMS, directory / SIG
    if not sums.exists() or not sig.exists():
        return [f"{directory}: {SUMS} or its signature is missing"]
    problems = []
    with sums.open("rb") as stdin:
        proc = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed_signers), "-I", signer,
             "-n", namespace, "-s", str(sig)],
            stdin=stdin, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        problems.append(f"{sig}: signature does not verify: {proc.stderr.strip()}")
    for name in listed(directory):
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: listed in {SUMS} but missing")
        elif sha256_file(path) != listed(directory)[name]:
            problems.append(f"{name}: changed since it was signed")
    return problems


def listed(directory: Path) -> dict[str, str]:
    """Name -> digest, as SHA256SUMS lists them."""
    out = {}
    for line in (directory / SUMS).read_text().splitlines():
        digest, name = line.split("  ", 1)
        out[name] = digest
    return out
