"""AWS: the backup key's automatic rotation, checked; the IAM access keys the control node
still keeps, rotated. Each kept key is a profile of `secrets/aws-credentials` beside the
inventory (the shared-credentials format, sealed by the vault), and its rotation is one `Rotation`:

    staged     CreateAccessKey for the profile's own user, with the profile's own key (a
               user manages its own keys); the new pair waits in secrets/aws-<profile>.staged
    published  IAM answers for the new key: GetCallerIdentity with it names the user
               (IAM is eventually consistent; asked until it does, for at most a minute)
    switched   the profile holds the new key (the file replaced whole); the old pair is
               kept in secrets/aws-<profile>.previous for rollback
    verified   a fresh session from the credentials file is the user, with the new key ID
    retired    UpdateAccessKey Inactive, then DeleteAccessKey of the old key; the old pair is
               tried and no longer identifies the user

The ledger holds access key IDs only. A secret access key is written sealed to the files
above and nowhere else.
"""

from __future__ import annotations

import configparser
import io
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ops.awsapi import Endpoint
from ops.rotation.ledger import Ledger
from ops.rotation.machine import Rotation, pending
from ops.rotation.steps import StepFailed
from ops.vault import VaultError
from ops.vault.sealed import read_secret_text, write_secret


def check_kms_rotation(endpoint: Endpoint, key_id: str, pair: dict[str, str] | None = None) -> str:
    """The backup key rotates its material yearly by itself; refuse to call it fine if not."""
    try:
        enabled = endpoint.client("kms", pair).get_key_rotation_status(KeyId=key_id)[
            "KeyRotationEnabled"
        ]
    except (ClientError, BotoCoreError) as e:
        raise StepFailed(f"KMS {key_id}: rotation status unreadable: {e}") from e
    if not enabled:
        raise StepFailed(f"KMS {key_id}: automatic key rotation is off (EnableKeyRotation)")
    return f"KMS {key_id}: automatic rotation on"


def read_profiles(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_secret_text(path), source=str(path))
    except VaultError as e:
        raise StepFailed(str(e)) from None
    except configparser.Error as e:
        raise StepFailed(f"{path}: not a shared-credentials file ({e})") from None
    return parser


def write_profile(path: Path, profile: str, pair: dict[str, str]) -> None:
    """Set one profile of a shared-credentials file, sealed and replaced whole."""
    parser = read_profiles(path) if path.exists() else configparser.ConfigParser(interpolation=None)
    parser[profile] = pair
    text = io.StringIO()
    parser.write(text)
    write_secret(path, text.getvalue())


def _read_pair(path: Path, profile: str) -> dict[str, str]:
    parser = read_profiles(path)
    if profile not in parser:
        raise StepFailed(f"{path}: no profile [{profile}]")
    return {k: parser[profile][k] for k in ("aws_access_key_id", "aws_secret_access_key")}


def identity(endpoint: Endpoint, pair: dict[str, str]) -> str:
    """The ARN the key signs in as; empty when AWS refuses it."""
    try:
        return str(endpoint.client("sts", pair).get_caller_identity()["Arn"])
    except ClientError:
        return ""


def access_key_rotation(profile: str, secrets_dir: Path, endpoint: Endpoint, ledger: Ledger,
                        wait: Callable[[float], None] = time.sleep) -> Rotation:  # fmt: skip
    # Long on purpose: the phases of one access-key rotation as closures over the same profile,
    # files and clients, handed to the phase machine together
    creds = secrets_dir / "aws-credentials"
    staged_file = secrets_dir / f"aws-{profile}.staged"
    previous_file = secrets_dir / f"aws-{profile}.previous"
    secret = f"aws-key:{profile}"
    resumed = pending(ledger, secret)
    current = _read_pair(creds, profile)
    old = _read_pair(previous_file, profile) if previous_file.exists() else current
    user_arn = identity(endpoint, old)  # the old key works until retired
    user = user_arn.rsplit("/", 1)[1] if ":user/" in user_arn else ""
    try:
        endpoint.client("iam", old).get_user(UserName=user or "-")
    except (ClientError, BotoCoreError) as e:
        raise StepFailed(f"[{profile}]: its key does not sign in as an IAM user ({e})") from e
    rotation = Rotation(secret, old["aws_access_key_id"], resumed.new if resumed else "", {}, {})

    def new_pair() -> dict[str, str]:
        return _read_pair(staged_file, profile) if staged_file.exists() else current

    def stage() -> None:
        if staged_file.exists():
            rotation.new = new_pair()["aws_access_key_id"]
            return
        iam = endpoint.client("iam", old)
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        others = [k["AccessKeyId"] for k in keys if k["AccessKeyId"] != old["aws_access_key_id"]]
        if others:
            raise StepFailed(
                f"IAM user {user} has another key {', '.join(others)}: delete it first"
            )
        made = iam.create_access_key(UserName=user)["AccessKey"]
        pair = {"aws_access_key_id": made["AccessKeyId"]}
        pair["aws_secret_access_key"] = made["SecretAccessKey"]
        write_profile(staged_file, profile, pair)
        rotation.new = made["AccessKeyId"]

    def unstage() -> None:
        if staged_file.exists():
            endpoint.client("iam", old).delete_access_key(
                UserName=user, AccessKeyId=new_pair()["aws_access_key_id"]
            )
            staged_file.unlink()

    def publish() -> None:
        for _ in range(30):
            if identity(endpoint, new_pair()) == user_arn:
                return
            wait(2)
        raise StepFailed(f"IAM does not answer for the new key of {user} after a minute")

    def switch() -> None:
        if staged_file.exists():
            write_profile(previous_file, profile, old)
            write_profile(creds, profile, new_pair())
            staged_file.unlink()

    def unswitch() -> None:
        if previous_file.exists():
            new = _read_pair(creds, profile)
            write_profile(staged_file, profile, new)  # back to waiting, for the undo of staged
            write_profile(creds, profile, old)
            previous_file.unlink()

    def verify() -> None:
        fresh = _read_pair(creds, profile)  # read back from the file the tools read
        if fresh["aws_access_key_id"] != rotation.new or identity(endpoint, fresh) != user_arn:
            raise StepFailed(f"[{profile}] does not sign in as {user} with {rotation.new}")

    def retire() -> None:
        iam = endpoint.client("iam", _read_pair(creds, profile))
        old_id = old["aws_access_key_id"]
        iam.update_access_key(UserName=user, AccessKeyId=old_id, Status="Inactive")
        iam.delete_access_key(UserName=user, AccessKeyId=old_id)
        if identity(endpoint, old) == user_arn:
            raise StepFailed(f"the deleted key {old_id} still signs in as {user}")
        previous_file.unlink(missing_ok=True)

    rotation.do = {"staged": stage, "published": publish, "switched": switch,
                   "verified": verify, "retired": retire}  # fmt: skip
    rotation.undo = {"staged": unstage, "switched": unswitch}
    return rotation
