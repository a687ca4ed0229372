"""The golden host image: Debian 12 by debootstrap, booting systemd with sshd.

No container registry is reachable, so the image is built locally from Debian's packages. It is
tagged with a hash of its recipe: built once, reused, and rebuilt only when the recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lab import podman as pm

IMAGE_REPO = "localhost/claims-dc-host"
IMAGE_LABEL = "claims-dc.image=host"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# What debootstrap installs: enough to boot systemd and answer SSH (checked in LAB-NOTES.md).
BASE_PACKAGES = ("systemd-sysv", "dbus", "openssh-server", "python3", "sudo", "iproute2")
# What the later roles need, installed but left disabled so that a role turns each one on.
ROLE_PACKAGES = (
    "openssh-sftp-server",
    "python3-apt",
    "nftables",
    "ca-certificates",
    "openssl",
    "postgresql-15",
    "nginx",
    "procps",
    "tzdata",
    # Ansible's become to an unprivileged user (postgres, claimapp) without pipelining.
    "acl",
    # The claim application's own venv, built on the host from the offline bundle.
    "python3-venv",
    "auditd",
    "systemd-timesyncd",
    # The terminal stand-in queries the application over HTTPS with it.
    "curl",
)
DISABLED_UNITS = (
    "postgresql.service",
    "nginx.service",
    "nftables.service",
    "auditd.service",
    "systemd-timesyncd.service",
)
OPERATOR_USER = "opsadmin"

# Runs inside the chroot after the role packages are in. Every line is part of the recipe hash.
SETUP_SCRIPT = f"""set -eu
# Each container makes its own host keys at first boot; an image must not share them.
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/claims-dc-hostkeys.service <<'UNIT'
[Unit]
Description=Generate this host's own SSH host keys at first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
UNIT
systemctl enable claims-dc-hostkeys.service ssh.service
cat > /etc/ssh/sshd_config.d/10-claims-dc.conf <<'SSHD'
# Key-only login for a named operator; root never logs in over SSH.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
SSHD
# The operator account: key-only (password locked), sudo for Ansible's become.
useradd --create-home --shell /bin/bash {OPERATOR_USER}
passwd --lock {OPERATOR_USER}
echo '{OPERATOR_USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{OPERATOR_USER}
chmod 0440 /etc/sudoers.d/{OPERATOR_USER}
install -d -m 0700 -o {OPERATOR_USER} -g {OPERATOR_USER} /home/{OPERATOR_USER}/.ssh
systemctl disable {" ".join(DISABLED_UNITS)} || true
# Units that have no job in a container.
systemctl mask systemd-logind.service getty@tty1.service console-getty.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service || true
ln -sf /usr/share/zoneinfo/UTC /etc/localtime
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
"""


@dataclass(frozen=True)
class ImageRecipe:
    suite: str = SUITE
    mirror: str = MIRROR
    security_mirror: str = SECURITY_MIRROR
    base_packages: tuple[str, ...] = BASE_PACKAGES
    role_packages: tuple[str, ...] = ROLE_PACKAGES
    setup_script: str = SETUP_SCRIPT

    def digest(self) -> str:
        blob = json.dumps(self.__dict__, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def ref(self) -> str:
        return f"{IMAGE_REPO}:{self.digest()}"


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"image build: {what} failed (exit {proc.returncode}):\n{tail}")


def _chroot(root: Path, script: str, what: str) -> None:
    env_prefix = "export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8;"
    _run(["chroot", str(root), "/bin/sh", "-c", env_prefix + script], what)


def build(recipe: ImageRecipe, *, log: bool = True) -> float:
    """Build the image for `recipe` and import it into podman; returns the seconds it took."""
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="claims-dc-image-", dir="/var/tmp"))
    root = work / "rootfs"
    try:
        if log:
            print(
                f"image: debootstrap {recipe.suite} into {root} (about a minute)", file=sys.stderr
            )
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(recipe.base_packages)}",
                recipe.suite,
                str(root),
                recipe.mirror,
            ],
            "debootstrap",
        )
        (root / "etc/apt/sources.list").write_text(
            f"deb {recipe.mirror} {recipe.suite} main\n"
            f"deb {recipe.mirror} {recipe.suite}-updates main\n"
            f"deb {recipe.security_mirror} {recipe.suite}-security main\n"
        )
        # Package scripts must not start services inside the build chroot.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        if log:
            print("image: installing role packages and security updates", file=sys.stderr)
        _chroot(
            root,
            "apt-get update -q && apt-get -y -q dist-upgrade && "
            f"apt-get install -y -q --no-install-recommends {' '.join(recipe.role_packages)}",
            "apt-get install",
        )
        _chroot(root, recipe.setup_script, "host setup")
        policy.unlink()
        if log:
            print(f"image: importing as {recipe.ref}", file=sys.stderr)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            [
                "podman",
                *pm.GLOBAL_FLAGS,
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                f"LABEL {IMAGE_LABEL}",
                "-",
                recipe.ref,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"image build: podman import failed: {imp.stderr.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return time.monotonic() - started


def ensure(recipe: ImageRecipe | None = None) -> tuple[str, float | None]:
    """Return the image reference, building it first when no image matches the recipe.

    The second value is the build time in seconds, or None when the image was reused.
    """
    recipe = recipe or ImageRecipe()
    if pm.image_exists(recipe.ref):
        return recipe.ref, None
    return recipe.ref, build(recipe)
