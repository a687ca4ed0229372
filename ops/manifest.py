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
    # ssh-keygen asks before overwriting a signature and, with no one to answer, keeps the
    # old one and still exits 0: a re-signed directory would carry its old signature.
    (directory / SIG).unlink(missing_ok=True)
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


def ensure_key(key: Path, comment: str) -> Path:
    """A signing key made once (ed25519, no passphrase, mode 0600) where none is yet."""
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    key.chmod(0o600)
    return key


def allowed_signers_line(public_key: Path, signer: str, namespace: str) -> str:
    kind, blob = public_key.read_text().split()[:2]
    return f'{signer} namespaces="{namespace}" {kind} {blob}\n'


def unlisted(directory: Path) -> list[str]:
    """Files under `directory` that SHA256SUMS does not list (added after it was signed)."""
    names = set(listed(directory))
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() not in names | {SUMS, SIG}
    )


def listed(directory: Path) -> dict[str, str]:
    """Name -> digest, as SHA256SUMS lists them."""
    out = {}
    for line in (directory / SUMS).read_text().splitlines():
        digest, name = line.split("  ", 1)
        out[name] = digest
    return out
