"""Key rotation times on the lab (issue 9, what exists so far: the operators' SSH user CA).

Needs a converged lab (`make demo`, or `python -m ops.lab up` and site.yml). Measures:
- revoking one operator everywhere: the serial into the KRL, rotate_keys.yml to every
  data-center host one at a time, and a fresh login with the revoked certificate refused on
  each;
- rotating the user CA by overlap through the phase machine (publish both, switch, verify on
  every host, retire and prove the old CA refused).
It works in a scratch CA directory beside the inventory and removes it afterwards (the hosts
then trust no CA again).

    python bench/rotation_times.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infra.config import load_stack  # noqa: E402
from ops.lab.lab import state_dir  # noqa: E402
from ops.lab.plan import build_plan  # noqa: E402
from ops.lab.playbook import run_playbook  # noqa: E402
from ops.rotation.ledger import Ledger  # noqa: E402
from ops.rotation.machine import rotate  # noqa: E402
from ops.rotation.sshca import Certificate, UserCA, set_trusted  # noqa: E402
from ops.rotation.user_ca import ca_rotation, try_login  # noqa: E402


def main() -> int:
    sdir = state_dir("lab")
    inventory = sdir / "inventory.yml"
    hosts = [
        h
        for h in build_plan(load_stack("lab", REPO)).hosts
        if h.role in ("app", "db", "intake", "bastion")
    ]
    ca_dir = sdir / "ssh-ca"
    if ca_dir.exists():
        print(f"{ca_dir} exists: this bench makes and removes its own; move it first")
        return 2

    def publish() -> None:
        run = run_playbook(inventory, "rotate_keys.yml")
        if not run.ok:
            raise RuntimeError(run.stdout[-2000:])

    def login(cert: Certificate) -> bool:
        return all(try_login(cert, str(h.address), sdir / "known_hosts", "opsadmin") for h in hosts)

    try:
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "operator"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
            old = UserCA(ca_dir, "user-ca-1").create()
            set_trusted(ca_dir, [old])
            publish()
            cert = old.issue(key.with_suffix(".pub"), "L0001 lab operator", ["opsadmin"], "+1h")
            assert login(cert), "the certificate does not log in"
            t = time.perf_counter()
            old.revoke([cert.serial])
            publish()
            refused = not login(cert)
            revoke_s = time.perf_counter() - t
            print(
                f"revoke one operator everywhere ({len(hosts)} hosts, one at a time): "
                f"{revoke_s:.1f}s; the revoked certificate refused on every host: {refused}"
            )
            fresh = old.issue(key.with_suffix(".pub"), "L0001 lab operator", ["opsadmin"], "+1h")
            assert login(fresh)
            t = time.perf_counter()
            out = rotate(
                ca_rotation(
                    old,
                    UserCA(ca_dir, "user-ca-2"),
                    key.with_suffix(".pub"),
                    "L0001 lab operator",
                    ["opsadmin"],
                    publish,
                    login,
                ),
                Ledger(Path(tmp) / "ledger.jsonl"),
            )
            print(
                f"rotate the user CA by overlap (5 phases, 2 publishes, login sweeps on "
                f"{len(hosts)} hosts): {time.perf_counter() - t:.1f}s, {out.outcome}"
            )
    finally:
        shutil.rmtree(ca_dir, ignore_errors=True)
        publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
