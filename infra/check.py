"""claims-dc check: check a stack offline before anyone runs `pulumi up`.

Evaluates the Pulumi program under Pulumi's mocks (no CLI, no cloud), prints the declared
resources grouped by component, runs the claims-dc policy pack over them, and proves the network
closed: no path to or from the internet, reachable flows equal to the flow policy, and LGWAN and
the fund's line never reaching each other. Each verdict is HOLDS, VIOLATED (with the path hop by
hop) or UNKNOWN (the model met a traffic-carrying resource it does not understand).

With --cost it estimates instead what the environment costs a month and over its period, from
what the program declares, the price table infra/prices.yml and the stack file's claims-dc:cost
block (data volumes, exchange rate, the on-premises baseline): see infra/cost.py.

Exit codes: 0 every rule and verdict holds; 1 a violation or an unknown; 2 usage or bad config;
4 the check could not run (the program itself failed under the mocks, or the check did): the
error is named, never a traceback. `claims-dc check` is the same tool.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import yaml

from infra.config import ConfigError
from infra.cost import CostError, estimate, render_text
from infra.offline import Evaluation, evaluate
from infra.policy.rules import RULES, Violation, stack_violations
from infra.proof import prove_evaluation
from infra.proof.fleet import check_fleet
from infra.proof.report import Report, write_report
from infra.proof.verdicts import Proof

REPO = Path(__file__).resolve().parent.parent
PROG = "claims-dc check"


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except Exception as exc:  # named, never a traceback: the check proves nothing this run
        print(f"{PROG}: the check could not run: {type(exc).__name__}: {str(exc)[:300]}",
              file=sys.stderr)  # fmt: skip
        return 4


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.rules:
        return _rules(args.json)
    if args.fleet:
        return fleet_check(args.fleet, args.json, args.jobs)
    stack_file = REPO / f"Pulumi.{args.stack}.yaml"
    if not stack_file.exists():
        print(f"{PROG}: no stack file {stack_file.name}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        ev = evaluate(stack_file)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    evaluated = time.monotonic() - started
    if args.cost:
        return _cost(ev, args.json)
    violations = stack_violations(
        ev.policy_view(),
        yaml.safe_load(stack_file.read_text(encoding="utf-8")),
        stack_file.name,
        ev.config,
    )
    proof_started = time.monotonic()
    proof = prove_evaluation(ev)
    proof_seconds = time.monotonic() - proof_started
    seconds = time.monotonic() - started
    report = write_report(ev.config, proof, stack_file, args.report) if args.report else None
    _print_check(args, ev, violations, proof, report, (evaluated, proof_seconds, seconds))
    return 1 if violations or not proof.holds else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  claims-dc check --stack lab\n"
               "  claims-dc check --stack omuta-prod --json > check.json\n"
               "  claims-dc check --rules      the rule list with IDs\n"
               "  claims-dc check --stack lab --cost   the monthly and 5-year cost",
    )  # fmt: skip
    parser.add_argument("--stack", default="lab", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="machine-readable result")
    parser.add_argument("--rules", action="store_true", help="list the rules and exit")
    parser.add_argument(
        "--fleet",
        type=Path,
        metavar="DIR",
        help="check every Pulumi.*.yaml in DIR: each tenant's config, policy pack and proof, "
        "in parallel, and the tenants against each other",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="--fleet: processes (default: one per core)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write the network linkage report (Markdown, HTML, SVG) and the "
        "Network Access Analyzer scopes into DIR",
    )
    parser.add_argument(
        "--cost", action="store_true",
        help="estimate the monthly and whole-period cost instead, against the on-premises "
        "baseline (exit 2 if the stack file has no claims-dc:cost block)",
    )  # fmt: skip
    return parser


def _rules(as_json: bool) -> int:
    rows = [{"id": r.id, "severity": r.severity, "title": r.title,
             "corresponds_to": r.corresponds_to} for r in RULES]  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for row in rows:
            print(f"{row['id']:12} {row['severity']:9} {row['title']}  [{row['corresponds_to']}]")
    return 0


def _print_check(
    args: argparse.Namespace,
    ev: Evaluation,
    violations: list[Violation],
    proof: Proof,
    report: Report | None,
    seconds_: tuple[float, float, float],
) -> None:
    """The check's result: JSON for machines, or the resources by component, the policy
    pack's result and the proof's verdicts for people."""
    evaluated, proof_seconds, seconds = seconds_
    declared = [r for r in ev.resources if not r.type.startswith("claims-dc:")]
    by_component: dict[str, Counter[str]] = {}
    for r in declared:
        by_component.setdefault(r.component, Counter())[r.type] += 1
    if args.json:
        print(json.dumps({
            "stack": args.stack,
            "resources": len(declared),
            "components": {c: dict(types) for c, types in by_component.items()},
            "rules": len(RULES),
            "violations": [asdict(v) for v in violations],
            "proof": [asdict(v) for v in proof.verdicts],
            "seconds": {"evaluation": round(evaluated, 2), "proof": round(proof_seconds, 3),
                        "total": round(seconds, 2)},
        }, indent=2, ensure_ascii=False))  # fmt: skip
    else:
        print(f"stack {args.stack}: {len(declared)} resources in {len(by_component)} components")
        for component, types in by_component.items():
            print(f"  {component} ({sum(types.values())})")
            for type_token, count in sorted(types.items()):
                print(f"      {count:3} {type_token}")
        for v in violations:
            print(f"VIOLATION {v.rule} [{v.severity}] {v.resource}: {v.message}. Fix: {v.fix}")
        verdict = "all hold" if not violations else f"{len(violations)} violation(s)"
        print(f"policy pack: {len(RULES)} rules, {verdict}")
        for pv in proof.verdicts:
            checked = ", ".join(f"{n} {k}" for k, n in pv.checked.items())
            print(f"proof {pv.id:9} {pv.status:8} {pv.title} ({checked})")
            for c in pv.counterexamples[:5]:
                print(f"    counterexample: {c.summary}")
                for hop in c.hops:
                    print(f"        {hop}")
        print(f"evaluation {evaluated:.1f}s, proof {proof_seconds:.2f}s, total {seconds:.1f}s")
        if report is not None:
            print(
                f"linkage report: {report.html} (and .md, zones.svg, "
                f"{report.scopes.name}); config sha256 {report.config_sha256[:16]}..."
            )


def _cost(ev: Evaluation, as_json: bool) -> int:
    try:
        result = estimate(ev)
    except CostError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(render_text(result)))
    return 0


def fleet_check(directory: Path, as_json: bool, jobs: int | None = None) -> int:
    """Every tenant in parallel, then the fleet; a tenant's bad config is that tenant's
    finding, not the end of the run."""
    files = sorted(directory.glob("Pulumi.*.yaml"))
    if not files:
        print(f"{PROG}: no Pulumi.*.yaml in {directory}", file=sys.stderr)
        return 2
    result = check_fleet(files, jobs=jobs)
    if as_json:
        print(json.dumps({
            "tenants": [
                {"stack": t.stack, "holds": t.holds, "verdicts": dict(t.verdicts),
                 "problems": list(t.problems), "violations": list(t.violations),
                 "counterexamples": list(t.counterexamples), "seconds": t.seconds}
                for t in result.tenants
            ],
            "problems": result.problems,
            "jobs": result.jobs,
            "seconds": result.seconds,
        }, indent=2, ensure_ascii=False))  # fmt: skip
    else:
        for t in result.tenants:
            verdicts = " ".join(f"{k}={v}" for k, v in t.verdicts)
            print(f"{t.stack:24} {'holds' if t.holds else 'FAILS':6} {verdicts} ({t.seconds:.2f}s)")
            for line in (*t.problems, *t.violations, *t.counterexamples):
                print(f"    {line}")
        for problem in result.problems:
            print(f"FLEET {problem}")
        failing = sum(not t.holds for t in result.tenants)
        print(
            f"{len(result.tenants)} tenants ({failing} failing), {len(result.problems)} fleet "
            f"problem(s), {result.seconds:.1f}s on {result.jobs} processes"
        )
    return 0 if result.holds else 1


if __name__ == "__main__":
    sys.exit(main())
