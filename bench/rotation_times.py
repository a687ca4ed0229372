"""Key rotation times on the lab.

Needs a converged lab (`make demo`, or `claims-dc lab up` and site.yml). Measures, in one
run:
- revoking one operator everywhere, two ways on the same hosts: ours (`claims-dc rotate revoke
  -i`: the certificate's serial into the KRL, and the KRL alone to every data-center host at
  once, as a revocation may: it can lock out only what the KRL names) against the
  anchor, the classic way (the operator's plain key taken out of authorized_keys on every
  host with one ad-hoc Ansible run, all hosts at once); each followed by a fresh login
  refused on every host. Prints the ratio.
- rotating everything: every secret of every kind to `published`, the fund switching, then
  everything to `retired` (lab/rotation.rotate_everything), with the time per kind.

    python bench/rotation_times.py                 # both
    python bench/rotation_times.py --only revoke   # the revocation and its anchor alone
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infra.config import load_stack  # noqa: E402
from lab.lab import state_dir  # noqa: E402
from lab.plan import build_plan  # noqa: E402
from lab.rotation import OPERATOR_ACCOUNT, ensure_user_ca, rotate_everything  # noqa: E402
from ops.playbook import BIN  # noqa: E402
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


def revoke(inventory: Path, hosts: list[Any], rounds: int) -> bool:
    """Ours and the anchor on the same hosts, `rounds` times each; prints the medians."""
    sdir = inventory.parent
    known = sdir / "known_hosts"
    ensure_user_ca(inventory)
    ca_dir = sdir / "ssh-ca"
    ca = next(UserCA(ca_dir, p.stem) for p in ca_dir.glob("user-ca-*.pub")
              if fingerprint(p) in trusted(ca_dir))  # fmt: skip
    ours: list[float] = []
    anchor: list[float] = []
    refused = anchor_refused = True
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            key = Path(tmp) / f"leaver-{n}"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True)  # fmt: skip
            pub = key.with_suffix(".pub").read_text().strip()
            cert = ca.issue(key.with_suffix(".pub"), "D0102 leaver", [OPERATOR_ACCOUNT], "+1h")
            assert all(try_login(cert, str(h.address), known, OPERATOR_ACCOUNT,
                                 sdir / "ssh_config") for h in hosts)  # fmt: skip
            t = time.perf_counter()
            run = subprocess.run(
                [str(BIN / "claims-dc"), "rotate", "--ca-dir", str(ca_dir), "revoke", "--ca",
                 ca.name, str(cert.serial), "-i", str(inventory), "--json"],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            published = json.loads(run.stdout) if run.returncode == 0 else {}
            refused &= bool(published.get("published")) and not any(
                try_login(Certificate.read(cert.path), str(h.address), known, OPERATOR_ACCOUNT,
                          sdir / "ssh_config") for h in hosts
            )  # fmt: skip
            ours.append(time.perf_counter() - t)

            path = f"/home/{OPERATOR_ACCOUNT}/.ssh/authorized_keys"
            adhoc(inventory, f"path={path} line='{pub}' state=present")
            assert all(plain_login(key, str(h.address), known) for h in hosts)
            t = time.perf_counter()
            adhoc(inventory, f"path={path} line='{pub}' state=absent")
            anchor_refused &= not any(plain_login(key, str(h.address), known) for h in hosts)
            anchor.append(time.perf_counter() - t)
    a, b = statistics.median(ours), statistics.median(anchor)
    print(f"revoke one operator everywhere ({len(hosts)} hosts), median of {rounds}:")
    print(f"  ours   claims-dc rotate revoke -i (KRL to all hosts): {a:5.1f}s  refused: {refused}")
    print(f"  anchor authorized_keys line removed, all at once:   {b:5.1f}s  "
          f"refused: {anchor_refused}")  # fmt: skip
    print(f"  ratio ours/anchor: {a / b:.2f}")
    return refused and anchor_refused


def rotate(inventory: Path, plan: Any) -> bool:
    t = time.perf_counter()
    first, second = rotate_everything(
        plan, inventory, plan.endpoint_url, str(inventory.parent / "pki" / "ca.crt")
    )
    total = time.perf_counter() - t
    outcomes = defaultdict(list)
    for o in first + second:
        outcomes[o.secret.split(":")[0]].append(o.outcome)
    print(f"rotate everything ({len(second)} secrets and checks, two passes): {total:.1f}s")
    for kind, got in outcomes.items():
        print(f"  {kind:12} {', '.join(sorted(set(got)))}")
    return all(o.outcome in ("ok", "checked") for o in second)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=("revoke", "rotate"), help="one of the two measurements")
    p.add_argument("--rounds", type=int, default=3, help="revocations measured each way (3)")
    args = p.parse_args()
    inventory = state_dir("lab") / "inventory.yml"
    plan = build_plan(load_stack("lab", REPO))
    hosts = [h for h in plan.hosts if h.role in ("app", "db", "intake", "bastion")]
    ok = True
    if args.only in (None, "revoke"):
        ok &= revoke(inventory, hosts, args.rounds)
    if args.only in (None, "rotate"):
        ok &= rotate(inventory, plan)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
