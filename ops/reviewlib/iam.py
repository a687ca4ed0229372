"""The AWS IAM collector: users, their groups and policies (GetAccountAuthorizationDetails,
paginated), the credential report (with its generation time), access keys with last use, MFA
devices and console passwords. Anything it cannot read completely makes the scope INCOMPLETE
with the reason; it never reports a partial population as complete."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from typing import Any
from urllib.parse import unquote

from ops.reviewlib.inputs import normalise_staff_id, staff_id_or_none
from ops.reviewlib.model import Account, Credential, Scope

STAFF_TAG = "StaffId"
SERVICE_TAG = "ServiceAccount"  # value: the documented purpose


def _when(value: str | None) -> dt.datetime | None:
    if not value or value in ("N/A", "no_information", "not_supported"):
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def credential_report(iam: Any, timeout: float) -> tuple[dict[str, dict[str, str]], str]:
    deadline = time.monotonic() + timeout
    while iam.generate_credential_report()["State"] != "COMPLETE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the credential report was not ready within {timeout:.0f}s")
        time.sleep(1)
    out = iam.get_credential_report()
    rows = csv.DictReader(io.StringIO(out["Content"].decode()))
    return {r["user"]: r for r in rows}, str(out["GeneratedTime"])


def collect(
    iam: Any, *, timeout: float = 60.0, key_ids: bool = False
) -> tuple[list[Account], Scope, dict[str, Any]]:
    """(accounts, scope, evidence about the collection: API calls, report time).

    Access keys come from the credential report (two calls in all, as Prowler does);
    `key_ids` adds ListAccessKeys and GetAccessKeyLastUsed per user, for the key IDs."""
    # Long on purpose: the IAM collection under one deadline and one call counter, with one except
    # that turns any failure into an INCOMPLETE scope
    calls = 0
    try:
        details: dict[str, list[Any]] = {
            "UserDetailList": [],
            "GroupDetailList": [],
            "RoleDetailList": [],
            "Policies": [],
        }
        for page in iam.get_paginator("get_account_authorization_details").paginate(
            Filter=["User", "Group", "Role", "LocalManagedPolicy", "AWSManagedPolicy"]
        ):
            calls += 1
            for k in details:
                details[k] += page.get(k, [])
        report, generated = credential_report(iam, timeout)
        calls += 2
        policies = {p["Arn"]: p for p in details["Policies"]}
        groups = {g["GroupName"]: g for g in details["GroupDetailList"]}
        accounts = []
        for u in details["UserDetailList"]:
            name = u["UserName"]
            tags = {t["Key"]: t["Value"] for t in u.get("Tags", [])}
            row = report.get(name)
            if row is None:
                raise LookupError(f"user {name} is missing from the credential report")
            attached = [p["PolicyName"] for p in u.get("AttachedManagedPolicies", [])]
            docs = [
                _named(p.get("PolicyDocument"), p.get("PolicyName", "?"))
                for p in u.get("UserPolicyList", [])
            ]
            privileges = list(attached) + [d["_name"] for d in docs]
            for gname in u.get("GroupList", []):
                g = groups.get(gname, {})
                privileges += [p["PolicyName"] for p in g.get("AttachedManagedPolicies", [])]
                docs += [
                    _named(p.get("PolicyDocument"), p.get("PolicyName", "?"))
                    for p in g.get("GroupPolicyList", [])
                ]
                attached += [p["PolicyName"] for p in g.get("AttachedManagedPolicies", [])]
            for arn in [p["PolicyArn"] for p in u.get("AttachedManagedPolicies", [])]:
                doc = _default_version(policies.get(arn))
                if doc is not None:
                    docs.append(_named(doc, arn.rsplit("/", 1)[-1]))
            keys = []
            if key_ids:
                for meta in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
                    last = iam.get_access_key_last_used(AccessKeyId=meta["AccessKeyId"])
                    calls += 1
                    keys.append(
                        Credential(
                            "access_key",
                            meta["AccessKeyId"],
                            meta["Status"] == "Active",
                            meta.get("CreateDate"),
                            last.get("AccessKeyLastUsed", {}).get("LastUsedDate"),
                        )
                    )
                calls += 1
            else:  # the credential report already holds both keys' state, age and last use
                for n in (1, 2):
                    rotated = _when(row.get(f"access_key_{n}_last_rotated"))
                    if rotated is None:
                        continue
                    keys.append(
                        Credential(
                            "access_key",
                            f"access key {n}",
                            row.get(f"access_key_{n}_active") == "true",
                            rotated,
                            _when(row.get(f"access_key_{n}_last_used_date")),
                        )
                    )
            console = row.get("password_enabled") == "true"
            creds = keys + (
                [
                    Credential(
                        "password", "console", True, None, _when(row.get("password_last_used"))
                    )
                ]
                if console
                else []
            )
            accounts.append(
                Account(
                    system="aws",
                    name=name,
                    staff_id=normalise_staff_id(tags.get(STAFF_TAG)) or staff_id_or_none(name),
                    enabled=console or any(k.active for k in keys),
                    created=u.get("CreateDate"),
                    mfa=row.get("mfa_active") == "true",
                    console=console,
                    privileges=sorted(set(privileges)),
                    policy_documents=docs,
                    credentials=creds,
                    service=SERVICE_TAG in tags,
                )
            )
        for r in details["RoleDetailList"]:
            accounts.append(_role(r, policies))
    except Exception as e:
        return (
            [],
            Scope("aws", False, 0, f"IAM could not be read completely: {e}"),
            {"calls": calls},
        )
    return (
        accounts,
        Scope("aws", True, len(accounts)),
        {"calls": calls, "credential_report": generated},
    )


def _role(r: dict[str, Any], policies: dict[str, Any]) -> Account:
    """A role is a machine identity (an instance profile, a break-glass role): its policies
    are checked (IAM-004); it has no roster owner and no credentials of its own."""
    docs = [_named(p.get("PolicyDocument"), p.get("PolicyName", "?"))
            for p in r.get("RolePolicyList", [])]  # fmt: skip
    attached = [p["PolicyName"] for p in r.get("AttachedManagedPolicies", [])]
    for p in r.get("AttachedManagedPolicies", []):
        doc = _default_version(policies.get(p["PolicyArn"]))
        if doc is not None:
            docs.append(_named(doc, p["PolicyName"]))
    trust = r.get("AssumeRolePolicyDocument")
    arn = str(r.get("Arn", ""))
    return Account(
        system="aws",
        name=f"role/{r['RoleName']}",
        created=r.get("CreateDate"),
        last_used=(r.get("RoleLastUsed") or {}).get("LastUsedDate"),
        privileges=sorted(set(attached) | {d["_name"] for d in docs}),
        policy_documents=docs,
        service=True,
        attributes={
            "kind": "role",
            "trust": _named(trust, "trust") if trust else {},
            "account_id": arn.split(":")[4] if arn.count(":") >= 5 else "",
        },
    )


def _named(doc: Any, name: str) -> dict[str, Any]:
    if isinstance(doc, str):
        import json

        doc = json.loads(unquote(doc))
    out = dict(doc or {})
    out["_name"] = name
    return out


def _default_version(policy: dict[str, Any] | None) -> Any:
    if not policy:
        return None
    for v in policy.get("PolicyVersionList", []):
        if v.get("IsDefaultVersion"):
            return v.get("Document")
    return None
