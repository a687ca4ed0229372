"""Key rotation times on the lab.

Needs a converged lab (`make demo`, or `python -m lab up` and site.yml). Measures, in one
run:
- revoking one operator everywhere, two ways on the same hosts: ours (the certificate's
  serial into the KRL, rotate_keys.yml to every data-center host at once, as a revocation
  may: it can lock out only what the KRL names) against the
  anchor, the classic way (the operator's plain key taken out of authorized_keys on every
  host with one ad-hoc Ansible run, all hosts at once); each followed by a fresh login
  refused on every host. Prints the ratio.
- rotating everything: every secret of every kind to `published`, the fund switching, then
  everything to `retired` (lab/rotation.rotate_everything), with the time per kind.

    python bench/rotation_times.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infra.config import load_stack  # noqa: E402
from lab.lab import state_dir  # noqa: E402
from lab.plan import build_plan  # noqa: E402
from lab.rotation import OPERATOR_ACCOUNT, ensure_user_ca, rotate_everything  # noqa: E402
from ops.playbook import BIN, run_playbook  # noqa: E402
from ops.rotation.reach import proxy_options  # noqa: E402
from ops.rotation.sshca import Certificate, UserCA, fingerprint, trusted  # noqa: E402
from ops.rotation.user_ca import try_login  # noqa: E402


def plain_login(key: Path, address: str, known_hosts: Path) -> bool:
    via = known_hosts.parent / "ssh_config"  # the inventory's way in, through the bastion
    proc = subprocess.run(
        ["ssh", "-F", "/dev/null", *proxy_options(via, address), "-i", str(key),
         "-o", "IdentitiesOnly=yes",
         "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "ControlPath=none",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
         "-o", "ConnectTimeout=10", f"{OPERATOR_ACCOUNT}@{address}", "true"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def adhoc(inventory: Path, args: str) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible"), "-i", str(inventory), "datacenter", "-b", "-m",
         "ansible.builtin.lineinfile", "-a", args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:])


def main() -> int:
    sdir = state_dir("lab")
    inventory = sdir / "inventory.yml"
    known = sdir / "known_hosts"
    plan = build_plan(load_stack("lab", REPO))
    hosts = [h for h in plan.hosts if h.role in ("app", "db", "intake", "bastion")]
    ensure_user_ca(inventory)
    ca_dir = sdir / "ssh-ca"
    ca = next(UserCA(ca_dir, p.stem) for p in ca_dir.glob("user-ca-*.pub")
              if fingerprint(p) in trusted(ca_dir))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "leaver"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        pub = key.with_suffix(".pub").read_text().strip()

        cert = ca.issue(key.with_suffix(".pub"), "D0102 leaver", [OPERATOR_ACCOUNT], "+1h")
        assert all(
            try_login(cert, str(h.address), known, OPERATOR_ACCOUNT, sdir / "ssh_config")
            for h in hosts
        )
        t = time.perf_counter()
        ca.revoke([cert.serial])
        run = run_playbook(inventory, "rotate_keys.yml", "-e", "key_rotation_serial=100%")
        refused = run.ok and not any(
            try_login(
                Certificate.read(cert.path),
                str(h.address),
                known,
                OPERATOR_ACCOUNT,
                sdir / "ssh_config",
            )
            for h in hosts
        )
        ours = time.perf_counter() - t

        path = f"/home/{OPERATOR_ACCOUNT}/.ssh/authorized_keys"
        adhoc(inventory, f"path={path} line='{pub}' state=present")
        assert all(plain_login(key, str(h.address), known) for h in hosts)
        t = time.perf_counter()
        adhoc(inventory, f"path={path} line='{pub}' state=absent")
        anchor_refused = not any(plain_login(key, str(h.address), known) for h in hosts)
        anchor = time.perf_counter() - t
    print(f"revoke one operator everywhere ({len(hosts)} hosts):")
    print(f"  ours   KRL + rotate_keys.yml, all hosts at once:  {ours:5.1f}s  refused: {refused}")
    print(f"  anchor authorized_keys line removed, all at once: {anchor:5.1f}s  "
          f"refused: {anchor_refused}")  # fmt: skip
    print(f"  ratio ours/anchor: {ours / anchor:.2f}")

    t = time.perf_counter()
    first, second = rotate_everything(
        plan, inventory, plan.endpoint_url, str(sdir / "pki" / "ca.crt")
    )
    total = time.perf_counter() - t
    outcomes = defaultdict(list)
    for o in first + second:
        outcomes[o.secret.split(":")[0]].append(o.outcome)
    print(f"rotate everything ({len(second)} secrets and checks, two passes): {total:.1f}s")
    for kind, got in outcomes.items():
        print(f"  {kind:12} {', '.join(sorted(set(got)))}")
    return 0 if all(o.outcome in ("ok", "checked") for o in second) else 1


if __name__ == "__main__":
    sys.exit(main())
