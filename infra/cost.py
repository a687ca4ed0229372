"""What an environment costs a month, from what the program declares and a price table.

The resources come from the program evaluated under Pulumi's mocks (infra/offline.py), so the
estimate follows the program: another instance, endpoint or line shows up here the day it is
declared. Prices come from infra/prices.yml (on-demand list prices, with their source and date).
What the program cannot say, the month's data volumes and the exchange rate, comes from the stack
file's `claims-dc:cost` block (infra/config.py COST_USAGE_KEYS), every value entered on purpose.

Storage is simulated month by month: the backup bucket holds one full backup plus each day's
change for as long as the lock and the lifecycle keep a version (retention, then noncurrent
expiry), in STANDARD until the lifecycle's transition and in its colder class after; the audit
bucket keeps every log file for its lock period. So month 1 and month 60 differ, and the total
over the period is the sum of its months, not twelve times one month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.config import (
    COST_USAGE_KEYS,
    ON_PREMISES_KEYS,
    SAFE_LOADER,
    CostInputs,
    StackConfig,
)
from infra.offline import DeclaredResource, Evaluation

PRICES = Path(__file__).with_name("prices.yml")
DAYS_PER_MONTH = 30.4
PRICE_TABLE_MAX_AGE_DAYS = 365


class CostError(ValueError):
    """The estimate cannot be made: a missing cost block, or a price the table lacks."""


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    hours_per_month: float
    source: Mapping[str, str]
    regions: Mapping[str, Mapping[str, Any]]

    def price(self, region: str, *path: str) -> float:
        node: Any = self.regions.get(region)
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                raise CostError(f"{PRICES.name}: no price for {region} {' '.join(path)}")
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise CostError(f"{PRICES.name}: {region} {' '.join(path)} = {node!r} is no price")
        return float(node)

    def age_days(self, today: dt.date) -> int:
        year, month = (int(x) for x in self.as_of.split("-"))
        return (today - dt.date(year, month, 1)).days


def load_prices(path: Path = PRICES) -> PriceTable:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506
    if not isinstance(data, Mapping) or not isinstance(data.get("regions"), Mapping):
        raise CostError(f"{path.name}: needs asOf, hoursPerMonth, source and regions")
    return PriceTable(
        str(data["asOf"]), float(data["hoursPerMonth"]), dict(data["source"]), data["regions"]
    )


@dataclass
class LineItem:
    component: str
    what: str  # the resource or usage, named as the program names it
    quantity: str  # how the figure was reached, for a reader checking it by hand
    monthly_usd: list[float]  # one per month of the period
    source: str  # the price table's key for the price used

    @property
    def first_month(self) -> float:
        return self.monthly_usd[0]

    @property
    def last_month(self) -> float:
        return self.monthly_usd[-1]

    @property
    def total(self) -> float:
        return sum(self.monthly_usd)


@dataclass
class Estimate:
    stack: str
    region: str
    months: int
    jpy_per_usd: float
    prices_as_of: str
    prices_age_days: int
    items: list[LineItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assumptions: dict[str, float] = field(default_factory=dict)
    on_premises: dict[str, float] | None = None

    def by_component(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for item in self.items:
            c = out.setdefault(
                item.component, {"first_month": 0.0, "last_month": 0.0, "total": 0.0}
            )
            c["first_month"] += item.first_month
            c["last_month"] += item.last_month
            c["total"] += item.total
        return out

    @property
    def total_usd(self) -> float:
        return sum(i.total for i in self.items)

    @property
    def total_yen(self) -> float:
        return self.total_usd * self.jpy_per_usd

    def on_premises_total_yen(self) -> float | None:
        if self.on_premises is None:
            return None
        b, years = self.on_premises, self.months / 12
        return (
            b["serverRenewalYen"]
            + b["maintenanceYenPerYear"] * years
            + (b["linesYenPerMonth"] + b["facilityYenPerMonth"]) * self.months
        )

    def as_dict(self) -> dict[str, Any]:
        on_prem = self.on_premises_total_yen()
        return {
            "stack": self.stack,
            "region": self.region,
            "months": self.months,
            "currency": "USD",
            "jpy_per_usd": self.jpy_per_usd,
            "prices_as_of": self.prices_as_of,
            "prices_age_days": self.prices_age_days,
            "items": [
                {
                    "component": i.component,
                    "what": i.what,
                    "quantity": i.quantity,
                    "first_month_usd": round(i.first_month, 2),
                    "last_month_usd": round(i.last_month, 2),
                    "total_usd": round(i.total, 2),
                    "price": i.source,
                }
                for i in self.items
            ],
            "components": {
                c: {k: round(v, 2) for k, v in figures.items()}
                for c, figures in self.by_component().items()
            },
            "total_usd": round(self.total_usd, 2),
            "total_yen": round(self.total_yen),
            "assumptions": self.assumptions,
            "on_premises": self.on_premises,
            "on_premises_total_yen": None if on_prem is None else round(on_prem),
            "difference_yen": None if on_prem is None else round(on_prem - self.total_yen),
            "notes": self.notes,
        }


def _flat(months: int, usd: float) -> list[float]:
    return [usd] * months


def _provider_region(ev: Evaluation, r: DeclaredResource) -> str:
    """The region of the provider a resource was declared with (the Osaka replica has its own)."""
    if not r.provider:
        return ev.config.region
    urn = r.provider.rsplit("::", 1)[0]
    name = urn.rsplit("::", 1)[-1]
    for p in ev.of_type("pulumi:providers:aws"):
        if p.name == name and isinstance(p.inputs.get("region"), str):
            return str(p.inputs["region"])
    return ev.config.region


class _Estimator:
    def __init__(self, ev: Evaluation, cost: CostInputs, prices: PriceTable) -> None:
        self.ev, self.cost, self.prices = ev, cost, prices
        self.months = cost.years * 12
        self.hours = prices.hours_per_month
        self.usage = cost.usage
        self.items: list[LineItem] = []
        self.locks = ev.bucket_settings(
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
        )
        self.lifecycles = ev.bucket_settings(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
        )
        self.notes: list[str] = []

    def add(
        self, r: DeclaredResource | str, what: str, quantity: str, usd: list[float], source: str
    ) -> None:
        component = r if isinstance(r, str) else r.component
        self.items.append(LineItem(component, what, quantity, usd, source))

    def run(self) -> None:
        self.hosts()
        self.endpoints()
        self.lines()
        self.buckets()
        self.keys()
        self.logs()

    def hosts(self) -> None:
        for r in self.ev.of_type("aws:ec2/instance:Instance"):
            region = _provider_region(self.ev, r)
            itype = str(r.inputs.get("instanceType"))
            hourly = self.prices.price(region, "ec2InstanceHour", itype)
            self.add(
                r,
                f"EC2 {r.name} ({itype})",
                f"{self.hours:g} h x ${hourly}/h",
                _flat(self.months, hourly * self.hours),
                f"{region} ec2InstanceHour.{itype}",
            )
            disks = [
                r.inputs.get("rootBlockDevice") or {},
                *(r.inputs.get("ebsBlockDevices") or []),
            ]
            for disk in disks:
                size = float(disk.get("volumeSize") or 8)
                vtype = str(disk.get("volumeType") or "gp3")
                per_gb = self.prices.price(region, "ebsGbMonth", vtype)
                self.add(
                    r,
                    f"EBS {r.name} {vtype} {size:g} GB",
                    f"{size:g} GB x ${per_gb}/GB-month",
                    _flat(self.months, size * per_gb),
                    f"{region} ebsGbMonth.{vtype}",
                )

    def endpoints(self) -> None:
        interface = [
            r
            for r in self.ev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
            if r.inputs.get("vpcEndpointType") == "Interface"
        ]
        for r in self.ev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
            if r.inputs.get("vpcEndpointType") != "Interface":
                self.notes.append(
                    f"{r.name}: a {r.inputs.get('vpcEndpointType')} endpoint, "
                    "which AWS does not charge for"
                )
        region = self.ev.config.region
        az_hour = self.prices.price(region, "interfaceEndpointAzHour")
        for r in interface:
            azs = len(r.inputs.get("subnetIds") or []) or 1
            self.add(
                r,
                f"interface endpoint {r.name}",
                f"{azs} AZ x {self.hours:g} h x ${az_hour}",
                _flat(self.months, azs * self.hours * az_hour),
                f"{region} interfaceEndpointAzHour",
            )
        if interface:
            gb, per_gb = (
                self.usage["endpointGbPerMonth"],
                self.prices.price(region, "interfaceEndpointGb"),
            )
            self.add(
                interface[0].component,
                "interface endpoint data",
                f"{gb:g} GB x ${per_gb}",
                _flat(self.months, gb * per_gb),
                f"{region} interfaceEndpointGb",
            )

    def lines(self) -> None:
        region = self.ev.config.region
        attach_hour = self.prices.price(region, "transitGatewayAttachmentHour")
        attachments = [
            *self.ev.of_type("aws:ec2transitgateway/vpcAttachment:VpcAttachment"),
            *[
                v
                for v in self.ev.of_type("aws:ec2/vpnConnection:VpnConnection")
                if v.inputs.get("transitGatewayId")
            ],
            *[
                a
                for a in self.ev.of_type("aws:directconnect/gatewayAssociation:GatewayAssociation")
                if a.inputs.get("associatedGatewayId")
            ],
        ]
        for r in attachments:
            self.add(
                r,
                f"transit gateway attachment {r.name}",
                f"{self.hours:g} h x ${attach_hour}",
                _flat(self.months, self.hours * attach_hour),
                f"{region} transitGatewayAttachmentHour",
            )
        vpn_hour = self.prices.price(region, "vpnConnectionHour")
        for r in self.ev.of_type("aws:ec2/vpnConnection:VpnConnection"):
            self.add(
                r,
                f"Site-to-Site VPN {r.name}",
                f"{self.hours:g} h x ${vpn_hour}",
                _flat(self.months, self.hours * vpn_hour),
                f"{region} vpnConnectionHour",
            )
        for r in self.ev.of_type("aws:directconnect/connection:Connection"):
            bandwidth = str(r.inputs.get("bandwidth"))
            port = self.prices.price(region, "directConnectPortHour", bandwidth)
            self.add(
                r,
                f"Direct Connect port {r.name} ({bandwidth})",
                f"{self.hours:g} h x ${port}",
                _flat(self.months, self.hours * port),
                f"{region} directConnectPortHour.{bandwidth}",
            )
        for r in self.ev.of_type(
            "aws:directconnect/transitVirtualInterface:TransitVirtualInterface"
        ):
            self.notes.append(
                f"{r.name}: a transit VIF on connection {r.inputs.get('connectionId')}, which the "
                "program does not declare; its port hours go to whoever owns that connection"
            )
        tgw_gb = self.prices.price(region, "transitGatewayGb")
        for name, line in self.ev.config.lines.items():
            gb = self.usage.get(f"{name}GbPerMonth", 0.0)
            component = name
            self.add(
                component,
                f"transit gateway data, {name} line",
                f"{gb:g} GB x ${tgw_gb}",
                _flat(self.months, gb * tgw_gb),
                f"{region} transitGatewayGb",
            )
            out_key = "directConnectOutGb" if line.kind == "dx" else "internetOutGb"
            out = self.prices.price(region, out_key)
            self.add(
                component,
                f"data out over the {name} {line.kind} line",
                f"{gb:g} GB x ${out}",
                _flat(self.months, gb * out),
                f"{region} {out_key}",
            )

    def _retention(self, bucket: str) -> tuple[float, float | None, str | None]:
        """(days a version is kept, days until its transition, the colder class)"""
        lock = self.locks.get(bucket)
        life = self.lifecycles.get(bucket)
        days = 0.0
        if lock is not None:
            days = float(
                ((lock.inputs.get("rule") or {}).get("defaultRetention") or {}).get("days") or 0
            )
        transition_days, colder = None, None
        for rule in (life.inputs.get("rules") if life else None) or []:
            expiry = (rule.get("noncurrentVersionExpiration") or {}).get("noncurrentDays")
            if expiry:
                days += float(expiry)
            for t in rule.get("transitions") or []:
                transition_days, colder = float(t["days"]), str(t["storageClass"])
        return days, transition_days, colder

    def _stored(self, full: float, per_day: float, keep_days: float, month: int) -> float:
        elapsed = month * DAYS_PER_MONTH
        return full + per_day * min(elapsed, keep_days)

    def buckets(self) -> None:
        usage = self.usage
        for r in self.ev.of_type("aws:s3/bucket:Bucket"):
            region = _provider_region(self.ev, r)
            keep, transition, colder = self._retention(r.name)
            if "backup" in r.name:
                full, per_day = usage["backupFullGb"], usage["backupChangeGbPerDay"]
            elif "audit" in r.name:
                full, per_day = 0.0, usage["auditLogGbPerMonth"] / DAYS_PER_MONTH
            else:
                self.notes.append(f"{r.name}: small status documents, left at $0")
                continue
            standard = self.prices.price(region, "s3GbMonth", "STANDARD")
            cold = self.prices.price(region, "s3GbMonth", colder) if colder else standard
            monthly = []
            for m in range(1, self.months + 1):
                total = self._stored(full, per_day, keep, m)
                warm = total if transition is None else min(total, per_day * transition)
                monthly.append(warm * standard + (total - warm) * cold)
            last = self._stored(full, per_day, keep, self.months)
            how = (
                f"{full:g} GB + {per_day:.3g} GB/day kept {keep:g} days (lock + noncurrent "
                f"expiry): {last:,.0f} GB by month {self.months}; STANDARD ${standard}"
                + (f", {colder} ${cold} after {transition:g} days" if colder else "")
            )
            self.add(r, f"S3 {r.name} ({region})", how, monthly, f"{region} s3GbMonth")
            if region != self.ev.config.region:
                out = self.prices.price(self.ev.config.region, "interRegionOutGb")
                gb = per_day * DAYS_PER_MONTH
                first = (full + gb) * out
                self.add(
                    r,
                    f"replication to {region}",
                    f"{gb:.3g} GB/month x ${out} (the first month also {full:g} GB)",
                    [first] + [gb * out] * (self.months - 1),
                    f"{self.ev.config.region} interRegionOutGb",
                )

    def keys(self) -> None:
        for r in self.ev.of_type("aws:kms/key:Key"):
            region = _provider_region(self.ev, r)
            price = self.prices.price(region, "kmsKeyMonth")
            self.add(
                r,
                f"KMS key {r.name} ({region})",
                f"1 key x ${price}/month",
                _flat(self.months, price),
                f"{region} kmsKeyMonth",
            )
        self.notes.append("KMS requests: within the 20,000 a month AWS does not charge for")

    def logs(self) -> None:
        region = self.ev.config.region
        for r in self.ev.of_type("aws:cloudtrail/trail:Trail"):
            price = self.prices.price(region, "cloudtrailManagementEvents")
            has_data_events = bool(
                r.inputs.get("eventSelectors") or r.inputs.get("advancedEventSelectors")
            )
            self.add(
                r,
                f"CloudTrail {r.name}",
                "the first copy of management events"
                + ("; data events are declared and NOT priced here" if has_data_events else ""),
                _flat(self.months, price),
                f"{region} cloudtrailManagementEvents",
            )
        groups = {g.name: g for g in self.ev.of_type("aws:cloudwatch/logGroup:LogGroup")}
        for r in self.ev.of_type("aws:ec2/flowLog:FlowLog"):
            gb = self.usage["flowLogGbPerMonth"]
            ingest = self.prices.price(region, "logsIngestGb")
            stored = self.prices.price(region, "logsStoredGbMonth")
            retention = max(
                (float(g.inputs.get("retentionInDays") or 0) for g in groups.values()), default=0.0
            )
            monthly = [
                gb * ingest + gb * min(m, retention / DAYS_PER_MONTH) * stored
                for m in range(1, self.months + 1)
            ]
            self.add(
                r,
                f"VPC flow logs {r.name}",
                f"{gb:g} GB/month ingested x ${ingest}, kept "
                f"{retention:g} days x ${stored}/GB-month",
                monthly,
                f"{region} logsIngestGb",
            )


def estimate(
    ev: Evaluation, prices: PriceTable | None = None, today: dt.date | None = None
) -> Estimate:
    """The monthly cost of what `ev` declares over the stack's period; CostError if the stack
    file has no cost block or the price table lacks a price the program needs."""
    config: StackConfig = ev.config
    if config.cost is None:
        keys = ", ".join(COST_USAGE_KEYS)
        raise CostError(
            f"{config.source}: no claims-dc:cost block; it needs jpyPerUsd and usage ({keys}), "
            f"and for the comparison onPremises ({', '.join(ON_PREMISES_KEYS)})"
        )
    prices = prices or load_prices()
    run = _Estimator(ev, config.cost, prices)
    run.run()
    age = prices.age_days(today or dt.date.today())
    if age > PRICE_TABLE_MAX_AGE_DAYS:
        run.notes.insert(
            0,
            f"the price table is from {prices.as_of}, {age} days old: refresh "
            f"{PRICES.name} before a figure goes to a council",
        )
    return Estimate(
        stack=config.stack,
        region=config.region,
        months=run.months,
        jpy_per_usd=config.cost.jpy_per_usd,
        prices_as_of=prices.as_of,
        prices_age_days=age,
        items=run.items,
        notes=run.notes,
        assumptions=dict(config.cost.usage),
        on_premises=None if config.cost.on_premises is None else dict(config.cost.on_premises),
    )


def render_text(e: Estimate) -> Iterable[str]:
    years = e.months // 12
    yield (
        f"cost of stack {e.stack} ({e.region}), on-demand list prices as of {e.prices_as_of}, "
        f"USD; {e.jpy_per_usd:g} JPY/USD; tax not included"
    )
    yield f"  {'component':12} {'month 1':>10} {f'month {e.months}':>10} {f'{years} years':>12}"
    for component, figures in e.by_component().items():
        yield (
            f"  {component:12} {figures['first_month']:10,.2f} {figures['last_month']:10,.2f} "
            f"{figures['total']:12,.2f}"
        )
    yield f"  {'total':12} {'':10} {'':10} {e.total_usd:12,.2f}  = {e.total_yen:,.0f} yen"
    yield "line items:"
    for i in e.items:
        yield f"  {i.component:10} {i.what:48} {i.last_month:9,.2f}/month  [{i.quantity}]"
    yield "assumptions (claims-dc:cost.usage in the stack file):"
    for key, value in e.assumptions.items():
        yield f"  {key:22} {value:g}   {COST_USAGE_KEYS[key]}"
    on_prem = e.on_premises_total_yen()
    if on_prem is not None and e.on_premises is not None:
        yield f"on-premises baseline over {years} years (claims-dc:cost.onPremises):"
        for key, value in e.on_premises.items():
            yield f"  {key:22} {value:14,.0f} yen   {ON_PREMISES_KEYS[key]}"
        yield f"  total {on_prem:,.0f} yen; this data center {e.total_yen:,.0f} yen"
        diff = on_prem - e.total_yen
        word = "saves" if diff >= 0 else "costs"
        yield f"  the move {word} {abs(diff):,.0f} yen over {years} years"
    for note in e.notes:
        yield f"note: {note}"
