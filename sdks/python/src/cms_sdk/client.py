"""The business-metrics API: batch runs, their sub-stages, market-data feeds, custom gauges and counters.

Every call builds its points on the caller's thread and hands them to the background exporter; it never
blocks on the network and never raises into the caller (mistakes are logged and counted in ``stats()``).
The exceptions are the client's constructor, which reports an unusable configuration, and ``with``
blocks, which re-raise the caller's own exception unchanged after recording it.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import logging
import threading
import time as _time
import weakref
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from cms_sdk import otlp
from cms_sdk._version import __version__
from cms_sdk.config import Config, resolve
from cms_sdk.exporter import Exporter, HttpTransport
from cms_sdk.otlp import Point, is_finite_number, is_integral
from cms_sdk.times import Clock, TimeLike, format_ms, system_clock, to_ns

log = logging.getLogger("cms_sdk")

_perf = _time.perf_counter_ns
ErrorLike = Union[str, BaseException, Type[BaseException]]


def custom_name(name: str) -> str:
    return name if name.startswith("cms.app.") else "cms.app." + name


def _error_type(error: ErrorLike) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, type):
        return error.__name__
    return type(error).__name__


class CmsClient:
    """Publishes business metrics over OTLP/HTTP.

    ``CmsClient()`` (or ``CmsClient.from_env()``) reads ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``CMS_ENVIRONMENT`` and the other variables of
    :mod:`cms_sdk.config`; keyword options override them; ``config_file``/``profile`` select a profile.
    ``environ={}`` ignores the environment. ``clock`` (a callable returning ns since the epoch, e.g.
    :class:`cms_sdk.ManualClock`) replaces the system clock; every call also takes an explicit ``time``.
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        service_name: Optional[str] = None,
        environment: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        service_version: Optional[str] = None,
        resource_attributes: Optional[Mapping[str, Any]] = None,
        profile: Optional[str] = None,
        config_file: Optional[str] = None,
        environ: Optional[Mapping[str, str]] = None,
        clock: Optional[Clock] = None,
        transport: Any = None,
        start: bool = True,
        **options: Any,
    ) -> None:
        explicit: Dict[str, Any] = dict(options)
        explicit.update(
            endpoint=endpoint,
            service_name=service_name,
            environment=environment,
            service_version=service_version,
            resource_attributes=dict(resource_attributes) if resource_attributes else None,
        )
        hdrs = dict(headers or {})
        if api_key:
            hdrs["authorization"] = f"Bearer {api_key}"
        if hdrs:
            explicit["headers"] = hdrs
        self.config: Config = resolve(explicit, environ, config_file, profile)
        self._clock: Clock = clock or system_clock
        c = self.config
        if transport is None:
            transport = HttpTransport(c.url, c.headers, c.timeout_ms / 1000.0, c.compression)
        self._exporter = Exporter(c, otlp.encode_attrs(tuple(self.resource_attributes().items())), transport, self._clock, start)
        self._exporter.self_metrics_source = self._call_stats
        self._calls = 0
        self._call_ns = 0
        self._call_max_ns = 0
        self.invalid = 0
        self._internal = 0
        self._closed = False
        if start:
            ref = weakref.ref(self)
            atexit.register(_close_at_exit, ref)

    @classmethod
    def from_env(cls, **kwargs: Any) -> CmsClient:
        """A client configured from the environment (and the config file it names), as ``CmsClient()``."""
        return cls(**kwargs)

    # -- resource ----------------------------------------------------------------------------------
    def resource_attributes(self) -> Dict[str, Any]:
        c = self.config
        res: Dict[str, Any] = {"service.name": c.service_name}
        if c.service_version:
            res["service.version"] = c.service_version
        res["cms.environment"] = c.environment
        res["telemetry.sdk.name"] = "cms-sdk"
        res["telemetry.sdk.language"] = "python"
        res["telemetry.sdk.version"] = __version__
        for k, v in (c.resource_attributes or {}).items():
            res.setdefault(k, v)
        return res

    # -- plumbing used by runs, stages and feeds ---------------------------------------------------
    def _now(self, time: Optional[TimeLike]) -> int:
        return self._clock() if time is None else to_ns(time)

    def _emit(self, points: Sequence[Point]) -> None:
        self._exporter.enqueue(points)

    def _account(self, t0: int) -> None:
        d = _perf() - t0
        self._calls += 1
        self._call_ns += d
        if d > self._call_max_ns:
            self._call_max_ns = d

    def _internal_error(self, e: BaseException) -> None:
        self._internal += 1
        self._exporter.last_error = f"{type(e).__name__}: {e}"
        log.warning("cms-sdk: call ignored (%s: %s)", type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))

    def _invalid(self, what: str) -> None:
        self.invalid += 1
        log.debug("cms-sdk: invalid value not emitted: %s", what)

    def _call_stats(self) -> Dict[str, float]:
        return {"avg_call_overhead_us": (self._call_ns / self._calls / 1000.0) if self._calls else 0.0}

    # -- public API --------------------------------------------------------------------------------
    def run(
        self,
        asset_class: str,
        job: str,
        run_id: Optional[str] = None,
        scheduled_start: Union[str, _dt.datetime, None] = None,
        time: Optional[TimeLike] = None,
    ) -> Run:
        """Start a batch run now (or at ``time``); use it as a context manager or end it with
        ``finish()``/``fail()``. ``run_id`` defaults to ``<asset_class>.<job>.<start time>``."""
        t0 = _perf()
        try:
            r = Run(self, asset_class, job, run_id, scheduled_start, self._now(time))
        except Exception as e:
            self._internal_error(e)
            r = Run._dead(self)
        self._account(t0)
        return r

    def feed(self, feed: str, provider: Optional[str] = None) -> Feed:
        """A handle on a market-data feed, e.g. ``client.feed("bloomberg-bpipe", provider="bloomberg")``."""
        return Feed(self, feed, provider)

    def gauge(
        self,
        name: str,
        value: float,
        attributes: Optional[Mapping[str, Any]] = None,
        unit: str = "1",
        time: Optional[TimeLike] = None,
    ) -> None:
        """A custom gauge ``cms.app.<name>`` (the prefix is added when missing)."""
        t0 = _perf()
        try:
            if not is_finite_number(value):
                self._invalid(f"gauge {name}={value!r}")
            else:
                attrs = tuple(attributes.items()) if attributes else ()
                self._emit((Point(custom_name(name), unit, "gauge", attrs, self._now(time), None, value, True),))
        except Exception as e:
            self._internal_error(e)
        self._account(t0)

    def counter(
        self,
        name: str,
        value: float = 1,
        attributes: Optional[Mapping[str, Any]] = None,
        unit: str = "1",
        start_time: Optional[TimeLike] = None,
        time: Optional[TimeLike] = None,
    ) -> None:
        """A custom counter increment (delta, monotonic sum) ``cms.app.<name>``; negative increments are ignored."""
        t0 = _perf()
        try:
            if not is_finite_number(value) or value < 0:
                self._invalid(f"counter {name}={value!r}")
            else:
                t = self._now(time)
                st = to_ns(start_time) if start_time is not None else t
                attrs = tuple(attributes.items()) if attributes else ()
                self._emit((Point(custom_name(name), unit, "sum", attrs, t, st, value, False),))
        except Exception as e:
            self._internal_error(e)
        self._account(t0)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export everything queued; True when it was done within ``timeout`` seconds."""
        try:
            return self._exporter.flush(timeout)
        except Exception as e:
            self._internal_error(e)
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Flush (up to ``timeout`` s), stop the exporter and spool what could not be delivered."""
        if self._closed:
            return
        self._closed = True
        try:
            self._exporter.close(timeout)
        except Exception as e:
            self._internal_error(e)

    shutdown = close

    def __enter__(self) -> CmsClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def drain(self) -> Dict[str, Any]:
        """Take everything queued as one OTLP/JSON request without sending it (tests, conformance)."""
        q = self._exporter.queue
        points: List[Point] = []
        while q:
            try:
                points.append(q.popleft())
            except IndexError:
                break
        return otlp.encode_request(self._exporter.resource, points)

    def stats(self) -> Dict[str, Any]:
        """The SDK's own figures: queue, drops, exports, retries, spool, export latency, per-call overhead."""
        s = self._exporter.stats()
        s["invalid"] = self.invalid
        s["calls"] = self._calls
        s["avg_call_overhead_us"] = round(self._call_ns / self._calls / 1000.0, 3) if self._calls else 0.0
        s["max_call_overhead_us"] = round(self._call_max_ns / 1000.0, 3)
        s["internal_errors"] += self._internal
        return s


def _close_at_exit(ref: weakref.ref[CmsClient]) -> None:
    client = ref()
    if client is not None:
        client.close(timeout=5.0)


_S = TypeVar("_S", bound="_Span")


class _Span:
    """What a run and a stage attempt share: a start, record counts, and one end (success or failure).

    ``_metric`` names the point family (``cms.batch.run`` or ``cms.stage.run``); ``_base`` holds the
    attributes every point of the span carries."""

    _metric = ""

    def _begin(self, client: CmsClient, base: Tuple[Tuple[str, Any], ...], start_ns: int) -> None:
        self._client = client
        self.start_ns = start_ns
        self._base = base
        self._records: Optional[int] = None
        self._bytes: Optional[int] = None
        self._lock = threading.Lock()
        self.ended = False
        self.status: Optional[str] = None

    def _begin_dead(self, client: CmsClient) -> None:
        """A span that emits nothing (its start failed); calls on it are harmless."""
        self._begin(client, (), 0)
        self.ended = True

    def _count(self, n: Any, what: str) -> Optional[int]:
        if not is_finite_number(n) or n < 0 or not is_integral(n):
            self._client._invalid(f"{what}={n!r}")
            return None
        return int(n)

    def records(self: _S, n: int) -> _S:
        """Set the records processed."""
        v = self._count(n, "records")
        if v is not None:
            self._records = v
        return self

    def add_records(self: _S, n: int) -> _S:
        v = self._count(n, "records")
        if v is not None:
            self._records = (self._records or 0) + v
        return self

    # -- ending ------------------------------------------------------------------------------------
    def finish(self, time: Optional[TimeLike] = None) -> None:
        """End successfully (does nothing if it already ended)."""
        self._end(None, time)

    def fail(self, error: ErrorLike = "Error", time: Optional[TimeLike] = None) -> None:
        """End as failed with an error type (a name, an exception or an exception class)."""
        self._end(_error_type(error), time)

    def close(self, time: Optional[TimeLike] = None) -> None:
        """Leave the scope: success unless it already ended."""
        self._end(None, time)

    def _end(self, error_type: Optional[str], time: Optional[TimeLike]) -> None:
        c = self._client
        t0 = _perf()
        try:
            with self._lock:
                if self.ended:
                    c._account(t0)
                    return
                self.ended = True
            t = c._now(time)
            status = "failed" if error_type is not None else "success"
            self.status = status
            ws = self._base + (("cms.status", status),)
            s = self.start_ns
            m = self._metric
            pts = [
                Point(m + ".finished", "{run}", "sum", ws + (("cms.error_type", error_type or ""),), t, s, 1, False),
                Point(m + ".duration", "s", "gauge", ws, t, s, (t - s) / 1e9, True),
            ]
            if self._records is not None:
                pts.append(Point(m + ".records", "{record}", "sum", ws, t, s, self._records, False))
            if self._bytes is not None:
                pts.append(Point(m + ".bytes", "By", "sum", ws, t, s, self._bytes, False))
            c._emit(pts)
        except Exception as e:
            c._internal_error(e)
        c._account(t0)

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:
            self._end(exc_type.__name__, None)
        else:
            self.close()
        return False  # the caller's exception propagates unchanged


class Run(_Span):
    """A batch run of ``job`` for ``asset_class``; emits ``cms.batch.run.*`` points."""

    _metric = "cms.batch.run"

    def __init__(
        self,
        client: CmsClient,
        asset_class: str,
        job: str,
        run_id: Optional[str],
        scheduled_start: Union[str, _dt.datetime, None],
        start_ns: int,
    ) -> None:
        self.run_id = run_id or f"{asset_class}.{job}.{format_ms(start_ns)}"
        base: List[Tuple[str, Any]] = [("cms.asset_class", asset_class), ("cms.job", job), ("cms.run_id", self.run_id)]
        if scheduled_start is not None:
            sched = scheduled_start if isinstance(scheduled_start, str) else format_ms(to_ns(scheduled_start))
            base.append(("cms.scheduled_start", sched))
        self._begin(client, tuple(base), start_ns)
        self._stage_base = self._base[:3]
        self._attempts: Dict[str, int] = {}
        client._emit((Point("cms.batch.run.started", "{run}", "sum", self._base, start_ns, start_ns, 1, False),))

    @classmethod
    def _dead(cls, client: CmsClient) -> Run:
        """A run that emits nothing (its start failed); calls on it are harmless."""
        r = cls.__new__(cls)
        r._begin_dead(client)
        r.run_id = ""
        r._stage_base = ()
        r._attempts = {}
        return r

    # -- totals ------------------------------------------------------------------------------------
    def bytes(self, n: int) -> Run:
        """Set the bytes processed by the run."""
        v = self._count(n, "bytes")
        if v is not None:
            self._bytes = v
        return self

    def add_bytes(self, n: int) -> Run:
        v = self._count(n, "bytes")
        if v is not None:
            self._bytes = (self._bytes or 0) + v
        return self

    # -- stages ------------------------------------------------------------------------------------
    def stage(
        self,
        name: str,
        type: Optional[str] = None,
        depends_on: Optional[Iterable[str]] = None,
        attempt: Optional[int] = None,
        time: Optional[TimeLike] = None,
    ) -> Stage:
        """Start an attempt of sub-stage ``name`` (type e.g. ``validation``, ``loading``); ``attempt``
        defaults to one more than the highest attempt of that stage already started in this run."""
        c = self._client
        t0 = _perf()
        try:
            with self._lock:
                prev = self._attempts.get(name, 0)
                att = int(attempt) if attempt else prev + 1
                self._attempts[name] = max(prev, att)
            st = Stage(self, name, type, list(depends_on) if depends_on is not None else None, att, c._now(time))
        except Exception as e:
            c._internal_error(e)
            st = Stage._dead(self)
        c._account(t0)
        return st


class Stage(_Span):
    """One attempt of a critical sub-stage inside a run; emits ``cms.stage.run.*`` points."""

    _metric = "cms.stage.run"

    def __init__(
        self, run: Run, name: str, stage_type: Optional[str], depends_on: Optional[List[str]], attempt: int, start_ns: int
    ) -> None:
        self.run = run
        self.name = name
        self.attempt = attempt
        base: List[Tuple[str, Any]] = [*run._stage_base, ("cms.stage", name)]
        if stage_type is not None:
            base.append(("cms.stage_type", stage_type))
        base += [("cms.attempt", attempt), ("cms.retries", attempt - 1)]
        if depends_on is not None:
            base.append(("cms.stage_depends_on", ",".join(depends_on)))
        self._begin(run._client, tuple(base), start_ns)
        self._client._emit((Point("cms.stage.run.started", "{run}", "sum", self._base, start_ns, start_ns, 1, False),))

    @classmethod
    def _dead(cls, run: Run) -> Stage:
        st = cls.__new__(cls)
        st._begin_dead(run._client)
        st.run = run
        st.name = ""
        st.attempt = 0
        return st


class Feed:
    """A market-data feed; ``heartbeat()`` once a minute with its connectivity and quality figures."""

    _GAUGES = (("latency_ms", "cms.feed.latency", "ms"), ("staleness_s", "cms.feed.staleness", "s"))
    _SUMS = (
        ("messages", "cms.feed.messages", "{message}"),
        ("missing_fields", "cms.feed.missing_fields", "{field}"),
        ("invalid_values", "cms.feed.invalid_values", "{value}"),
    )

    def __init__(self, client: CmsClient, feed: str, provider: Optional[str]) -> None:
        self._client = client
        self.feed = feed
        self.provider = provider
        attrs: List[Tuple[str, Any]] = [("cms.feed", feed)]
        if provider is not None:
            attrs.append(("cms.provider", provider))
        self._attrs = tuple(attrs)

    def heartbeat(
        self,
        up: bool,
        latency_ms: Optional[float] = None,
        staleness_s: Optional[float] = None,
        messages: Optional[int] = None,
        missing_fields: Optional[int] = None,
        invalid_values: Optional[int] = None,
        interval_s: float = 60,
        time: Optional[TimeLike] = None,
    ) -> None:
        """Connectivity (``up``) plus whichever figures are given; sums cover the last ``interval_s``."""
        c = self._client
        t0 = _perf()
        try:
            t = c._now(time)
            a = self._attrs
            pts = [Point("cms.feed.up", "1", "gauge", a, t, None, 1 if up else 0, False)]
            vals = {"latency_ms": latency_ms, "staleness_s": staleness_s}
            for key, name, unit in self._GAUGES:
                v = vals[key]
                if v is not None:
                    if is_finite_number(v):
                        pts.append(Point(name, unit, "gauge", a, t, None, v, True))
                    else:
                        c._invalid(f"{name}={v!r}")
            start = t - int(interval_s * 1_000_000_000)
            counts = {"messages": messages, "missing_fields": missing_fields, "invalid_values": invalid_values}
            for key, name, unit in self._SUMS:
                v = counts[key]
                if v is not None:
                    if is_finite_number(v) and v >= 0:
                        pts.append(Point(name, unit, "sum", a, t, start, v, False))
                    else:
                        c._invalid(f"{name}={v!r}")
            c._emit(pts)
        except Exception as e:
            c._internal_error(e)
        c._account(t0)
