"""The generic ranking on small service graphs whose root cause is known."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from cms_dagster.rca import Candidate, RcaWarning, rank
from cms_dagster.rca.engine import NO_SURE_MOVE_METHOD, best_explainers

T0 = pd.Timestamp("2026-11-27T08:00:00Z")
HISTORY = 240
INCIDENT = 60
START = T0 + pd.Timedelta(minutes=HISTORY)


def metrics(spec: dict[str, dict[str, tuple]], seed: int = 0) -> pd.DataFrame:
    """spec: node -> metric -> (level, noise share, factor after the fault, minutes after START it begins)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(T0, periods=HISTORY + INCIDENT, freq="min")
    frames = []
    for node, series in spec.items():
        for metric, (level, noise, factor, delay) in series.items():
            v = level * (1 + noise * rng.standard_normal(len(times)))
            v[HISTORY + delay :] *= factor
            frames.append(pd.DataFrame({"time": times, "node": node, "metric": metric, "value": v}))
    return pd.concat(frames, ignore_index=True)


def quiet(level: float = 100.0) -> tuple:
    return (level, 0.02, 1.0, 0)


def test_chain_root_is_the_deepest_anomalous_node() -> None:
    # web -> api -> db -> disk; the db breaks: web, api and db move, disk does not
    spec = {
        "web": {"latency": (200, 0.02, 2.0, 3), "errors": quiet(5)},
        "api": {"latency": (100, 0.02, 2.5, 2), "cpu": quiet(40)},
        "db": {"latency": (10, 0.02, 3.0, 1), "connections": quiet(50)},
        "disk": {"iops": quiet(300)},
    }
    edges = [("web", "api"), ("api", "db"), ("db", "disk")]
    ranked = rank(metrics(spec), edges, START)
    assert ranked[0].node == "db"
    assert set(ranked[0].explains) == {"api", "web"}
    assert [c.rank for c in ranked] == list(range(1, len(ranked) + 1))
    by_node = {c.node: c for c in ranked}
    assert "db" in by_node["web"].explained_by
    assert not by_node["disk"].anomalous


def test_root_less_anomalous_than_its_dependents_still_ranks_first() -> None:
    # the cache's hit latency rises 40 %, the services calling it slow down ten- and twenty-fold
    spec = {
        "cache": {"latency": (5, 0.03, 1.4, 0)},
        "checkout": {"latency": (150, 0.02, 10.0, 1)},
        "cart": {"latency": (80, 0.02, 20.0, 1)},
        "frontend": {"latency": (300, 0.02, 8.0, 2)},
    }
    edges = [("checkout", "cache"), ("cart", "cache"), ("frontend", "checkout"), ("frontend", "cart")]
    ranked = rank(metrics(spec), edges, START)
    by_node = {c.node: c for c in ranked}
    assert by_node["cart"].strength > 10 * by_node["cache"].strength
    assert ranked[0].node == "cache"


def test_fan_in_shared_dependency_explains_all_callers() -> None:
    spec = {f"svc{i}": {"latency": (100, 0.02, 3.0, 2)} for i in range(4)}
    spec["queue"] = {"depth": (1000, 0.03, 5.0, 0), "age": (20, 0.05, 4.0, 0)}
    edges = [(f"svc{i}", "queue") for i in range(4)]
    ranked = rank(metrics(spec), edges, START)
    assert ranked[0].node == "queue"
    assert set(ranked[0].explains) == {f"svc{i}" for i in range(4)}


def test_fan_out_caller_with_healthy_dependencies_is_the_root() -> None:
    # the gateway depends on three healthy services and breaks on its own
    spec = {
        "gateway": {"cpu": (30, 0.03, 3.0, 0), "latency": (50, 0.02, 4.0, 1)},
        "users": {"latency": quiet()},
        "orders": {"latency": quiet()},
        "prices": {"latency": quiet()},
    }
    edges = [("gateway", "users"), ("gateway", "orders"), ("gateway", "prices")]
    ranked = rank(metrics(spec), edges, START)
    assert ranked[0].node == "gateway"
    assert ranked[0].explained_by == ()
    assert all(not c.anomalous for c in ranked[1:])


def test_target_limits_candidates_to_what_it_depends_on() -> None:
    # two incidents at once: the db behind "reports" and an unrelated, stronger one on "billing"
    spec = {
        "reports": {"latency": (100, 0.02, 2.0, 2)},
        "db": {"latency": (10, 0.02, 3.0, 0)},
        "billing": {"errors": (10, 0.02, 30.0, 0)},
        "ledger": {"latency": quiet()},
    }
    edges = [("reports", "db"), ("billing", "ledger")]
    everything = rank(metrics(spec), edges, START)
    assert {c.node for c in everything} == {"reports", "db", "billing", "ledger"}
    scoped = rank(metrics(spec), edges, START, target="reports")
    assert [c.node for c in scoped] == ["db", "reports"]


def test_earlier_onset_wins_between_two_unrelated_anomalies() -> None:
    spec = {
        "early": {"latency": (100, 0.02, 2.0, 0)},
        "late": {"latency": (100, 0.02, 2.0, 30)},
    }
    ranked = rank(metrics(spec), None, START)
    assert [c.node for c in ranked] == ["early", "late"]
    assert ranked[0].onset < ranked[1].onset


def test_a_single_spike_does_not_make_a_root_cause() -> None:
    spec = {"db": {"latency": (10, 0.02, 2.0, 5)}, "noisy": {"latency": quiet()}}
    frame = metrics(spec)
    spike = (frame["node"] == "noisy") & (frame["time"] == START + pd.Timedelta(minutes=1))
    frame.loc[spike, "value"] = 10_000.0  # one point, a hundred times the level
    ranked = rank(frame, None, START)
    assert ranked[0].node == "db"
    assert not {c.node: c for c in ranked}["noisy"].anomalous


def test_evidence_says_which_series_moved_when_and_by_how_much() -> None:
    spec = {"db": {"latency": (10, 0.02, 3.0, 10), "cpu": quiet(40)}, "api": {"latency": quiet()}}
    ranked = rank(metrics(spec), [("api", "db")], START, top_k=1)
    assert len(ranked) == 1
    (ev,) = ranked[0].evidence
    assert (ev.node, ev.metric, ev.direction) == ("db", "latency", "up")
    assert abs(ev.baseline - 10) < 0.5
    assert abs(ev.observed - 30) < 2
    assert ev.z > 20
    fault = START + pd.Timedelta(minutes=10)
    assert fault - pd.Timedelta(minutes=2) <= ev.moved_at <= fault + pd.Timedelta(minutes=1)
    doc = ranked[0].to_dict()
    assert doc["evidence"][0]["moved_at"].endswith("Z")


def test_without_a_graph_the_strongest_sustained_move_ranks_first() -> None:
    spec = {"a": {"m": (100, 0.02, 1.3, 0)}, "b": {"m": (100, 0.02, 3.0, 0)}, "c": {"m": quiet()}}
    ranked = rank(metrics(spec), [], START)
    assert [c.node for c in ranked][:2] == ["b", "a"]


def test_drops_count_as_moves_too() -> None:
    spec = {"feed": {"messages": (5000, 0.03, 0.2, 0)}, "consumer": {"lag": quiet()}}
    ranked = rank(metrics(spec), [("consumer", "feed")], START)
    assert ranked[0].node == "feed"
    assert ranked[0].evidence[0].direction == "down"


def test_graph_nodes_without_metrics_warn_but_still_link() -> None:
    # api -> lb (no metrics) -> db: the db still explains the api through the load balancer
    spec = {"api": {"latency": (100, 0.02, 3.0, 2)}, "db": {"latency": (10, 0.02, 3.0, 0)}}
    with pytest.warns(RcaWarning, match="lb"):
        ranked = rank(metrics(spec), [("api", "lb"), ("lb", "db")], START)
    assert ranked[0].node == "db"
    assert ranked[0].explains == ("api",)


def test_graph_as_dataframe_and_epoch_second_times() -> None:
    spec = {"api": {"latency": (100, 0.02, 3.0, 2)}, "db": {"latency": (10, 0.02, 3.0, 0)}}
    frame = metrics(spec)
    frame["time"] = (frame["time"] - pd.Timestamp("1970-01-01T00:00:00Z")) // pd.Timedelta(seconds=1)
    graph = pd.DataFrame({"source": ["api"], "target": ["db"]})
    ranked = rank(frame, graph, START.timestamp())
    assert ranked[0].node == "db"


def test_sparse_counts_that_often_tick_are_not_anomalies() -> None:
    rng = np.random.default_rng(3)
    times = pd.date_range(T0, periods=HISTORY + INCIDENT, freq="min")
    restarts = rng.poisson(0.1, len(times)).astype(float)  # mostly 0, a 1 or 2 now and then
    restarts[HISTORY + 5] = max(restarts[:HISTORY].max(), 1)  # the incident sees nothing new
    frame = pd.concat(
        [
            pd.DataFrame({"time": times, "node": "pods", "metric": "restarts", "value": restarts}),
            metrics({"db": {"latency": (10, 0.02, 3.0, 0)}}),
        ],
        ignore_index=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranked = rank(frame, None, START)
    assert ranked[0].node == "db"
    assert not {c.node: c for c in ranked}["pods"].anomalous


def test_first_failure_after_a_clean_history_is_an_anomaly() -> None:
    times = pd.date_range(T0, periods=HISTORY + INCIDENT, freq="min")
    failed = np.zeros(len(times))
    failed[HISTORY + 3 :] = 1.0
    frame = pd.DataFrame({"time": times, "node": "batch", "metric": "failed", "value": failed})
    ranked = rank(frame, None, START)
    assert ranked[0].anomalous
    assert ranked[0].evidence[0].observed == 1.0
    assert ranked[0].evidence[0].baseline == 0.0


def test_a_few_points_off_a_ratio_that_never_left_its_bound_is_a_sure_move() -> None:
    # checkout's availability, at 100 % for the whole history, drops 3 points (its caller, web, 1.5); an
    # unrelated service's latency shifts by 6 of its sigmas at the same time. Measured against 1 % of 100 the
    # drop would sit at the threshold, below the shift; a first departure from a constant history is sure.
    times = pd.date_range(T0, periods=HISTORY + INCIDENT, freq="min")

    def availability(node: str, drop: float) -> pd.DataFrame:
        value = np.full(len(times), 100.0)
        value[HISTORY:] -= drop
        return pd.DataFrame({"time": times, "node": node, "metric": "availability", "value": value})

    shifted = metrics({"search": {"latency": (100, 0.02, 1.12, 0)}, "web": {"latency": quiet()}})
    frame = pd.concat([availability("checkout", 3.0), availability("web", 1.5), shifted], ignore_index=True)
    edges = [("web", "checkout"), ("web", "search")]
    ranked = rank(frame, edges, START)
    assert ranked[0].node == "checkout"
    by_node = {c.node: c for c in ranked}
    assert by_node["search"].anomalous  # the shift is a move too, only a less sure one
    assert "checkout" in by_node["web"].explained_by
    # a value that differs from the history's only by rounding is no departure
    rounding = availability("checkout", 1e-6)
    after_rounding = {c.node: c for c in rank(pd.concat([rounding, shifted], ignore_index=True), edges, START)}
    assert not after_rounding["checkout"].anomalous


def test_end_and_baseline_window_are_respected() -> None:
    spec = {"db": {"latency": (10, 0.02, 3.0, 40)}, "api": {"latency": quiet()}}
    # the fault starts 40 minutes in: a window ending at 20 minutes sees nothing
    with pytest.warns(RcaWarning, match="no candidate moved surely"):
        ranked = rank(metrics(spec), None, START, end=START + pd.Timedelta(minutes=20), baseline="2h")
    assert not any(c.anomalous for c in ranked)


def test_without_a_sure_move_the_candidates_are_ranked_by_standardised_deviation_and_it_says_so() -> None:
    # db's latency rises about 4 of its sigmas (a move, not a sure one); nothing else moves. The graph would only order
    # doubtful moves: the ranking is the standardised deviation's, no node is called anomalous, and it warns.
    spec = {"web": {"latency": quiet()}, "api": {"latency": quiet()}, "db": {"latency": (10, 0.02, 1.05, 0)}}
    with pytest.warns(RcaWarning, match="no candidate moved surely"):
        ranked = rank(metrics(spec, seed=4), [("web", "api"), ("api", "db")], START, target="web")
    assert [c.node for c in ranked][0] == "db"
    assert all(c.method == NO_SURE_MOVE_METHOD and not c.anomalous for c in ranked)
    assert ranked[0].score == pytest.approx(abs(ranked[0].evidence[0].z))
    # a sure move (8 sigmas) keeps the graph's ranking
    spec["db"]["latency"] = (10, 0.02, 1.16, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sure = rank(metrics(spec, seed=4), [("web", "api"), ("api", "db")], START, target="web")
    assert sure[0].node == "db" and sure[0].method == "graph" and sure[0].anomalous


def _coarse_incident(seed: int = 3) -> tuple[pd.DataFrame, list[tuple[str, str]], pd.Timestamp]:
    """5-minute points, 600 of history and 3 of incident (every move lands on the first incident point).

    In the history the service's latency follows its database's (a shared load drives both), and the front
    end's follows the service's. In the incident the service breaks on its own; the database, which it
    calls, sees its request count halve at the same point (an effect of the broken caller, not a cause)."""
    rng = np.random.default_rng(seed)
    n_hist, n_inc = 600, 3
    n = n_hist + n_inc
    times = pd.date_range("2026-11-27T00:00:00Z", periods=n, freq="5min")
    load = rng.normal(0, 1, n)
    db_latency = 10 + 2 * load + rng.normal(0, 0.3, n)
    db_requests = 1000 + 50 * load + rng.normal(0, 10, n)
    svc_latency = 50 + 3 * (db_latency - 10) + rng.normal(0, 1, n)
    svc_latency[n_hist:] += 150  # the service's own fault, a larger move than the database's
    db_requests[n_hist:] *= 0.5  # fewer calls reach the database
    front_latency = 80 + (svc_latency - 50) + rng.normal(0, 1, n)
    frames = [
        pd.DataFrame({"time": times, "node": node, "metric": metric, "value": values})
        for node, metric, values in [
            ("db", "latency", db_latency),
            ("db", "requests", db_requests),
            ("svc", "latency", svc_latency),
            ("front", "latency", front_latency),
        ]
    ]
    edges = [("front", "svc"), ("svc", "db")]
    return pd.concat(frames, ignore_index=True), edges, times[n_hist]


def test_a_dependency_that_moved_at_the_same_point_does_not_explain_a_break_its_history_cannot_predict() -> None:
    frame, edges, start = _coarse_incident()
    ranked = rank(frame, edges, start, target="front")
    by_node = {c.node: c for c in ranked}
    assert by_node["db"].anomalous and by_node["db"].onset == by_node["svc"].onset  # a tie in time
    assert ranked[0].node == "svc"
    assert "db" not in ranked[0].explained_by
    # the front end only passes the service's slowdown on: its history predicts it from the service
    assert by_node["front"].strength > by_node["svc"].strength
    assert by_node["front"].score < 0.1 * ranked[0].score


def _five_minute_frame(series: dict[tuple[str, str], np.ndarray], start_index: int) -> tuple[pd.DataFrame, pd.Timestamp]:
    times = pd.date_range("2026-11-27T00:00:00Z", periods=len(next(iter(series.values()))), freq="5min")
    frames = [
        pd.DataFrame({"time": times, "node": node, "metric": metric, "value": values})
        for (node, metric), values in series.items()
    ]
    return pd.concat(frames, ignore_index=True), times[start_index]


def test_a_service_whose_fault_reaches_several_callers_beats_a_leaf_mirroring_it_with_a_larger_move() -> None:
    # front calls svc and lb (the load balancer's own view of svc, a leaf); a batch client calls svc too.
    # svc slows down; lb shows the same slowdown, larger; front and the client inherit it.
    rng = np.random.default_rng(5)
    n_hist, n_inc = 400, 3
    n = n_hist + n_inc
    svc = 10 + rng.normal(0, 0.5, n)
    lb = 12 + rng.normal(0, 0.5, n)
    svc[n_hist:] += 20
    lb[n_hist:] += 30
    front = 50 + 0.5 * (svc - 10) + 0.5 * (lb - 12) + rng.normal(0, 0.5, n)
    client = 20 + (svc - 10) + rng.normal(0, 0.5, n)
    frame, start = _five_minute_frame(
        {("svc", "latency"): svc, ("lb", "latency"): lb, ("front", "latency"): front, ("client", "latency"): client},
        n_hist,
    )
    edges = [("front", "svc"), ("front", "lb"), ("client", "svc")]
    ranked = rank(frame, edges, start)
    by_node = {c.node: c for c in ranked}
    assert by_node["lb"].strength > by_node["svc"].strength  # the larger move is the mirror's
    assert ranked[0].node == "svc"


def test_with_two_points_of_history_only_a_move_beyond_its_peers_counts() -> None:
    # twelve services deployed two points before the incident wobble by a few per cent; one doubles. The rest of
    # the estate has a long history (so the ranking's models run) and does not move.
    rng = np.random.default_rng(11)
    n_hist, n = 40, 43
    series = {}
    for i in range(12):
        level = 100.0 * (i + 1)
        series[(f"svc{i}", "latency")] = level * (1 + rng.normal(0, 0.03, n))
    series[("svc3", "latency")][n_hist:] *= 2.0
    for i in range(13):
        series[(f"db{i}", "cpu")] = 50 * (1 + rng.normal(0, 0.03, n))
    frame, start = _five_minute_frame(series, n_hist)
    times = sorted(frame["time"].unique())
    new = frame["node"].str.startswith("svc") & (frame["time"] < times[n_hist - 2])
    frame = frame[~new]
    edges = [("front", f"svc{i}") for i in range(12)] + [(f"svc{i}", f"db{i}") for i in range(12)]
    with pytest.warns(RcaWarning, match="front"):
        ranked = rank(frame, edges, start)
    assert ranked[0].node == "svc3" and ranked[0].method == "graph"
    assert [c.node for c in ranked if c.anomalous] == ["svc3"]


def test_too_short_a_history_everywhere_ranks_by_standardised_deviation_and_says_so() -> None:
    # one point of history for every series: no scale, fit or change point is possible, so the ranking is the
    # standardised deviation's (a flat history is ordered by the size of its move) and it warns
    values = {
        ("front", "latency"): [100.0, 103.0, 101.0, 104.0],
        ("svc", "availability"): [100.0, 97.0, 97.0, 95.0],
        ("cache", "latency"): [5.0, 5.5, 5.4, 5.6],
        ("other", "latency"): [1.0, 9.0, 9.0, 9.0],
    }
    frame, start = _five_minute_frame({k: np.array(v) for k, v in values.items()}, 1)
    with pytest.warns(RcaWarning, match="too short.*standardised deviation"):
        ranked = rank(frame, [("front", "svc"), ("front", "cache")], start, target="front")
    assert [c.node for c in ranked] == ["svc", "front", "cache"]  # 'other' is not below the target
    assert all(c.method == "standardised deviation" and not c.anomalous for c in ranked)
    assert ranked[0].evidence[0].metric == "availability" and ranked[0].evidence[0].direction == "down"
    assert ranked[0].to_dict()["method"] == "standardised deviation"
    with pytest.warns(RcaWarning):
        everything = rank(frame, [("front", "svc"), ("front", "cache")], start)
    assert [c.node for c in everything] == ["other", "svc", "front", "cache"]


def test_a_departure_from_a_long_constant_history_scores_its_length() -> None:
    # svc's error count, 0 through 400 points of history, reads 2 in the incident; an unrelated service's
    # heavy-tailed latency jumps 40 robust sigmas at the same time. A value beyond every one of N history points
    # is as surprising as N points can show (information-theoretic score log(N + 1)): z = N, so svc leads. With
    # 20 points of history the same departure scores 20 and the jump leads.
    rng = np.random.default_rng(11)
    n_inc = 3

    def frame_for(n_hist: int) -> tuple[pd.DataFrame, pd.Timestamp]:
        n = n_hist + n_inc
        errors = np.zeros(n)
        errors[n_hist:] = 2.0
        latency = 100 + rng.standard_t(3, n)
        latency[n_hist:] = np.median(latency[:n_hist]) + 40 * 1.4826 * np.median(
            np.abs(latency[:n_hist] - np.median(latency[:n_hist]))
        )
        return _five_minute_frame({("svc", "errors"): errors, ("search", "latency"): latency}, n_hist)

    frame, start = frame_for(400)
    ranked = {c.node: c for c in rank(frame, None, start)}
    assert ranked["svc"].rank == 1 and ranked["svc"].strength == 400.0
    assert ranked["search"].anomalous and 30 < ranked["search"].strength < 60
    frame, start = frame_for(20)
    ranked = {c.node: c for c in rank(frame, None, start)}
    assert ranked["svc"].strength == 20.0 and ranked["search"].rank == 1


def test_a_callers_departure_from_its_bound_lends_only_to_the_dependency_that_departed_the_same_way() -> None:
    # front calls svc and cache. svc's availability, at 100 % through the history, drops 3 points and front's
    # 1.5; at the same time cache's latency, which nothing broke, jumps 500 of its sigmas (more than the 400 a
    # departure from 400 identical points scores). Both dependencies are anomalous and could explain front, but
    # only svc moved the way front did (availability, down): front's move is svc's to account for, not the
    # larger jump's.
    rng = np.random.default_rng(7)
    n_hist, n_inc = 400, 3
    n = n_hist + n_inc
    svc = np.full(n, 100.0)
    svc[n_hist:] -= 3.0
    front = np.full(n, 100.0)
    front[n_hist:] -= 1.5
    cache = 5 + rng.normal(0, 0.1, n)
    cache[n_hist:] += 50.0
    frame, start = _five_minute_frame(
        {("svc", "availability"): svc, ("front", "availability"): front, ("cache", "latency"): cache}, n_hist
    )
    ranked = rank(frame, [("front", "svc"), ("front", "cache")], start)
    by_node = {c.node: c for c in ranked}
    assert by_node["cache"].anomalous and by_node["cache"].strength > by_node["svc"].strength
    assert ranked[0].node == "svc"
    assert {"svc", "cache"} <= set(by_node["front"].explained_by)


def test_a_departure_is_not_explained_by_a_dependency_that_stayed_within_its_history() -> None:
    # fn's availability, at 100 % through 400 points, drops 3 points; db, which fn calls, has a heavy-tailed latency
    # that reads its history's 99th percentile at the same point (a sure robust z, but a value the history saw
    # while fn held 100 %). db neither explains fn away nor collects fn's credit; a value beyond db's history
    # does both.
    rng = np.random.default_rng(13)
    n_hist, n_inc = 400, 3
    n = n_hist + n_inc
    fn = np.full(n, 100.0)
    fn[n_hist:] -= 3.0
    db = 10 + 0.5 * rng.standard_t(3, n)

    def ranked(db_value: float) -> dict[str, Candidate]:
        latency = db.copy()
        latency[n_hist:] = db_value
        frame, start = _five_minute_frame({("fn", "availability"): fn, ("db", "latency"): latency}, n_hist)
        return {c.node: c for c in rank(frame, [("fn", "db")], start)}

    within = ranked(float(np.quantile(db[:n_hist], 0.99)))
    assert within["db"].anomalous and within["fn"].rank == 1
    assert within["fn"].explained_by == () and within["db"].explains == ()
    assert within["db"].score < math.log1p(within["db"].strength) + 1e-9  # nothing lent
    beyond = ranked(float(db[:n_hist].max()) + 1.0)
    assert beyond["fn"].explained_by == ("db",) and beyond["db"].rank == 1


def test_a_tie_that_rests_on_a_move_no_regression_judged_is_explained_by_the_same_move_below() -> None:
    # client -> api -> db. db's latency, which api's follows in the history (an informative fit), rises 8 sigmas and
    # db's availability, at 100 % through the history, drops 3 points; api's and client's availability drop with
    # it at the same point. api's latency is judged by its fit, but its strongest move is the availability, which
    # no regression can judge: db, which departed the same way, explains it (api's name would win the tie).
    rng = np.random.default_rng(17)
    n_hist, n_inc = 400, 3
    n = n_hist + n_inc
    db_latency = 20 + rng.normal(0, 1, n)
    db_latency[n_hist:] += 8.0
    api_latency = 5 + db_latency + rng.normal(0, 0.5, n)

    def availability(drop: float) -> np.ndarray:
        value = np.full(n, 100.0)
        value[n_hist:] -= drop
        return value

    frame, start = _five_minute_frame(
        {
            ("db", "latency"): db_latency,
            ("db", "availability"): availability(3.0),
            ("api", "latency"): api_latency,
            ("api", "availability"): availability(2.0),
            ("client", "availability"): availability(1.0),
        },
        n_hist,
    )
    ranked = {c.node: c for c in rank(frame, [("client", "api"), ("api", "db")], start)}
    assert ranked["api"].strength == ranked["db"].strength == n_hist  # first departures, equally sure
    assert "db" in ranked["api"].explained_by and ranked["db"].rank == 1


def test_a_dependent_lends_to_every_dependency_when_none_shares_its_move() -> None:
    lenders = {"db": {"api"}, "cache": {"api"}, "disk": {"db"}}
    signatures = {
        "api": {("availability", False): 10.0},
        "db": {("availability", False): 10.0, ("latency", True): 4.0},
        "cache": {("latency", True): 30.0},
        "disk": {("iops", True): 5.0},
    }
    best = best_explainers(lenders, signatures)
    assert best["api"] == {"db"}  # the same metric in the same direction
    assert best["db"] == {"disk"}  # nothing below db moved the way it did: its only dependency keeps the credit
    flipped = {**signatures, "db": {("availability", True): 10.0}}
    assert best_explainers(lenders, flipped)["api"] == {"db", "cache"}  # no match at all: every dependency


def test_standardised_deviation_uses_the_histories_mean_and_sample_deviation() -> None:
    from cms_dagster.rca.deviation import standardised_deviation
    from cms_dagster.rca.validate import prepare_metrics

    rng = np.random.default_rng(3)
    values = {("a", "m"): rng.normal(10, 2, 8), ("b", "m"): np.array([5.0, 5.0, 5.0, 5.0, 5.0, 6.0, 4.0, 5.5])}
    frame, start = _five_minute_frame(values, 5)
    out = standardised_deviation(prepare_metrics(frame), start.value).set_index("node")
    a = values[("a", "m")]
    expected = np.max(np.abs(a[5:] - a[:5].mean()) / a[:5].std(ddof=1))
    assert out.loc["a", "z"] == pytest.approx(expected)
    assert out.loc["a", "n_history"] == 5
    assert out.loc["b", "z"] == pytest.approx(1.0 / 1e-9)  # a flat history: the move's size over the floor
    assert out.loc["b", "signed_z"] > 0 and out.loc["b", "value"] == 6.0
