"""CloudWatch API calls: paged ListMetrics, planned GetMetricData with NextToken, and call counting.

Retries are botocore's own (standard or adaptive mode, exponential backoff with jitter on throttling);
:class:`ApiCounter` counts calls (one per API call as the caller sees it) and attempts (one per HTTP
request, so retries show) by hooking botocore's events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cms_dagster.collectors.metrics import MetricRef
from cms_dagster.collectors.planning import CallPlan


@dataclass
class ApiCounter:
    """Calls and HTTP attempts by operation name, and GetMetricData metrics requested."""

    calls: Counter = field(default_factory=Counter)
    attempts: Counter = field(default_factory=Counter)
    metrics_requested: int = 0

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self._on_call)
        client.meta.events.register("before-send", self._on_send)
        return client

    def _on_call(self, params: dict, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "GetMetricData":
            self.metrics_requested += len(params.get("MetricDataQueries") or [])

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        self.attempts[event_name.rsplit(".", 1)[-1]] += 1

    @property
    def retries(self) -> int:
        return max(0, sum(self.attempts.values()) - sum(self.calls.values()))


def list_metrics(cw: Any, namespace: str, metric_name: str | None = None) -> list[MetricRef]:
    """Every metric of a namespace (paged: 500 per page), duplicates removed, in listing order."""
    kw: dict[str, Any] = {"Namespace": namespace}
    if metric_name:
        kw["MetricName"] = metric_name
    seen: set = set()
    out: list[MetricRef] = []
    while True:
        resp = cw.list_metrics(**kw)
        for m in resp.get("Metrics") or []:
            ref = MetricRef.from_api(m)
            if ref.series_key in seen:
                continue
            seen.add(ref.series_key)
            out.append(ref)
        token = resp.get("NextToken")
        if not token:
            return out
        kw["NextToken"] = token


class MetricDataError(RuntimeError):
    pass


@dataclass
class CallResult:
    values: dict[int, dict[int, float]]  # query index -> {period start (epoch s) -> value}
    datapoints: int
    pages: int


def fetch(cw: Any, plan: CallPlan) -> CallResult:
    """Run one planned GetMetricData call, following NextToken until every query is complete."""
    req = plan.request()
    values: dict[int, dict[int, float]] = {}
    n = 0
    pages = 0
    while True:
        resp = cw.get_metric_data(**req)
        pages += 1
        for r in resp.get("MetricDataResults") or []:
            status = r.get("StatusCode", "Complete")
            if status in ("InternalError", "Forbidden"):
                q = plan.queries[int(r["Id"][1:])]
                raise MetricDataError(
                    f"GetMetricData answered {status} for {q.metric.namespace} {q.metric.name} {q.stat} "
                    f"{dict(q.metric.dimensions)}: {r.get('Messages') or ''} (check cloudwatch:GetMetricData "
                    "permissions of the collector's role, then re-run the window)"
                )
            idx = int(r["Id"][1:])
            vals = values.setdefault(idx, {})
            for t, v in zip(r.get("Timestamps") or [], r.get("Values") or [], strict=True):
                vals[int(t.timestamp())] = float(v)
                n += 1
        token = resp.get("NextToken")
        if not token:
            return CallResult(values, n, pages)
        req["NextToken"] = token


def _timestamp(value: Any) -> Any:
    import datetime as dt

    from botocore.utils import parse_timestamp

    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    return parse_timestamp(value)


def fast_timestamps(session: Any) -> Any:
    """Parse epoch timestamps of responses straight to UTC datetimes on clients made from ``session``.

    botocore's default converts every timestamp to the local time zone through dateutil (about 17 us
    each): for GetMetricData's 30,000 timestamps per call that is most of the client-side time.
    """
    bs = getattr(session, "_session", session)
    bs.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return session
