"""Collect CloudWatch into the raw zone: discover, plan, fetch, add the facts, write, checkpoint.

One entry point, :func:`collect`, for the Dagster asset, the Lambda handler and ``cms collect``.

No gap, no duplicate:
- Work is done per *hour window* (the raw partition). A window's batches have deterministic keys: the batch
  name is ``<window end>-cw-<account>-<region>-<namespace>-<chunk>`` under the window's ``dt=/hour=``, so a
  re-run of a window overwrites the same keys, and keys of an earlier run that this run did not rewrite
  (fewer chunks now) are deleted. Point ids are deterministic too, so the warehouse stays one row per point.
- A window is marked done (``checkpoints/collector/cloudwatch/<account>/<region>/dt=.../hour=HH.json`` in
  the raw zone) only after all its batches are written; a failure anywhere leaves it unmarked and it is
  collected whole again by the retry, the next scheduled run (``skip_done``) or a backfill.

Cheapest fetch: consecutive windows are fetched together (up to ``max_span_hours``): GetMetricData is priced
per metric requested, so a day fetched at once costs 1/24 of 24 hourly fetches; the answer is then split
into hour windows for writing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cms_dagster import lake
from cms_dagster.collectors import facts as facts_mod
from cms_dagster.collectors import pricing
from cms_dagster.collectors.cloudwatch import ApiCounter, fast_timestamps, fetch, list_metrics
from cms_dagster.collectors.hourly_series import span_series
from cms_dagster.collectors.metrics import (
    DEFAULT_NAMESPACES,
    KNOWN_STATISTICS,
    LAMBDA_INSIGHTS_MEMORY,
    LAMBDA_INSIGHTS_NAMESPACE,
    MetricRef,
    ResourceFilter,
    entity_from_arn,
    parse_statistics,
    spec_for,
    statistics_for,
)
from cms_dagster.collectors.planning import Query, build_queries, lower_bound_calls, plan_calls
from cms_dagster.collectors.shape import (
    Series,
    build_requests,
    encode_lines,
)
from cms_dagster.collectors.targets import Clients, Target, account_of, resolve_targets
from cms_dagster.collectors.windows import Window, hour_windows, spans
from cms_dagster.lake import jsonio

log = logging.getLogger(__name__)

PRODUCER = "cw"
SOURCE = "cloudwatch"
CHECKPOINT_PREFIX = lake.layout.COLLECTOR_CHECKPOINTS
DISCOVERY_PREFIX = lake.layout.DISCOVERY_CHECKPOINTS
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class CollectorConfig:
    """What to collect and how. :meth:`from_settings` takes it from a :class:`cms_dagster.settings.Settings`."""

    regions: tuple[str, ...] = ()
    role_arns: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    resource_filter: tuple[str, ...] = ()
    statistics: tuple[str, ...] = KNOWN_STATISTICS
    endpoint_url: str = ""
    default_region: str = "us-east-1"
    period: int = 60
    retry_mode: str = "adaptive"
    max_span_hours: int = 24
    series_per_batch: int = 1000
    facts: bool = True
    lambda_logs: bool = True
    discovery_ttl_s: int = 3600

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CollectorConfig:
        s = settings
        cfg = cls(
            regions=tuple(s.aws_regions),
            role_arns=tuple(s.aws_role_arns),
            namespaces=tuple(s.cw_namespaces),
            resource_filter=tuple(s.cw_resource_filter),
            statistics=tuple(s.cw_statistics),
            endpoint_url=s.aws_endpoint_url,
            default_region=s.aws_default_region,
        )
        cfg = cfg.replace(**overrides) if overrides else cfg
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the bad setting (statistics, resource filter, role ARNs)."""
        parse_statistics(self.statistics)
        ResourceFilter.parse(self.resource_filter)
        for arn in self.role_arns:
            account_of(arn)

    def replace(self, **kw: Any) -> CollectorConfig:
        return CollectorConfig(**{**asdict(self), **kw})

    @property
    def target_regions(self) -> tuple[str, ...]:
        return self.regions or (self.default_region,)


@dataclass
class RunSummary:
    """What a run did: the run metadata of the Dagster asset, the Lambda result, ``cms collect --json``."""

    start: str
    end: str
    windows: int = 0
    windows_collected: int = 0
    windows_skipped: int = 0
    targets: list[str] = field(default_factory=list)
    metrics_discovered: int = 0
    metrics_collected: int = 0
    metrics_requested: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    planned_get_metric_data_calls: int = 0
    minimum_get_metric_data_calls: int = 0
    datapoints: int = 0
    points: int = 0
    bytes: int = 0
    raw_keys: list[str] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)
    estimated_cost_usd: float = 0.0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def human(self) -> str:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(self.calls.items())) or "none"
        lines = [
            f"CloudWatch collection {self.start} -> {self.end}: {self.windows} hour window(s), "
            f"{self.windows_collected} collected, {self.windows_skipped} already done",
            f"  targets             {', '.join(self.targets) or 'none'}",
            f"  metrics discovered  {self.metrics_discovered:,} (collected {self.metrics_collected:,} after the "
            "metric table and resource filter)",
            f"  API calls           {calls}; retries {self.retries}",
            f"  GetMetricData       {self.calls.get('GetMetricData', 0)} calls (planned "
            f"{self.planned_get_metric_data_calls}, minimum {self.minimum_get_metric_data_calls}), "
            f"{self.metrics_requested:,} metrics requested",
            f"  datapoints          {self.datapoints:,} -> {self.points:,} points",
            f"  raw batches         {len(self.raw_keys)} files, {self.bytes:,} bytes",
            f"  estimated cost      ${self.estimated_cost_usd:.4f} (CloudWatch price model)",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  ERROR: {e}" for e in self.errors]
        return "\n".join(lines)


class DiscoveryCache:
    """ListMetrics results per account, region and namespace, kept ``ttl_s`` in the raw zone and in memory."""

    def __init__(self, raw: lake.Zone | None, ttl_s: int, now: Callable[[], dt.datetime] | None = None) -> None:
        self.raw, self.ttl_s = raw, ttl_s
        self.now = now or (lambda: dt.datetime.now(_UTC))
        self._memo: dict[str, list[MetricRef]] = {}

    def key(self, account: str, region: str, namespace: str, metric_name: str | None) -> str:
        name = _slug(namespace) + (f"--{metric_name}" if metric_name else "")
        return f"{DISCOVERY_PREFIX}/{account}/{region}/{name}.json"

    def get(
        self, account: str, region: str, namespace: str, metric_name: str | None, load: Callable[[], list[MetricRef]]
    ) -> list[MetricRef]:
        key = self.key(account, region, namespace, metric_name)
        if key in self._memo:
            return self._memo[key]
        if self.raw is not None and self.ttl_s > 0 and self.raw.exists(key):
            doc = jsonio.loads(self.raw.get(key))
            age = (self.now() - dt.datetime.fromisoformat(doc["fetched_at"])).total_seconds()
            if 0 <= age < self.ttl_s:
                metrics = [MetricRef(ns, n, tuple((k, v) for k, v in dims)) for ns, n, dims in doc["metrics"]]
                self._memo[key] = metrics
                return metrics
        metrics = load()
        self._memo[key] = metrics
        if self.raw is not None and self.ttl_s > 0:
            doc = {
                "fetched_at": self.now().isoformat(),
                "metrics": [[m.namespace, m.name, [list(d) for d in m.dimensions]] for m in metrics],
            }
            self.raw.put(key, jsonio.dumps(doc))
        return metrics


def checkpoint_key(account: str, region: str, window: Window) -> str:
    return f"{CHECKPOINT_PREFIX}/{account}/{region}/{lake.hour_prefix(window.start.date(), window.start.hour)}.json"


def window_done(raw: lake.Zone, account: str, region: str, window: Window) -> bool:
    return raw.exists(checkpoint_key(account, region, window))


def _slug(namespace: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", namespace.lower()).strip("-")


def collect(
    config: CollectorConfig,
    raw: lake.Zone,
    start: dt.datetime,
    end: dt.datetime,
    *,
    session: Any = None,
    skip_done: bool = False,
    now: Callable[[], dt.datetime] | None = None,
) -> RunSummary:
    """Collect the hour windows covering [start, end) from every configured account and region.

    ``skip_done`` leaves windows that already have a checkpoint alone (catch-up runs, retries); without it
    every window is collected again and overwrites its earlier batches. Errors of one target are recorded
    in the summary (``errors``) after the other targets ran; callers fail the run when there are any.
    """
    windows = hour_windows(start, end)
    summary = RunSummary(start=windows[0].start.isoformat(), end=windows[-1].end.isoformat(), windows=len(windows))
    counter = ApiCounter()
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=config.default_region)
    fast_timestamps(session)
    stats = parse_statistics(config.statistics)
    rfilter = ResourceFilter.parse(config.resource_filter)
    clock = now or (lambda: dt.datetime.now(_UTC))
    cache = DiscoveryCache(raw, config.discovery_ttl_s, clock)
    try:
        targets = resolve_targets(config, session, counter)
    except Exception as e:
        summary.errors.append(f"could not resolve the AWS accounts to collect: {_describe(e)}")
        _finish(summary, counter)
        return summary
    for target in targets:
        summary.targets.append(target.label)
        try:
            _collect_target(target, windows, config, stats, rfilter, raw, cache, counter, summary, skip_done, clock)
        except Exception as e:
            log.exception("collection of %s failed", target.label)
            summary.errors.append(f"{target.label}: {_describe(e)}")
    _finish(summary, counter)
    return summary


def _finish(summary: RunSummary, counter: ApiCounter) -> None:
    summary.calls = dict(sorted(counter.calls.items()))
    summary.retries = counter.retries
    summary.metrics_requested = counter.metrics_requested
    summary.estimated_cost_usd = round(pricing.run_cost(counter.calls, counter.metrics_requested), 6)


def _describe(e: Exception) -> str:
    err = (getattr(e, "response", None) or {}).get("Error") or {}
    if err:
        return f"{err.get('Code')}: {err.get('Message')} (re-run the window once the cause is fixed)"
    return f"{type(e).__name__}: {e}"


def _tagged_entities(clients: Clients, rfilter: ResourceFilter) -> frozenset[str]:
    tagging = clients("resourcegroupstaggingapi")
    out: set[str] = set()
    for key, value in rfilter.tags:
        tf: dict[str, Any] = {"Key": key}
        if value is not None:
            tf["Values"] = [value]
        kw: dict[str, Any] = {"TagFilters": [tf]}
        while True:
            resp = tagging.get_resources(**kw)
            for r in resp.get("ResourceTagMappingList") or []:
                ent = entity_from_arn(r.get("ResourceARN", ""))
                if ent:
                    out.add(ent)
            token = resp.get("PaginationToken")
            if not token:
                break
            kw["PaginationToken"] = token
    return frozenset(out)


def _collect_target(
    target: Target,
    windows: Sequence[Window],
    config: CollectorConfig,
    stats: tuple[str, ...],
    rfilter: ResourceFilter,
    raw: lake.Zone,
    cache: DiscoveryCache,
    counter: ApiCounter,
    summary: RunSummary,
    skip_done: bool,
    clock: Callable[[], dt.datetime],
) -> None:
    todo = [w for w in windows if not (skip_done and window_done(raw, target.account_id, target.region, w))]
    summary.windows_skipped += len(windows) - len(todo)
    if not todo:
        return
    clients = Clients(target, config, counter)
    cw = clients("cloudwatch")

    # 1. discovery (cached), table and resource filter
    tagged = _tagged_entities(clients, rfilter) if rfilter.tags else frozenset()
    listed: list[MetricRef] = []
    for ns in config.namespaces:
        listed += cache.get(target.account_id, target.region, ns, None, lambda ns=ns: list_metrics(cw, ns))
    selected = [m for m in listed if spec_for(m) is not None and rfilter.matches(m, tagged)]
    summary.metrics_discovered += len(listed)
    summary.metrics_collected += len(selected)
    names = _resource_names(selected)
    insights: list[MetricRef] = []
    if config.facts and names["FunctionName"]:
        found = cache.get(
            target.account_id,
            target.region,
            LAMBDA_INSIGHTS_NAMESPACE,
            LAMBDA_INSIGHTS_MEMORY,
            lambda: list_metrics(cw, LAMBDA_INSIGHTS_NAMESPACE, LAMBDA_INSIGHTS_MEMORY),
        )
        insights = [m for m in found if set(m.dims) == {"function_name"} and m.dims["function_name"] in names["FunctionName"]]

    # 2. configuration facts (once per run)
    facts = facts_mod.Facts()
    if config.facts:
        facts = _configuration_facts(clients, names)
        summary.warnings += facts.warnings

    # 3. fetch span by span, write hour by hour
    queries = build_queries([*selected, *insights], lambda m: statistics_for(m, stats))
    for span in spans(todo, config.max_span_hours):
        s0, s1 = span[0].start, span[-1].end
        plans = plan_calls(queries, s0, s1, config.period)
        summary.planned_get_metric_data_calls += len(plans)
        summary.minimum_get_metric_data_calls += lower_bound_calls(len(queries), s0, s1, config.period)
        values: dict[Query, dict[int, float]] = {}
        for plan in plans:
            res = fetch(cw, plan)
            summary.datapoints += res.datapoints
            for idx, vals in res.values.items():
                values.setdefault(plan.queries[idx], {}).update(vals)
        log_minutes: dict[str, dict[int, facts_mod.LogMinute] | None] = {}
        insight_fns = {m.dims["function_name"] for m in insights}
        if config.facts and config.lambda_logs:
            for fn in sorted(names["FunctionName"] - insight_fns):
                mins, warns = facts_mod.lambda_log_minutes(
                    clients("logs"), fn, int(s0.timestamp()), int(s1.timestamp())
                )
                log_minutes[fn] = mins
                summary.warnings += warns
        for w, series in span_series(span, selected, insights, values, stats, config.period, facts, log_minutes):
            _write_window(target, w, series, config, raw, summary, complete=w.end <= clock())


def _resource_names(metrics: Iterable[MetricRef]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"DBInstanceIdentifier": set(), "QueueName": set(), "FunctionName": set()}
    for m in metrics:
        for k in out:
            v = m.dims.get(k)
            if v is not None:
                out[k].add(v)
    return out


def _configuration_facts(clients: Clients, names: dict[str, set[str]]) -> facts_mod.Facts:
    f = facts_mod.Facts()
    if names["DBInstanceIdentifier"]:
        conns, w = facts_mod.rds_max_connections(clients("rds"), names["DBInstanceIdentifier"])
        f.rds = {k: {"MaxConnections": v} for k, v in conns.items()}
        f.warnings += w
    if names["QueueName"]:
        f.sqs, w = facts_mod.sqs_attributes(clients("sqs"), names["QueueName"])
        f.warnings += w
    if names["FunctionName"]:
        f.lambdas, w = facts_mod.lambda_configurations(clients("lambda"), names["FunctionName"])
        f.warnings += w
    return f


def _write_window(
    target: Target,
    w: Window,
    series: list[Series],
    config: CollectorConfig,
    raw: lake.Zone,
    summary: RunSummary,
    *,
    complete: bool = True,
) -> None:
    by_ns: dict[str, list[Series]] = {}
    for s in series:
        by_ns.setdefault(s.namespace, []).append(s)
    prefix = f"{lake.batch_name(w.end, PRODUCER, '')}{target.account_id}-{target.region}-"
    written: list[str] = []
    points = 0
    nbytes = 0
    for ns in sorted(by_ns):
        ordered = sorted(by_ns[ns], key=lambda s: s.sort_key)
        for ci in range(0, len(ordered), config.series_per_batch):
            chunk = ordered[ci : ci + config.series_per_batch]
            data = lake.gzip_bytes(encode_lines(build_requests(target.account_id, target.region, chunk)))
            suffix = f"{target.account_id}-{target.region}-{_slug(ns)}-{ci // config.series_per_batch:03d}"
            key = lake.raw_key(SOURCE, w.start, lake.batch_name(w.end, PRODUCER, suffix))
            raw.put(key, data)
            written.append(key)
            points += sum(len(s.points) for s in chunk)
            nbytes += len(data)
    hour_dir = lake.raw_hour_prefix(SOURCE, w.start.date(), w.start.hour)
    stale = [k for k in raw.list(hour_dir) if k.rsplit("/", 1)[-1].startswith(prefix) and k not in written]
    for k in stale:
        raw.delete(k)
    summary.raw_keys += written
    summary.deleted_keys += stale
    summary.points += points
    summary.bytes += nbytes
    if not complete:  # the hour is not over: its data so far are written, the window is not marked done
        summary.warnings.append(
            f"{target.label} {w.label}: the hour is not over yet; written but not marked done (collect it again later)"
        )
        return
    doc = {
        "account": target.account_id,
        "region": target.region,
        "window_start": w.start.isoformat(),
        "window_end": w.end.isoformat(),
        "keys": written,
        "series": sum(1 for _ in series),
        "points": points,
        "bytes": nbytes,
        "completed_at": dt.datetime.now(_UTC).isoformat(),
    }
    raw.put(checkpoint_key(target.account_id, target.region, w), jsonio.dumps(doc, indent=True))
    summary.windows_collected += 1
