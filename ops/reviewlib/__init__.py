"""claims-dc's access review library: every account on every layer
against the staff roster.

    roster      the authoritative staff list and the SSH key registry, strictly validated
    model       accounts, scopes (COMPLETE or INCOMPLETE, with populations), findings
    checks      the checks, each with metadata (ID, severity, fix, references)
    iam         the AWS IAM collector
    hosts       the host collector over SSH, with the probe (probe.py) installed on each host
    database    PostgreSQL roles and the claim application's accounts
    inputs      every file read from outside, through one door
    report      JSON, CSV, HTML and the signed manifest
"""
