"""The operators' SSH user CA, with OpenSSH alone (ssh-keygen): a CA key per generation,
short-lived certificates whose principals say which accounts they open, serials from a
counter beside the CA, and a key revocation list (KRL) that hosts read through RevokedKeys.

A CA directory holds `<name>` (the private key, sealed by the inventory's vault and unsealed
only in memory for the moment ssh-keygen signs with it), `<name>.pub`, `serial` (the last serial
issued) and `revoked.krl`. Rotation by overlap (ops/rotation/machine.py): the new CA is
trusted next to the old one (published), certificates come from the new one (switched), a
login with one is tried (verified), the old CA is no longer trusted (retired).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ops.vault.sealed import scratch, unsealed_copy, write_secret

PRINCIPAL = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
VALIDITY = re.compile(r"^\+([1-9][0-9]*)([mhd])$")  # from now: minutes, hours or days
MAX_VALIDITY = dt.timedelta(hours=24)
# Every certificate starts this long before it is issued (ssh-keygen -V -5m:+8h), so a host
# whose clock is up to five minutes behind the control node's already accepts a fresh one.
# A host further behind refuses it until its clock catches up: keep hosts on NTP.
CLOCK_SKEW = dt.timedelta(minutes=5)


class CAError(Exception):
    pass


def _keygen(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True, text=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise CAError(f"ssh-keygen {' '.join(args[:2])}: {proc.stderr.strip()[-300:]}")
    return proc


def fingerprint(public_key: Path) -> str:
    return _keygen("-l", "-f", str(public_key)).stdout.split()[1]


def key_info(public_key: str) -> tuple[int, str, str]:
    """Bits, SHA256 fingerprint and type (ED25519, RSA, ...) of one public key line."""
    fields = _keygen("-l", "-f", "-", stdin=public_key.strip() + "\n").stdout.split()
    return int(fields[0]), fields[1], fields[-1].strip("()")


def line_fingerprint(public_key: str) -> str:
    """The SHA256 fingerprint of one public key line ("ssh-ed25519 AAAA... comment")."""
    return key_info(public_key)[1]


TRUSTED = "trusted_user_ca_keys"  # in the CA directory: what the hosts are to trust


def set_trusted(directory: Path, cas: list[UserCA]) -> Path:
    """The CAs hosts are to trust, in the file the playbook distributes (published/retired)."""
    path = directory / TRUSTED
    tmp = path.with_suffix(".new")
    tmp.write_text("".join(ca.public.read_text() for ca in cas))
    tmp.replace(path)
    return path


def trusted(directory: Path) -> list[str]:
    """The fingerprints of the CAs hosts are to trust."""
    path = directory / TRUSTED
    if not path.exists() or not path.read_text().strip():
        return []
    out = _keygen("-l", "-f", str(path)).stdout
    return [line.split()[1] for line in out.splitlines()]


@dataclass(frozen=True)
class UserCA:
    directory: Path
    name: str  # e.g. user-ca-20261126; one per generation

    @property
    def key(self) -> Path:
        return self.directory / self.name

    @property
    def public(self) -> Path:
        return self.directory / f"{self.name}.pub"

    @property
    def krl(self) -> Path:
        return self.directory / "revoked.krl"

    def create(self) -> UserCA:
        """Make the CA key once (idempotent)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key.exists():
            with scratch() as private:
                made = private / self.name
                _keygen("-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(made))
                self.public.write_bytes(made.with_name(f"{self.name}.pub").read_bytes())
                write_secret(self.key, made.read_bytes())
        if not self.krl.exists():
            _keygen("-k", "-f", str(self.krl), "-s", str(self.public), stdin="")
        return self

    def _next_serial(self) -> int:
        path = self.directory / "serial"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = int(os.read(fd, 32).decode().strip() or 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{last + 1}\n".encode())
            os.fsync(fd)
            return last + 1
        finally:
            os.close(fd)

    def issue(self, public_key: Path, identity: str, principals: list[str],
              validity: str = "+8h") -> Certificate:  # fmt: skip
        """A certificate for `public_key` (written beside it as <name>-cert.pub), valid from
        CLOCK_SKEW before now until `validity` after it."""
        bad = [p for p in principals if not PRINCIPAL.match(p)]
        if not principals or bad:
            raise CAError(f"principals {principals!r}: give account names ({bad or 'none'})")
        m = VALIDITY.match(validity)
        if not m:
            raise CAError(f"validity {validity!r}: +N followed by m, h or d, e.g. +8h")
        unit = {"m": "minutes", "h": "hours", "d": "days"}[m[2]]
        length = dt.timedelta(**{unit: int(m[1])})
        if length > MAX_VALIDITY:
            raise CAError(f"validity {validity}: certificates live at most {MAX_VALIDITY}")
        serial = self._next_serial()
        start = f"-{int(CLOCK_SKEW.total_seconds() // 60)}m"
        with unsealed_copy(self.key) as key:
            _keygen("-q", "-s", str(key), "-I", identity, "-n", ",".join(principals),
                    "-V", f"{start}:{validity}", "-z", str(serial), str(public_key))  # fmt: skip
        return Certificate.read(public_key.with_name(public_key.name[: -len(".pub")] + "-cert.pub"))

    def revoke(self, serials: list[int]) -> None:
        """Add serials to the KRL (hosts refuse them once it is distributed)."""
        spec = "".join(f"serial: {s}\n" for s in serials)
        _keygen("-k", "-u", "-f", str(self.krl), "-s", str(self.public), "-", stdin=spec)


@dataclass(frozen=True)
class Certificate:
    path: Path
    identity: str
    serial: int
    principals: tuple[str, ...]
    valid_from: dt.datetime
    valid_to: dt.datetime
    signing_ca: str  # the CA key's fingerprint

    @classmethod
    def read(cls, path: Path) -> Certificate:
        text = _keygen("-L", "-f", str(path)).stdout
        fields = dict(re.findall(r"^\s*([A-Za-z ]+):[ \t]*(.*)$", text, re.M))
        principals = re.search(r"Principals:\s*\n((?:\s{16}\S+\n)+)", text)
        valid = re.search(r"Valid: from (\S+) to (\S+)", text)
        if not valid:
            raise CAError(f"{path}: no validity in the certificate")
        return cls(
            path,
            fields["Key ID"].strip('"'),
            int(fields["Serial"]),
            tuple(principals[1].split()) if principals else (),
            dt.datetime.fromisoformat(valid[1]),
            dt.datetime.fromisoformat(valid[2]),
            fields["Signing CA"].split()[1],
        )

    def revoked_by(self, krl: Path) -> bool:
        proc = subprocess.run(["ssh-keygen", "-Q", "-f", str(krl), str(self.path)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        return proc.returncode != 0
