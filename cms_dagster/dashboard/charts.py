"""Plotly figures of the dashboard: each takes the shaped DataFrame of its view and returns a Figure.

Figures are built from graph objects in one step, with one small template: Plotly Express and the stock
templates validate and copy thousands of properties per figure (about 0.1 s each, most of a page's first
render); a hand-built figure of the same traces takes a few milliseconds.

Plain Python (plotly, pandas); no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from cms_dagster.dashboard.transform import FEED_STATES, NO_DATA, STATE_RANK, Bottleneck

FEED_COLORS = {"ok": "#2e9e44", "delayed": "#f2c037", "stale": "#ef8a17", "down": "#d62728", NO_DATA: "#d9d9d9"}
RUN_COLORS = {
    "on time": "#2e9e44",
    "late": "#ef8a17",
    "failed": "#d62728",
    "running": "#1f77b4",
    "running, projected late": "#9467bd",
    "projected": "#aec7e8",
}
STAGE_COLORS = {
    "success": "#2e9e44",
    "retried": "#f2c037",
    "running": "#1f77b4",
    "failed": "#d62728",
    "not started": "#d9d9d9",
}
PALETTE = qualitative.Plotly
_GRID = "#ebf0f8"
_AXIS = dict(gridcolor=_GRID, linecolor=_GRID, zerolinecolor=_GRID, zerolinewidth=2, automargin=True, ticks="")
# white background, light grid, the Plotly colour sequence: the look of "plotly_white", without its defaults
# for every trace type
TEMPLATE = go.layout.Template(
    layout=dict(font=dict(color="#2a3f5f"), paper_bgcolor="white", plot_bgcolor="white", colorway=PALETTE,
                hovermode="closest", title=dict(x=0.05), xaxis=_AXIS, yaxis=_AXIS)
)
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))


def _figure(data: Sequence[Any], title: str, height: int, **layout: Any) -> go.Figure:
    """A figure of ``data`` with the dashboard's template, title, height and margins."""
    return go.Figure(data=list(data),
                     layout=dict(template=TEMPLATE, title=dict(text=title), height=height, **{**LAYOUT, **layout}))


def _days(df: pd.DataFrame, column: str = "run_date") -> pd.DataFrame:
    """Days as text (2026-11-16), so a daily axis shows days rather than instants."""
    return df.assign(**{column: pd.to_datetime(df[column]).dt.strftime("%Y-%m-%d")})


_DAY_AXIS = dict(type="category", categoryorder="category ascending", title=None)


def _lines(df: pd.DataFrame, x: str, y: str, color: str, markers: bool = False, **trace: Any) -> list[go.Scatter]:
    """One line per value of ``color`` (in sorted order, coloured from the palette)."""
    return [
        go.Scatter(x=g[x], y=g[y], name=str(name), legendgroup=str(name), mode="lines+markers" if markers else "lines",
                   line=dict(color=PALETTE[i % len(PALETTE)]), **trace)
        for i, (name, g) in enumerate(df.sort_values(x).groupby(color, sort=True))
    ]


def _rows(titles: Sequence[str], gap: float = 0.1) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Layout of panels stacked top to bottom sharing one x axis, each titled; and each panel's (x, y) refs."""
    n = len(titles)
    gap = gap if n > 1 else 0.0
    h = (1 - gap * (n - 1)) / n
    layout: dict[str, Any] = {}
    refs, notes = [], []
    for i, title in enumerate(titles):
        top = 1 - i * (h + gap)
        suffix = "" if i == 0 else str(i + 1)
        layout[f"yaxis{suffix}"] = dict(domain=[max(top - h, 0.0), top], anchor=f"x{suffix}")
        layout[f"xaxis{suffix}"] = dict(anchor=f"y{suffix}", showticklabels=i == n - 1,
                                        **({"matches": "x"} if i else {}))
        refs.append((f"x{suffix}", f"y{suffix}"))
        notes.append(dict(text=str(title), x=0, xref="paper", xanchor="left", y=top, yref="paper", yanchor="bottom",
                          showarrow=False, font=dict(size=12)))
    layout["annotations"] = notes
    return layout, refs


def _vline(x: Any, **line: Any) -> dict[str, Any]:
    """A vertical line at ``x`` across the whole plot area."""
    return dict(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper", line=line)


def availability_grid(grid: pd.DataFrame, bucket: pd.Timedelta) -> go.Figure:
    """Feed x time bucket, coloured by state, in the manner of a status history panel."""
    order = [NO_DATA, *FEED_STATES]  # ranks -1 .. 3, drawn as 0 .. 4 in a banded colour scale
    n = len(order)
    scale = []
    for i, s in enumerate(order):
        scale += [[i / n, FEED_COLORS[s]], [(i + 1) / n, FEED_COLORS[s]]]
    lo = STATE_RANK[NO_DATA]
    z = grid.pivot(index="feed_id", columns="bucket_ts", values="rank")
    text = grid.assign(
        label=lambda d: d["state"] + " (" + d["down"].astype(str) + " down, " + d["stale"].astype(str)
        + " stale, " + d["delayed"].astype(str) + " delayed)"
    ).pivot(index="feed_id", columns="bucket_ts", values="label")
    heat = go.Heatmap(z=z.values - lo, x=z.columns, y=z.index, customdata=text.values, colorscale=scale, zmin=-0.5,
                      zmax=n - 0.5, xgap=1, ygap=2, showscale=False,
                      hovertemplate="%{y}<br>%{x}<br>%{customdata}<extra></extra>")
    legend = [go.Scatter(x=[None], y=[None], mode="markers", name=s,  # a legend for the states
                         marker=dict(size=10, symbol="square", color=FEED_COLORS[s])) for s in order]
    minutes = int(bucket.total_seconds() // 60)
    width = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
    return _figure([heat, *legend], f"Feed status per {width}", 110 + 28 * len(z.index),
                   yaxis=dict(autorange="reversed"))


def latency_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Feed x hour, p95 latency as a share of the feed's latency SLA; cells above the SLA are marked."""
    z = matrix.pivot(index="feed_id", columns="hour_ts", values="sla_ratio")
    ms = matrix.pivot(index="feed_id", columns="hour_ts", values="latency_p95_ms")
    sla = matrix.groupby("feed_id")["latency_sla_ms"].first().reindex(z.index)
    traces: list[Any] = [
        go.Heatmap(
            z=z.values,
            x=z.columns,
            y=[f"{f} (SLA {sla[f]:.0f} ms)" for f in z.index],
            customdata=ms.values,
            colorscale=[[0, "#f7fbff"], [0.5, "#6baed6"], [0.5, "#fdae6b"], [1, "#a50f15"]],
            zmin=0,
            zmax=2,
            colorbar=dict(title="p95 / SLA", tickvals=[0, 1, 2], ticktext=["0", "SLA", "2x"]),
            hovertemplate="%{y}<br>%{x}<br>p95 %{customdata:.1f} ms (%{z:.2f} x SLA)<extra></extra>",
        )
    ]
    over = matrix[matrix["above_sla"]]
    if len(over):
        traces.append(
            go.Scatter(
                x=over["hour_ts"],
                y=[f"{f} (SLA {sla[f]:.0f} ms)" for f in over["feed_id"]],
                mode="markers",
                marker=dict(symbol="x-thin", size=7, line=dict(width=1.5, color="black")),
                name="above SLA",
                hoverinfo="skip",
            )
        )
    return _figure(traces, "Latency p95 per hour against the SLA (x = above)", 140 + 28 * len(z.index),
                   yaxis=dict(autorange="reversed"))


def quality_over_time(hours: pd.DataFrame) -> go.Figure:
    """Missing fields and invalid values per 10k messages, per feed and hour (one panel each)."""
    msgs = hours["messages"].where(hours["messages"] > 0)
    indicators = {"missing fields": "missing_fields", "invalid values": "invalid_values"}
    layout, refs = _rows(list(indicators))
    traces = []
    for (label, column), (xref, yref) in zip(indicators.items(), refs, strict=True):
        df = hours.assign(rate=1e4 * hours[column] / msgs)
        traces += _lines(df, "hour_ts", "rate", "feed_id", xaxis=xref, yaxis=yref, showlegend=xref == "x",
                         hovertemplate=f"%{{x}}<br>%{{y:.2f}} {label} per 10k messages")
    return _figure(traces, "Data quality per hour (per 10k messages)", 420, **layout)


def gantt(bars: pd.DataFrame, as_of: pd.Timestamp) -> go.Figure:
    """Runs per job (grouped by asset class) from start to end; running runs grow to now and continue as a
    projected bar; SLA deadlines of running and late runs are diamonds."""
    df = bars.copy()
    df["row"] = df["asset_class_id"] + " · " + df["job_key"].str.split(".", n=1).str[-1]
    rows = sorted(df["row"].unique())
    traces: list[Any] = []
    for state, color in RUN_COLORS.items():
        g = df[df["state"] == state]
        if g.empty:
            continue
        start, end = pd.to_datetime(g["bar_start"]), pd.to_datetime(g["bar_end"])
        info = np.stack([g["run_id"].astype(str), g["duration_min"].map(_minutes), g["usual_min"].map(_minutes),
                         pd.to_datetime(g["deadline"]).dt.strftime("%Y-%m-%d %H:%M").fillna("-")], axis=-1)
        traces.append(go.Bar(
            base=start, x=(end - start).dt.total_seconds() * 1000, y=g["row"], orientation="h", name=state,
            marker_color=color, customdata=info,
            hovertemplate="%{customdata[0]}<br>%{base|%H:%M} for %{customdata[1]} min (usual %{customdata[2]} min)"
                          "<br>deadline %{customdata[3]}<extra>" + state + "</extra>",
        ))
    marks = df[(df["state"].isin(["late", "running", "running, projected late"]))].dropna(subset=["deadline"])
    if len(marks):
        traces.append(go.Scatter(x=marks["deadline"], y=marks["row"], mode="markers", name="SLA deadline",
                                 marker=dict(symbol="diamond", size=10, color="black"), hovertext=marks["run_id"]))
    return _figure(traces, "Runs per asset class and job (dotted line: latest data)", 160 + 26 * len(rows),
                   barmode="overlay", xaxis=dict(type="date"),
                   yaxis=dict(title=None, categoryorder="array", categoryarray=rows[::-1]),
                   shapes=[_vline(pd.Timestamp(as_of), dash="dot", color="#555")])


def _minutes(v: float) -> str:
    return "-" if pd.isna(v) else f"{v:.0f}"


def duration_trend(perf: pd.DataFrame) -> go.Figure:
    """Duration index (successful runs against their job's 28-day median) per asset class and day."""
    return _figure(
        _lines(_days(perf), "run_date", "duration_index", "asset_class_id", markers=True),
        "Duration index (1.0 = usual)", 340, xaxis=_DAY_AXIS,
        shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=1.0, y1=1.0, line=dict(dash="dash", color="#555"))],
        annotations=[dict(text="usual", xref="paper", x=1, xanchor="right", y=1.0, yanchor="bottom",
                          showarrow=False)],
    )


def success_rates(rates: pd.DataFrame) -> go.Figure:
    """Successful and failed runs per asset class over the range, as shares of finished runs."""
    colors = {"success %": "#2e9e44", "failure %": "#d62728"}
    traces = [go.Bar(x=rates["asset_class_id"], y=rates[outcome], name=outcome, marker_color=color)
              for outcome, color in colors.items()]
    return _figure(traces, "Success and failure rates", 340, barmode="relative",
                   yaxis=dict(title="share of finished runs (%)"))


def sla_heatmap(sla: pd.DataFrame) -> go.Figure:
    """On-time % per job and day."""
    z = _days(sla).pivot_table(index="job_key", columns="run_date", values="on_time_pct", aggfunc="mean")
    heat = go.Heatmap(z=z.values, x=[str(c) for c in z.columns], y=z.index, zmin=0, zmax=100,
                      colorscale=[[0, "#d62728"], [0.8, "#f2c037"], [1, "#2e9e44"]], colorbar=dict(title="on time %"),
                      hovertemplate="%{y}<br>%{x}<br>%{z:.0f} % on time<extra></extra>")
    return _figure([heat], "SLA compliance per job and day (on-time %)", 140 + 24 * len(z.index),
                   xaxis=dict(type="category"))


def sla_by_asset_class(daily: pd.DataFrame) -> go.Figure:
    return _figure(_lines(_days(daily), "run_date", "on_time_pct", "asset_class_id", markers=True),
                   "SLA compliance per asset class and day (on-time %)", 320, xaxis=_DAY_AXIS,
                   yaxis=dict(range=[0, 105]))


def volume(perf: pd.DataFrame) -> go.Figure:
    """Records processed per day (bars) and records per minute of successful run time (lines)."""
    layout, refs = _rows(["records per day", "records per minute of run time"], gap=0.12)
    traces: list[Any] = []
    for i, (ac, g) in enumerate(_days(perf).sort_values("run_date").groupby("asset_class_id")):
        color = PALETTE[i % len(PALETTE)]
        traces.append(go.Bar(x=g["run_date"], y=g["records"], name=ac, marker_color=color, legendgroup=ac))
        traces.append(go.Scatter(x=g["run_date"], y=g["records_per_minute"], name=ac, mode="lines+markers",
                                 line_color=color, legendgroup=ac, showlegend=False, xaxis=refs[1][0],
                                 yaxis=refs[1][1]))
    layout["xaxis"].update(_DAY_AXIS)
    layout["xaxis2"].update(_DAY_AXIS)
    return _figure(traces, "Volume and throughput", 460, barmode="stack", **layout)


def stage_grid(states: pd.DataFrame, order: list[str]) -> go.Figure:
    """Today's runs (rows) x stages (columns), coloured by the stage's state in the run."""
    rank = {s: i for i, s in enumerate(STAGE_COLORS)}
    z = states.pivot(index="run_label", columns="stage_id", values="state").reindex(columns=order)
    n = len(STAGE_COLORS)
    scale = []
    for i, s in enumerate(STAGE_COLORS):
        scale += [[i / n, STAGE_COLORS[s]], [(i + 1) / n, STAGE_COLORS[s]]]
    codes = z.apply(lambda col: col.map(rank)).astype(float)
    heat = go.Heatmap(z=codes.values, x=list(z.columns), y=list(z.index), text=z.values, texttemplate="%{text}",
                      colorscale=scale, zmin=-0.5, zmax=n - 0.5, showscale=False, xgap=2, ygap=2,
                      hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>")
    return _figure([heat], "Runs of the day, stage by stage", 120 + 30 * len(z.index), yaxis=dict(autorange="reversed"))


def stage_dag(
    pos: dict[str, tuple[float, float]],
    edges: list[tuple[str, str]],
    states: pd.DataFrame,
    critical: set[str],
    bottleneck: Bottleneck | None,
) -> go.Figure:
    """The job's stage DAG (from the ontology): nodes coloured by state, the critical path drawn thick."""
    traces: list[Any] = []
    for a, b in edges:
        on_path = a in critical and b in critical
        traces.append(go.Scatter(x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines",
                                 line=dict(width=5 if on_path else 1.5, color="#333" if on_path else "#aaa"),
                                 hoverinfo="skip", showlegend=False))
    st = states.set_index("stage_id")
    for state, color in STAGE_COLORS.items():
        ids = [s for s in pos if s in st.index and st.loc[s, "state"] == state]
        if not ids:
            continue
        hover = []
        for s in ids:
            d = st.loc[s]
            mins = "" if pd.isna(d["duration_s"]) else f"{d['duration_s'] / 60:.0f} min"
            hover.append(f"{s}: {state} {mins} (expected {d['expected_min']:.0f} min, {int(d['attempts'])} attempt(s))")
        is_bn = [bool(bottleneck and s == bottleneck.stage_id) for s in ids]
        traces.append(go.Scatter(
            x=[pos[s][0] for s in ids], y=[pos[s][1] for s in ids], mode="markers+text", name=state,
            text=ids, textposition="top center", hovertext=hover, hoverinfo="text",
            marker=dict(size=[34 if b else 24 for b in is_bn], color=color,
                        line=dict(width=[4 if b else 1 for b in is_bn], color="black")),
        ))
    ys = [p[1] for p in pos.values()]
    return _figure(traces, "Stage DAG (thick: critical path; large ring: bottleneck)", 300,
                   xaxis=dict(visible=False), yaxis=dict(visible=False, range=[min(ys) - 0.8, max(ys) + 0.8]))


def resource_utilisation(series: pd.DataFrame, window: tuple[pd.Timestamp, pd.Timestamp] | None) -> go.Figure:
    """The CloudWatch series of a stage's resources, one panel per metric, with the stage's run shaded."""
    metrics = sorted(series["metric"].unique())
    layout, refs = _rows(metrics, gap=0.3 / max(len(metrics), 1))
    colors = {e: PALETTE[i % len(PALETTE)] for i, e in enumerate(sorted(series["entity_id"].unique()))}
    traces, shapes = [], []
    for metric, (xref, yref) in zip(metrics, refs, strict=True):
        for entity, g in series[series["metric"] == metric].sort_values("minute_ts").groupby("entity_id"):
            traces.append(go.Scatter(x=g["minute_ts"], y=g["avg_value"], name=entity, legendgroup=entity, mode="lines",
                                     line=dict(color=colors[entity]), showlegend=xref == "x", xaxis=xref, yaxis=yref))
        if window is not None and pd.notna(window[0]):
            shapes.append(dict(type="rect", x0=window[0], x1=window[1], xref=xref, y0=0, y1=1, yref=f"{yref} domain",
                               fillcolor="#1f77b4", opacity=0.08, line_width=0, layer="below"))
    return _figure(traces, "Resource utilisation", 160 + 150 * len(metrics), shapes=shapes, **layout)


def stage_trend(trends: pd.DataFrame) -> go.Figure:
    return _figure(_lines(_days(trends), "run_date", "median_elapsed_min", "stage_id", markers=True),
                   "Stage duration per day (median minutes, retries included)", 340, xaxis=_DAY_AXIS)


def ranked_causes(hyp: pd.DataFrame) -> go.Figure:
    """Ranked (entity, kind) causes by score."""
    cause = hyp["rank"].astype(str) + ". " + hyp["entity"] + " — " + hyp["kind"]
    reason = hyp["reason"].astype(str) if "reason" in hyp else pd.Series("", index=hyp.index)
    bar = go.Bar(x=hyp["score"], y=cause, orientation="h", customdata=reason, name="score",
                 hovertemplate="%{y}<br>score %{x:.3f}<br>%{customdata}<extra></extra>")
    return _figure([bar], "Ranked causes", 120 + 36 * len(hyp), yaxis=dict(autorange="reversed", title=None),
                   xaxis=dict(title="score"))


def evidence_series(frame: pd.DataFrame, start: pd.Timestamp) -> go.Figure:
    """The evidence series of the top causes around the incident's start (seasonally adjusted values)."""
    df = frame.assign(series=frame["entity"] + " " + frame["metric"])
    names = list(dict.fromkeys(df["series"]))
    layout, refs = _rows(names, gap=0.3 / max(len(names), 1))
    traces = [
        go.Scatter(x=g["time"], y=g["value"], name=name, mode="lines", line=dict(color=PALETTE[i % len(PALETTE)]),
                   xaxis=xref, yaxis=yref)
        for i, (name, (xref, yref)) in enumerate(zip(names, refs, strict=True))
        for g in [df[df["series"] == name].sort_values("time")]
    ]
    return _figure(traces, "Evidence", 140 + 150 * len(names), legend=dict(orientation="h", y=-0.1),
                   shapes=[_vline(pd.Timestamp(start), dash="dash", color="#d62728")], **layout)


def episodes(table: pd.DataFrame) -> go.Figure:
    """Confirmed alarm episodes over time: height = peak score, size = alarms."""
    alarms = table["alarms"].astype(float)
    dots = go.Scatter(
        x=table["start"], y=table["peak score"], mode="markers", name="episodes",
        marker=dict(size=alarms, sizemode="area", sizeref=2.0 * max(alarms.max(), 1) / 30**2, sizemin=4),
        customdata=np.stack([table["alarms"].astype(str), table["minutes"].astype(str),
                             table["entities"].astype(str)], axis=-1),
        hovertemplate="%{x}<br>peak score %{y}<br>%{customdata[0]} alarms over %{customdata[1]} min"
                      "<br>%{customdata[2]}<extra></extra>",
    )
    return _figure([dots], "Confirmed alarm episodes", 280, yaxis=dict(title="peak score"))
