"""The network linkage report (ネットワーク結合報告書) for the privacy council.

What the council reads before it approves the connection (電子計算機の結合): each outside
connection and what may cross it, a zone diagram drawn from the model (Graphviz SVG), the three
verdicts with their evidence, the hash of the stack config and the time. Markdown and an HTML
page that prints on A4, with Japanese and English labels. Also the same intent as AWS Network
Access Analyzer scopes, to check the deployed network after `pulumi up`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from infra.config import DATACENTER_ZONES, EXTERNAL_ZONES, StackConfig
from infra.proof.verdicts import Proof

JST = ZoneInfo("Asia/Tokyo")
FONT = "Noto Sans CJK JP"  # Debian's fonts-noto-cjk, which make setup installs
LINE_LABELS = {
    "lgwan": ("総合行政ネットワーク (LGWAN)", "the welfare division's terminals over LGWAN"),
    "fund": ("支払基金 専用線", "the Payment Fund's dedicated line"),
}
ZONE_LABELS = {
    "lgwan": "LGWAN 端末", "fund": "支払基金", "app": "業務アプリ", "db": "データベース",
    "intake": "請求ファイル受付", "mgmt": "運用管理", "endpoints": "AWS エンドポイント",
}  # fmt: skip
STATUS_JA = {"HOLDS": "成立", "VIOLATED": "違反あり", "UNKNOWN": "判定不能"}
VERDICT_JA = {
    "closed": "インターネットとの経路なし",
    "policy": "通信は許可一覧と完全一致",
    "separated": "LGWAN と支払基金回線は相互に到達不能",
}


@dataclass
class Report:
    markdown: Path
    html: Path
    svg: Path
    scopes: Path
    config_sha256: str


def config_hash(stack_file: Path) -> str:
    return hashlib.sha256(stack_file.read_bytes()).hexdigest()


def zone_dot(config: StackConfig) -> str:
    """The zones and the allowed flows between them, as Graphviz."""
    lines = [
        "digraph zones {", f'  rankdir=LR; fontname="{FONT}";',
        f'  node [fontname="{FONT}", fontsize=11]; edge [fontname="{FONT}", fontsize=9];',
        '  internet [label="Internet\\nインターネット\\n(no path / 経路なし)", shape=octagon, '
        'style=dashed, color=gray50, fontcolor=gray40];',
    ]  # fmt: skip
    for zone in EXTERNAL_ZONES:
        lines.append(
            f'  {zone} [label="{ZONE_LABELS[zone]}\\n{zone} {config.zones[zone].cidr}", '
            f"shape=ellipse];"
        )
    lines.append(
        f'  subgraph cluster_dc {{ label="Data center VPC {config.vpc_cidr}\\n'
        f'データセンター ({config.region})"; style=rounded;'
    )
    for zone in DATACENTER_ZONES:
        lines.append(
            f'    {zone} [label="{ZONE_LABELS[zone]}\\n{zone} '
            f'{config.zones[zone].cidr}", shape=box];'
        )
    lines.append("  }")
    for flow in config.flows:
        for src, dst in flow.pairs():
            lines.append(f'  {src} -> {dst} [label="{flow.port}/{flow.protocol}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "Graphviz `dot` is not installed (apt-get install graphviz; make setup installs it)"
        )
    proc = subprocess.run(
        [dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {proc.stderr.strip()}")
    return proc.stdout


def _crossing(config: StackConfig, line: str) -> list[tuple[str, str, str, str]]:
    """What may cross a line: (from, to, port, why)."""
    return [(s, d, f"{f.port}/{f.protocol}" + (f" ({f.service})" if f.service else ""), f.why)
            for f in config.flows for s, d in f.pairs() if line in (s, d)]  # fmt: skip


def access_scopes(config: StackConfig) -> dict[str, Any]:
    """The three verdicts as Network Access Analyzer scopes (create_network_insights_access_scope
    arguments): each scope finds the paths that must not exist."""
    eni = {"ResourceStatement": {"ResourceTypes": ["AWS::EC2::NetworkInterface"]}}
    igw = {"ResourceStatement": {"ResourceTypes": ["AWS::EC2::InternetGateway"]}}
    cidr = {z: str(config.zones[z].cidr) for z in config.zones}
    match, exclude = [], []
    for src in config.zones:
        others = [cidr[d] for d in config.zones if d != src]
        match.append(
            {
                "Source": {"PacketHeaderStatement": {"SourceAddresses": [cidr[src]]}},
                "Destination": {"PacketHeaderStatement": {"DestinationAddresses": others}},
            }
        )
    for flow in config.flows:
        for src, dst in flow.pairs():
            exclude.append({
                "Source": {"PacketHeaderStatement": {"SourceAddresses": [cidr[src]]}},
                "Destination": {"PacketHeaderStatement": {
                    "DestinationAddresses": [cidr[dst]], "DestinationPorts": [str(flow.port)],
                    "Protocols": [flow.protocol]}},
            })  # fmt: skip
    lg, fu = cidr["lgwan"], cidr["fund"]
    return {
        "closed": {"MatchPaths": [{"Source": eni, "Destination": igw},
                                  {"Source": igw, "Destination": eni}]},
        "policy": {"MatchPaths": match, "ExcludePaths": exclude},
        "separated": {"MatchPaths": [
            {"Source": {"PacketHeaderStatement": {"SourceAddresses": [lg]}},
             "Destination": {"PacketHeaderStatement": {"DestinationAddresses": [fu]}}},
            {"Source": {"PacketHeaderStatement": {"SourceAddresses": [fu]}},
             "Destination": {"PacketHeaderStatement": {"DestinationAddresses": [lg]}}}]},
    }  # fmt: skip


def markdown(config: StackConfig, proof: Proof, sha: str, when: dt.datetime) -> str:
    out = [
        "# ネットワーク結合報告書 / Network linkage report",
        "",
        f"- 団体 / Municipality: {config.municipality.name} ({config.municipality.code})",
        f"- スタック / Stack: `{config.stack}` — リージョン / Region: {config.region}",
        f"- 作成日時 / Generated: {when.astimezone(JST).isoformat(timespec='seconds')}",
        f"- 設定ハッシュ / Config SHA-256: `{sha}`",
        "",
        "## 外部接続 / Outside connections",
    ]
    for name, line in config.lines.items():
        ja, en = LINE_LABELS[name]
        how = (f"Site-to-Site VPN (IKEv2, static routes), customer gateway "
               f"{line.customer_gateway_ip}" if line.kind == "vpn" else
               f"Direct Connect {line.dx_connection_id} VLAN {line.vlan}")  # fmt: skip
        out += [
            "",
            f"### {ja} / {en}",
            "",
            f"- 接続方式 / How: {how}, its own transit gateway",
            f"- 接続先ゾーン / Serves zone: {config.line_zone(name)} only",
            "",
            "| from | to | port | why / 目的 |",
            "| --- | --- | --- | --- |",
        ]
        out += [f"| {s} | {d} | {p} | {w} |" for s, d, p, w in _crossing(config, name)]
    out += [
        "",
        "## ゾーン構成図 / Zones and allowed flows",
        "",
        "![zones](zones.svg)",
        "",
        "## 検証結果 / Verdicts",
        "",
        "| verdict / 検証 | result / 結果 | what was checked / 検証範囲 |",
        "| --- | --- | --- |",
    ]
    for v in proof.verdicts:
        checked = ", ".join(f"{n} {k}" for k, n in v.checked.items())
        out.append(
            f"| {VERDICT_JA[v.id]} / {v.title} | **{STATUS_JA[v.status]} / {v.status}** "
            f"| {checked} |"
        )
    for v in proof.verdicts:
        for c in v.counterexamples:
            out += ["", f"**{v.id}: {c.summary}**", ""] + [f"1. {h}" for h in c.hops]
    out += [
        "",
        "## 許可一覧 / The flow policy",
        "",
        "| from | to | port | why / 目的 |",
        "| --- | --- | --- | --- |",
    ]
    out += [
        f"| {', '.join(f.sources)} | {', '.join(f.destinations)} | {f.port}/{f.protocol} "
        f"| {f.why} |"
        for f in config.flows
    ]
    out += [
        "",
        "All other traffic is denied in both directions. これ以外の通信はすべて双方向で"
        "遮断されます。",
        "",
    ]
    return "\n".join(out)


CSS = """
@page { size: A4; margin: 16mm; }
body { font-family: "Noto Sans CJK JP", "Hiragino Sans", sans-serif; font-size: 10.5pt;
       color: #111; max-width: 180mm; margin: auto; }
h1 { font-size: 16pt; border-bottom: 2px solid #333; } h2 { font-size: 13pt; margin-top: 1.4em; }
h2, h3 { break-after: avoid; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; page-break-inside: avoid; }
th, td { border: 1px solid #999; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } .HOLDS { color: #0a5d00; } .VIOLATED, .UNKNOWN { color: #a00000; }
.hops { font-family: monospace; font-size: 8.5pt; } svg { max-width: 100%; height: auto; }
"""


def html_page(config: StackConfig, proof: Proof, sha: str, when: dt.datetime, svg: str) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='ja'><head><meta charset='utf-8'>"
             f"<title>ネットワーク結合報告書 {e(config.municipality.name)}</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>ネットワーク結合報告書 / Network linkage report</h1>",
             "<table><tr><th>団体 / Municipality</th>"
             f"<td>{e(config.municipality.name)} ({e(config.municipality.code)})</td></tr>"
             f"<tr><th>スタック / Stack</th><td>{e(config.stack)} — {e(config.region)}</td></tr>"
             f"<tr><th>作成日時 / Generated</th>"
             f"<td>{e(when.astimezone(JST).isoformat(timespec='seconds'))}</td></tr>"
             f"<tr><th>設定ハッシュ / Config SHA-256</th><td><code>{sha}</code></td></tr></table>",
             "<h2>外部接続 / Outside connections</h2>"]  # fmt: skip
    for name, line in config.lines.items():
        ja, en = LINE_LABELS[name]
        how = (f"Site-to-Site VPN, customer gateway {line.customer_gateway_ip}"
               if line.kind == "vpn" else f"Direct Connect {line.dx_connection_id} "
               f"VLAN {line.vlan}")  # fmt: skip
        rows = "".join(
            f"<tr><td>{e(s)}</td><td>{e(d)}</td><td>{e(p)}</td><td>{e(w)}</td></tr>"
            for s, d, p, w in _crossing(config, name)
        )
        parts.append(
            f"<h3>{e(ja)} / {e(en)}</h3><p>{e(how)}; serves zone "
            f"<b>{e(config.line_zone(name))}</b> only.</p><table><tr><th>from</th>"
            f"<th>to</th><th>port</th><th>why / 目的</th></tr>{rows}</table>"
        )
    parts.append("<h2>ゾーン構成図 / Zones and allowed flows</h2>")
    parts.append(svg[svg.find("<svg") :])
    parts.append(
        "<h2>検証結果 / Verdicts</h2><table><tr><th>検証 / verdict</th>"
        "<th>結果 / result</th><th>検証範囲 / checked</th></tr>"
    )
    for v in proof.verdicts:
        checked = ", ".join(f"{n} {k}" for k, n in v.checked.items())
        parts.append(
            f"<tr><td>{e(VERDICT_JA[v.id])}<br>{e(v.title)}</td>"
            f"<td class='{v.status}'><b>{STATUS_JA[v.status]} / {v.status}</b></td>"
            f"<td>{e(checked)}</td></tr>"
        )
    parts.append("</table>")
    for v in proof.verdicts:
        for c in v.counterexamples:
            hops = "".join(f"<li>{e(h)}</li>" for h in c.hops)
            parts.append(f"<p><b>{e(v.id)}: {e(c.summary)}</b></p><ol class='hops'>{hops}</ol>")
    rows = "".join(
        f"<tr><td>{e(', '.join(f.sources))}</td><td>{e(', '.join(f.destinations))}"
        f"</td><td>{f.port}/{f.protocol}</td><td>{e(f.why)}</td></tr>"
        for f in config.flows
    )
    parts.append(
        f"<h2>許可一覧 / The flow policy</h2><table><tr><th>from</th><th>to</th>"
        f"<th>port</th><th>why / 目的</th></tr>{rows}</table><p>これ以外の通信はすべて"
        f"双方向で遮断されます。All other traffic is denied in both directions.</p>"
        f"</body></html>"
    )
    return "\n".join(parts)


def write_report(
    config: StackConfig,
    proof: Proof,
    stack_file: Path,
    out_dir: Path,
    when: dt.datetime | None = None,
) -> Report:
    when = when or dt.datetime.now(dt.UTC)
    sha = config_hash(stack_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    svg = render_svg(zone_dot(config))
    paths = Report(
        out_dir / "linkage-report.md",
        out_dir / "linkage-report.html",
        out_dir / "zones.svg",
        out_dir / "network-access-scopes.json",
        sha,
    )
    paths.svg.write_text(svg, encoding="utf-8")
    paths.markdown.write_text(markdown(config, proof, sha, when), encoding="utf-8")
    paths.html.write_text(html_page(config, proof, sha, when, svg), encoding="utf-8")
    paths.scopes.write_text(json.dumps(access_scopes(config), indent=2) + "\n", encoding="utf-8")
    return paths
