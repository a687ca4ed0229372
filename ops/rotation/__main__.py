"""claims-dc rotate (or python -m ops.rotation): key rotation through the phase machine, the
operators' SSH user CA and the rotation ledger. `rotate` is the default subcommand.

    claims-dc rotate -i INVENTORY --due                      # the calendar
    claims-dc rotate -i INVENTORY all                        # what is due
    claims-dc rotate -i INVENTORY host-keys db-login --early # due or not
    claims-dc rotate -i INVENTORY ssh-user-ca --operator-key ~/.ssh/id_ed25519.pub \\
        --identity "D0101 佐藤" --principal opsadmin
    claims-dc rotate -i INVENTORY sftp-key --fund-key fund_new.pub --fund-window 14d
    claims-dc rotate -i INVENTORY sftp-key --fund-confirmed # after the fund switched
    claims-dc rotate -i INVENTORY host-keys --partner-confirmed fund
    claims-dc rotate --ca-dir DIR ca init NAME          # a CA generation (idempotent)
    claims-dc rotate --ca-dir DIR ca trust NAME [NAME]  # what hosts are to trust
    claims-dc rotate --ca-dir DIR issue --ca NAME --key id_ed25519.pub \\
        --identity "D0101 佐藤" --principal opsadmin [--validity +8h]
    claims-dc rotate --ca-dir DIR revoke --ca NAME SERIAL [SERIAL ...] [-i INVENTORY]
    claims-dc rotate --ledger FILE ledger [--secret ssh-user-ca]
    claims-dc rotate --ledger FILE abandon host-key:app-1 --reason "host remade"

`rotate` takes each secret through staged, published, switched, verified and retired, and
records each phase in INVENTORY's rotation/ledger.jsonl (who, when, which secret, old and new
fingerprint, serial or login name; never a secret). A failure before retired rolls back what
was done; an unreachable host leaves the rotation where it stopped.

Resume: running the same command again continues every rotation that stopped, from the phase
where it stopped, and starts nothing that is not due. A new rotation starts only for a secret
that is due under the stack's calendar (claims-dc:rotation in Pulumi.<stack>.yaml: host keys
and the user CA yearly, the database login and IAM keys quarterly by default), or for any with
--early; the others are reported `not-due` with their age and due date. `--due` lists that
calendar and rotates nothing.

Partners: a host key an outside party pins (the intake host's, which the fund's SFTP client
checks) is announced first: sshd offers the new key beside the old (OpenSSH clients with
UpdateHostKeys yes learn it), and a notice in Japanese and English is printed and kept in
rotation/notices/ to send. The rotation waits at `published` until the partner confirms
(--partner-confirmed fund) or the notice period (--notice, default the stack's noticeDays)
ends; --switch-now switches at once, and the partner's logins fail until it adds the key.

Certificates (`issue`, and the user-CA rotation's) start 5 minutes before they are issued, so
a host whose clock is up to 5 minutes behind accepts them.

--until PHASE stops early; --limit HOST rotates only that host's key or certificate;
--ansible-arg passes options to ansible-playbook. Ansible's output
goes to rotation/ansible.log. `all` skips, and says so, the user CA without --operator-key and
the fund's key until the fund has sent a new one. After `ca trust`, publish with
`ansible-playbook -i INVENTORY playbooks/rotate_keys.yml` (the inventory's claims_dc_ssh_ca_dir
is DIR; the lab's is .lab/lab/ssh-ca); `revoke -i INVENTORY` publishes the revocation list
itself, to every host at once, and names any host it could not publish to. --json (before or
after the subcommand) prints results as JSON; results on stdout, progress on stderr.

Exit codes: 0 ok (done, stopped where asked, skipped, not due; --due: nothing due or under way),
1 a failure, a rollback or an interrupted rotation (--due: something is due or under way),
2 usage, 4 an unexpected failure (named; the ledger says where each rotation is).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from infra.config import ROTATION_KINDS as KINDS
from ops.cli import with_default
from ops.rotation.ledger import PHASES, Entry, Ledger, LedgerError
from ops.rotation.machine import pending
from ops.rotation.partners import notice_paths
from ops.rotation.sshca import CAError, UserCA, fingerprint, set_trusted, trusted
from ops.rotation.steps import StepFailed
from ops.vault import VaultError

PROG = "claims-dc rotate"
COMMANDS = ("ca", "issue", "revoke", "rotate", "abandon", "ledger")


def _emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result, ensure_ascii=False, default=str) if args.json else text)


def _ca(args: argparse.Namespace, name: str) -> UserCA:
    ca = UserCA(args.ca_dir, name)
    if not ca.key.exists():
        raise CAError(f"no CA {name!r} in {args.ca_dir} (make it with: ca init {name})")
    return ca


def run(args: argparse.Namespace) -> int:
    if args.command == "rotate":
        return _rotate(args)
    if args.command == "abandon":
        stopped = pending(Ledger(args.ledger), args.secret)
        if stopped is None:
            raise LedgerError(f"{args.secret}: no rotation under way in {args.ledger}")
        Ledger(args.ledger).append(
            Entry(args.secret, stopped.rotation, stopped.phase, "rolled-back", stopped.old,
                  stopped.new, f"abandoned by the operator: {args.reason}"[:500])
        )  # fmt: skip
        _emit(
            args,
            {"abandoned": args.secret, "rotation": stopped.rotation, "phase": stopped.phase},
            f"{args.secret}: rotation {stopped.rotation} (stopped at {stopped.phase}) closed; "
            "nothing on the hosts was changed by this",
        )
        return 0
    if args.command == "ledger":
        entries = [
            asdict(e) for e in Ledger(args.ledger).entries() if args.secret in (None, e.secret)
        ]
        _emit(
            args,
            {"entries": entries},
            "\n".join(
                f"{e['at']}  {e['secret']:22} {e['phase']:9} {e['outcome']:15} {e['who']}  "
                f"{e['old'][:20]} -> {e['new'][:20]}  {e['note']}"
                for e in entries
            ),
        )
        return 0
    if args.command == "ca" and args.ca_command == "init":
        ca = UserCA(args.ca_dir, args.name).create()
        _emit(
            args,
            {"ca": args.name, "fingerprint": fingerprint(ca.public)},
            f"{args.name}: {fingerprint(ca.public)} ({ca.key}, sealed)",
        )
        return 0
    if args.command == "ca":
        cas = [_ca(args, n) for n in args.names]
        set_trusted(args.ca_dir, cas)
        fps = trusted(args.ca_dir)
        _emit(
            args,
            {"trusted": fps},
            "hosts are to trust: "
            + ", ".join(fps)
            + "\npublish: ansible-playbook -i INVENTORY playbooks/rotate_keys.yml",
        )
        return 0
    if args.command == "issue":
        cert = _ca(args, args.ca).issue(args.key, args.identity, args.principal, args.validity)
        _emit(
            args,
            asdict(cert),
            f"{cert.path}: serial {cert.serial}, "
            f"{', '.join(cert.principals)}, until {cert.valid_to}",
        )
        return 0
    _ca(args, args.ca).revoke(args.serial)
    krl = args.ca_dir / "revoked.krl"
    if args.inventory is None:
        _emit(args, {"revoked": args.serial, "published": False},
              f"revoked serials {args.serial} in {krl}\npublish to every host at once: "
              "claims-dc rotate --ca-dir DIR revoke ... -i INVENTORY")  # fmt: skip
        return 0
    return _publish_revocations(args, krl)


def _publish_revocations(args: argparse.Namespace, krl: Path) -> int:
    """The KRL just written, to every data-center host at once: it can lock out only what it
    names, so it does not wait for one host before the next."""
    import base64
    import tempfile

    from ops.playbook import run_playbook

    with tempfile.TemporaryDirectory(prefix="claims-dc-krl-") as tmp:
        extra = Path(tmp) / "krl.json"  # the list as the step's variable, not on a command line
        extra.write_text(json.dumps({"key_rotation_krl_b64":
                                     base64.b64encode(krl.read_bytes()).decode()}))  # fmt: skip
        run = run_playbook(
            args.inventory, "rotate_keys.yml", "-e", "key_rotation_step=ssh-revocations",
            "-e", "key_rotation_serial=100%", "-e", f"@{extra}", secrets=False,
        )  # fmt: skip
    failed = sorted(h for h, c in run.recap.items() if c.get("failed") or c.get("unreachable"))
    published = sorted(set(run.recap) - set(failed))
    _emit(args, {"revoked": args.serial, "published": run.ok, "hosts": published,
                 "not_published": failed, "seconds": run.seconds},
          f"revoked serials {args.serial} in {krl}; published to {', '.join(published) or 'none'}"
          + (f"; NOT to {', '.join(failed)}: run it again" if failed else ""))  # fmt: skip
    if not run.ok and not failed:
        print(f"{PROG}: revoke: the publication failed: {run.stdout[-500:]}", file=sys.stderr)
    return 0 if run.ok else 1


def _rotate(args: argparse.Namespace) -> int:
    from ops.rotation.driver import Operator, Options, Site, due_calendar, rotate_kinds
    from ops.rotation.sftp_key import parse_window
    from ops.rotation.status import publish as publish_status
    from ops.rotation.steps import Steps

    if not args.kinds and not args.due:
        print(f"{PROG}: rotate needs KIND (all, or some of: "
              f"{', '.join(KINDS)}), or --due", file=sys.stderr)  # fmt: skip
        return 2
    unknown = [k for k in args.kinds if k not in ("all", *KINDS)]
    if unknown:
        print(f"{PROG}: rotate: unknown kind {unknown[0]!r}: all, or some of: "
              f"{', '.join(KINDS)}", file=sys.stderr)  # fmt: skip
        return 2
    kinds = list(KINDS) if not args.kinds or "all" in args.kinds else args.kinds
    operator = None
    if args.operator_key:
        if not args.identity or not args.principal:
            print(f"{PROG}: --operator-key needs --identity and --principal", file=sys.stderr)
            return 2
        operator = Operator(args.operator_key, args.identity, args.principal)
    try:
        window = parse_window(args.fund_window)
        notice = parse_window(args.notice) if args.notice else None
    except StepFailed as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    confirmed = frozenset(p.strip() for v in args.partner_confirmed for p in v.split(",") if p)
    limit = frozenset(h.strip() for v in args.limit for h in v.split(",") if h.strip())
    site = Site.read(args.inventory)
    strangers = sorted(limit - set(site.hosts))
    if strangers:
        print(f"{PROG}: --limit {strangers[0]}: not a data-center host of "
              f"{site.inventory} ({', '.join(site.hosts)})", file=sys.stderr)  # fmt: skip
        return 2
    ledger = Ledger(site.state / "rotation" / "ledger.jsonl")
    if args.due:
        return _due(args, due_calendar(site, kinds, ledger))
    opts = Options(operator, args.fund_key, window, args.fund_confirmed, args.until,
                   early=args.early, partner_confirmed=confirmed, switch_now=args.switch_now,
                   notice=notice, limit=limit)  # fmt: skip
    steps = Steps(site.inventory, site.state / "rotation" / "ansible.log", tuple(args.ansible_arg))
    outcomes = rotate_kinds(site, kinds, ledger=ledger, steps=steps, opts=opts)
    notices = _notices(site.state / "rotation" / "notices", outcomes)
    status = publish_status(site, ledger)
    text = "\n".join(
        f"{o.secret:24} {o.outcome:13} {o.reached or '-':9} {o.error or o.note}" for o in outcomes
    )
    text += f"\nstatus for the fleet board: {status}"
    for path in notices:
        text += f"\n\n== notice to send: {path}\n{path.read_text(encoding='utf-8')}"
    _emit(
        args,
        {
            "ledger": str(ledger.path),
            "outcomes": [asdict(o) for o in outcomes],
            "notices": [str(p) for p in notices],
            "status": status,
        },
        text,
    )
    return 0 if all(o.outcome in SETTLED for o in outcomes) else 1


# Outcomes that are not a failure: done (or stopped where asked), nothing to do, or a check.
SETTLED = ("ok", "skipped", "checked", "not-due")


def _notices(directory: Path, outcomes: list[Any]) -> list[Path]:
    """The notices of host keys this run left announced and waiting for a partner."""
    out = []
    for o in outcomes:
        if o.secret.startswith("host-key:") and o.outcome == "ok" and o.reached == "published":
            path = notice_paths(directory, o.secret.split(":", 1)[1])[1]
            if path.exists():
                out.append(path)
    return out


def _due(args: argparse.Namespace, entries: list[Any]) -> int:
    rows = [
        f"{d.secret:24} {d.status:10} every {d.every_days:>4} d  {d.describe()}" for d in entries
    ]
    _emit(args, {"calendar": [asdict(d) for d in entries]}, "\n".join(rows))
    return 1 if any(d.status != "not-due" for d in entries) else 0


def _with_common(sub: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    """Options of the whole tool that may also follow the subcommand (`ledger --json`). Left
    out there, they keep what was given before it."""
    if "json" in names:
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="results as JSON on stdout")  # fmt: skip
    if "inventory" in names:
        sub.add_argument("-i", "--inventory", type=Path, default=argparse.SUPPRESS,
                         help="the environment's inventory")  # fmt: skip
    if "ledger" in names:
        sub.add_argument("--ledger", type=Path, default=argparse.SUPPRESS,
                         help="the rotation ledger (JSONL)")  # fmt: skip
    if "ca_dir" in names:
        sub.add_argument("--ca-dir", type=Path, default=argparse.SUPPRESS,
                         help="the CA directory (claims_dc_ssh_ca_dir)")  # fmt: skip
    return sub


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ca-dir", type=Path, help="the CA directory (claims_dc_ssh_ca_dir)")
    p.add_argument("--ledger", type=Path, help="the rotation ledger (JSONL)")
    p.add_argument("-i", "--inventory", type=Path, help="rotate: the environment's inventory")
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    sub = p.add_subparsers(dest="command", required=True)
    ca = _with_common(sub.add_parser("ca", help="make a CA generation, or set what hosts trust"),
                      "json", "ca_dir")  # fmt: skip
    ca_sub = ca.add_subparsers(dest="ca_command", required=True)
    _with_common(ca_sub.add_parser("init"), "json", "ca_dir").add_argument("name")
    _with_common(ca_sub.add_parser("trust"), "json", "ca_dir").add_argument("names", nargs="+")
    issue = _with_common(sub.add_parser("issue", help="a certificate for a public key"),
                         "json", "ca_dir")  # fmt: skip
    issue.add_argument("--ca", required=True)
    issue.add_argument("--key", type=Path, required=True, help="the holder's public key")
    issue.add_argument("--identity", required=True, help="who: staff ID and name")
    issue.add_argument("--principal", action="append", required=True, help="an account it opens")
    issue.add_argument(
        "--validity", default="+8h", help="+N[mhd], at most 24 hours; valid from 5 minutes ago"
    )
    revoke = _with_common(sub.add_parser("revoke", help="add serials to the KRL; with -i, "
                                         "publish it to every host at once"),
                          "json", "ca_dir", "inventory")  # fmt: skip
    revoke.add_argument("--ca", required=True)
    revoke.add_argument("serial", type=int, nargs="+")
    rot = _with_common(
        sub.add_parser("rotate", help="rotate secrets through the phases, with the ledger; "
                       "or list the calendar (--due)"),
        "json", "inventory",
    )  # fmt: skip
    # No `choices`: argparse (3.11) refuses an empty list against them; checked in _rotate.
    rot.add_argument(
        "kinds", nargs="*", metavar="KIND", help=f"all, or some of: {', '.join(KINDS)}"
    )
    rot.add_argument(
        "--due", action="store_true", help="list each secret's last rotation and whether it is due"
    )
    rot.add_argument("--early", action="store_true",
                     help="also start new rotations of secrets that are not due yet")  # fmt: skip
    rot.add_argument("--operator-key", type=Path, help="ssh-user-ca: whose certificate moves")
    rot.add_argument("--identity", help="ssh-user-ca: the certificate's identity")
    rot.add_argument("--principal", action="append", help="ssh-user-ca: an account it opens")
    rot.add_argument("--fund-key", type=Path, help="sftp-key: the public key the fund sent")
    rot.add_argument("--fund-window", default="14d", help="sftp-key: old key kept, e.g. 48h, 14d")
    rot.add_argument(
        "--fund-confirmed", action="store_true", help="sftp-key: the fund says it switched"
    )
    rot.add_argument("--partner-confirmed", action="append", default=[], metavar="PARTNER",
                     help="host keys a partner pins: it holds the new key (e.g. fund)")  # fmt: skip
    rot.add_argument("--notice", metavar="PERIOD",
                     help="host keys a partner pins: announced this long before the switch "
                     "(e.g. 14d; default: the stack's rotation.noticeDays)")  # fmt: skip
    rot.add_argument("--switch-now", action="store_true",
                     help="host keys a partner pins: switch without waiting for the partner "
                     "(its logins fail until it adds the new key)")  # fmt: skip
    rot.add_argument("--limit", action="append", default=[], metavar="HOST",
                     help="host-keys, tls: only these hosts (e.g. intake-1)")  # fmt: skip
    rot.add_argument("--until", default="retired", choices=PHASES, help="stop after this phase")
    rot.add_argument(
        "--ansible-arg", action="append", default=[], help="passed to ansible-playbook"
    )
    abandon = _with_common(
        sub.add_parser("abandon", help="close a stopped rotation whose hosts were remade or "
                       "fixed by hand"),
        "json", "ledger",
    )  # fmt: skip
    abandon.add_argument("secret", help="e.g. host-key:app-1")
    abandon.add_argument("--reason", required=True, help="why, for the ledger")
    ledger = _with_common(sub.add_parser("ledger", help="what the ledger says"), "json", "ledger")
    ledger.add_argument("--secret")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = with_default(argv, COMMANDS, "rotate")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    if args.command in ("ledger", "abandon") and args.ledger is None:
        print(f"{PROG}: {args.command} needs --ledger FILE", file=sys.stderr)
        return 2
    if args.command == "rotate" and args.inventory is None:
        print(f"{PROG}: rotate needs -i INVENTORY", file=sys.stderr)
        return 2
    if args.command not in ("ledger", "abandon", "rotate") and args.ca_dir is None:
        print(f"{PROG}: {args.command} needs --ca-dir DIR", file=sys.stderr)
        return 2
    try:
        return run(args)
    except (CAError, LedgerError, StepFailed, VaultError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # named, never a traceback; the ledger says where each rotation is
        print(f"{PROG}: unexpected failure: {type(e).__name__}: {str(e)[:300]}",
              file=sys.stderr)  # fmt: skip
        return 4


if __name__ == "__main__":
    sys.exit(main())
