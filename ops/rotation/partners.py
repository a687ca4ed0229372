"""Keys an outside party pins, and how it is told of a new one.

The fund's SFTP client pins the intake host's SSH host key: a key it has not been told of makes
its next delivery fail with "Host key verification failed". So a new host key of a host a
partner reaches over SSH (the inventory's claims_dc_host_key_pinned_by, from the flow policy)
is announced before it is served:

- at `published`, sshd offers the new key beside the served one (a second HostKey line). An
  OpenSSH client with `UpdateHostKeys yes` learns it on its next login; any other client's
  operator adds the line the notice gives;
- a notice, in Japanese and English, gives the host, the new key, its fingerprint and the date
  of the switch; it is written beside the ledger for the operator to send;
- the switch waits until every partner that pins the key has confirmed it holds the new one
  (`rotate --partner-confirmed fund`) or the notice period has ended. `--switch-now` switches
  before either, and says whose logins will fail until they add the key.

After the switch the old key is no longer offered; a client with UpdateHostKeys drops it from
its known_hosts by itself on its next login.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ops.rotation.steps import StepFailed

JST = dt.timezone(dt.timedelta(hours=9), "JST")

# Display names of the outside zones, for the notice (Japanese, English).
PARTNER_NAMES = {
    "fund": ("社会保険診療報酬支払基金", "the Social Insurance Medical Fee Payment Fund"),
    "lgwan": ("LGWAN 接続先", "the LGWAN party"),
}


def partner_name(zone: str) -> tuple[str, str]:
    return PARTNER_NAMES.get(zone, (zone, zone))


@dataclass(frozen=True)
class Notice:
    """What a partner is told of a new host key it pins."""

    secret: str  # host-key:<host>
    host: str
    address: str
    partners: tuple[str, ...]
    new_key: str  # the public key line as known_hosts takes it ("ssh-ed25519 AAAA...")
    new_fingerprint: str
    old_fingerprint: str
    published_at: str  # ISO, UTC
    switch_after: str  # ISO, UTC: the end of the notice period

    @property
    def switch_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.switch_after)

    def text(self) -> str:
        """The notice to send, Japanese first, then English."""
        return NOTICE.format(
            to_ja="、".join(partner_name(p)[0] for p in self.partners),
            to_en=", ".join(partner_name(p)[1] for p in self.partners),
            host=self.host,
            address=self.address,
            new=self.new_fingerprint,
            old=self.old_fingerprint,
            when=self.switch_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST"),
            line=f"{self.host},{self.address} {self.new_key}",
        )


NOTICE = """\
{to_ja} 御中

件名: サーバ {host} ({address}) の SSH ホスト鍵更新のお知らせ

このサーバの SSH ホスト鍵を下記のとおり更新します。
  新しいホスト鍵の指紋: {new}
  現在のホスト鍵の指紋: {old}
  切替日時: {when} 以降 (貴側から確認のご連絡をいただいた場合はその時点)
known_hosts に追加する行:
  {line}
OpenSSH で UpdateHostKeys yes を設定されている場合、切替日時までの接続で
新しい鍵が known_hosts に自動で追加されます。
追加された鍵の指紋が上記と一致することをご確認ください。
それ以外の場合は、上記の行を known_hosts に追加してください。
追加が済みましたらご連絡ください。切替後、現在の鍵は使われなくなります。

----
To: {to_en}

Subject: new SSH host key for {host} ({address})

We are replacing this server's SSH host key.
  New host key fingerprint:     {new}
  Current host key fingerprint: {old}
  Switch: on or after {when} (or when you confirm you hold the new key)
Line to add to known_hosts:
  {line}
If your OpenSSH client has UpdateHostKeys yes, any login before the switch
adds the new key to known_hosts by itself: check that its fingerprint is the
one above. Otherwise add the line above to known_hosts.
Please tell us once it is added. After the switch the current key is no
longer used.
"""


def notice_paths(directory: Path, host: str) -> tuple[Path, Path]:
    base = directory / f"host-key-{host}"
    return base.with_suffix(".json"), base.with_suffix(".txt")


def write_notice(directory: Path, notice: Notice) -> Path:
    """The notice beside the ledger (JSON for the tool, text to send); the text's path."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    data, text = notice_paths(directory, notice.host)
    for path, content in ((data, json.dumps(asdict(notice), ensure_ascii=False, indent=2)),
                          (text, notice.text())):  # fmt: skip
        tmp = path.with_suffix(path.suffix + ".new")
        tmp.write_text(content + ("\n" if not content.endswith("\n") else ""), encoding="utf-8")
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    return text


def read_notice(directory: Path, host: str) -> Notice | None:
    data, _ = notice_paths(directory, host)
    try:
        raw = json.loads(data.read_text(encoding="utf-8"))
        raw["partners"] = tuple(raw["partners"])
        return Notice(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise StepFailed(f"{data}: not a notice this tool wrote ({type(e).__name__}: {e}); "
                         "move it aside and rerun to announce the key again") from e  # fmt: skip


def withdraw_notice(directory: Path, host: str) -> None:
    """A rotation rolled back: its notice no longer holds."""
    for path in notice_paths(directory, host):
        path.unlink(missing_ok=True)


def archive_notice(directory: Path, host: str) -> None:
    """A rotation finished: its notice is kept, as sent, in sent/ (evidence of what the
    partner was told and when), out of the way of the next rotation's."""
    notice = read_notice(directory, host)
    if notice is None:
        return
    sent = directory / "sent"
    sent.mkdir(exist_ok=True, mode=0o700)
    stamp = notice.published_at[:16].replace(":", "").replace("-", "")
    for path in notice_paths(directory, host):
        path.replace(sent / f"{path.stem}-{stamp}{path.suffix}")


@dataclass(frozen=True)
class Terms:
    """What the operator said of the partners on this run."""

    notice: dt.timedelta  # how long before the switch a new key is announced
    confirmed: frozenset[str] = frozenset()  # partners that confirmed they hold the new key
    switch_now: bool = False  # switch before confirmation or the notice's end


def may_switch(notice: Notice, terms: Terms, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether the switch may happen now, and why (or why it waits)."""
    now = now or dt.datetime.now(dt.UTC)
    missing = [p for p in notice.partners if p not in terms.confirmed]
    if not missing:
        return True, f"switched on the confirmation of {', '.join(notice.partners)}"
    if now >= notice.switch_at:
        return True, f"switched after the notice period ended ({notice.switch_after})"
    if terms.switch_now:
        return True, (
            f"switched before the notice period ended (--switch-now), without the "
            f"confirmation of {', '.join(missing)}: their logins fail with 'Host key "
            f"verification failed' until they add {notice.new_fingerprint}"
        )
    when = notice.switch_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
    return False, (
        f"announced to {', '.join(notice.partners)}; the switch waits for their confirmation "
        f"(--partner-confirmed {','.join(missing)}) or {when}"
    )
