"""claims-dc evidence (or python -m ops.evidence): one signed evidence pack for the privacy
council and the auditors.

    claims-dc evidence --stack lab -i .lab/lab/inventory.yml --out evidence-2026-12
    claims-dc evidence collect --stack omuta-prod -i inventories/omuta-prod/inventory.yml \\
        --out /srv/evidence/omuta-prod/2026-12 [--key FILE] [--json]
    claims-dc evidence verify DIR [--allowed-signers FILE] [--json]

`collect` (the default) gathers the newest of each artifact for one environment into a new
directory OUT:
  network/   the linkage report, the closed-network proof's verdicts, the policy pack's result
  cost/      the cost estimate (claims-dc check --cost) against the on-premises baseline
  backups/   per host the newest backup report, its newest verify --read-data, the newest drill
  review/    the newest signed access review as fetched (verified), and its diff against the
             one before
  rotation/  the rotation ledger per secret: last rotation, age, outcome, when due
  hosts/     each data-center host's effective settings, read without changing anything
             (playbooks/evidence.yml: sshd -T, the nftables ruleset, listening sockets,
             pg_hba_file_rules, the units' sandbox properties)
and judges them in a control matrix (ops/evidence/controls.yml): each requirement of the MHLW
guideline 6.0 and the MIC/METI provider guideline 1.1 that the environment answers to, with
the check and the artifact that prove it, the evidence's date and PASS, FAIL or NOT COVERED.
Requirements this tool cannot prove are listed as NOT COVERED with the reason, never left out.
Evidence older than its rule (backup 26 h, verify and drill 35 days, review 90 days) is marked
stale, and a requirement resting on it fails. evidence.html (A4, Japanese headings with English
beside them) and evidence.json summarise it all; SHA256SUMS and SHA256SUMS.sig (ssh-keygen -Y
sign, namespace claims-dc-evidence) cover every file. The signing key is made once, mode 0600:
--key, $CLAIMS_DC_EVIDENCE_KEY, or .keys/evidence_ed25519 (never committed). The pack is built
beside OUT and renamed into place when signed: an interrupted run leaves no pack behind.

`verify` checks the signature against a signer file the verifier trusts (--allowed-signers;
default the one beside the signing key, not the copy inside the pack) and names every file
edited, missing or added since signing.

Results on stdout (--json for machines), progress and errors on stderr. Exit codes:
  0  collect: written, every covered requirement PASS; verify: intact and signed
  1  collect: written, with a FAIL (stale evidence included) or evidence that could not be
     collected; verify: a file edited, missing or added, or a bad signature
  2  usage or bad input: no such stack or inventory, OUT not a new or empty directory
  4  an unexpected failure, named
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.config import ConfigError, load_file, stack_file
from ops.cli import with_default
from ops.evidence.pack import DEFAULT_KEY, PackError, summary, trusted_signers, verify, write

PROG = "claims-dc evidence"
COMMANDS = ("collect", "verify")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="write the evidence pack of one environment (default)")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    c.add_argument("--stack", required=True, help="the stack: reads Pulumi.<stack>.yaml")
    c.add_argument(
        "-i",
        "--inventory",
        type=Path,
        required=True,
        help="the environment's inventory (ops.inventory wrote it)",
    )
    c.add_argument("--out", type=Path, required=True, help="a new directory for the pack")
    c.add_argument(
        "--key",
        type=Path,
        default=DEFAULT_KEY,
        help="the signing key (made if missing; default %(default)s)",
    )
    v = sub.add_parser("verify", help="check a pack's signature and every file")
    v.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    v.add_argument("directory", type=Path)
    v.add_argument(
        "--allowed-signers",
        type=Path,
        help="the trusted signer file (default: the one beside the signing key)",
    )
    v.add_argument("--key", type=Path, default=DEFAULT_KEY, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = with_default(argv, COMMANDS, "collect")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    handler = {"collect": _collect, "verify": _verify}[args.command]
    try:
        return handler(args)
    except Exception as e:  # named, never a traceback
        print(
            f"{PROG}: {args.command}: unexpected failure: {type(e).__name__}: {str(e)[:300]}",
            file=sys.stderr,
        )
        return 4


def _collect(args: argparse.Namespace) -> int:
    path = stack_file(args.stack)
    if not path.exists():
        print(f"{PROG}: no stack file {path.name}", file=sys.stderr)
        return 2
    if not args.inventory.is_file():
        print(f"{PROG}: no inventory {args.inventory}", file=sys.stderr)
        return 2
    try:
        config = load_file(path)
        print(f"collecting the evidence of {args.stack} into {args.out} ...", file=sys.stderr)
        pack = write(path, config, args.inventory, args.out, args.key)
    except (ConfigError, PackError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    n = pack.counts
    if args.json:
        print(json.dumps(summary(pack), indent=2, ensure_ascii=False))
    else:
        for r in pack.rows:
            mark = " STALE" if r.stale else ""
            print(f"{r.status:11} {r.id:14} {r.guideline:12} {r.section:22} {r.en}{mark}")
            if r.status == "FAIL":
                print(f"{'':11} {r.detail[:300]}")
        for problem in pack.collected.problems:
            print(f"NOT COLLECTED {problem}")
        print(
            f"{n['PASS']} PASS, {n['FAIL']} FAIL, {n['NOT COVERED']} NOT COVERED "
            f"({n['stale']} on stale evidence); pack {pack.directory} "
            "(evidence.html, evidence.json), signed"
        )
    return 1 if n["FAIL"] or pack.collected.problems else 0


def _verify(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        print(f"{PROG}: {args.directory}: no such directory", file=sys.stderr)
        return 2
    signers = args.allowed_signers or trusted_signers(args.key)
    problems = verify(args.directory, signers)
    if args.json:
        print(json.dumps({"pack": str(args.directory), "problems": problems}, indent=2))
    else:
        print("\n".join(problems) or f"{args.directory}: signature and every file verify")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
