"""Plotly figures of the dashboard: each takes the shaped DataFrame of its view and returns a Figure.

Plain Python (plotly, pandas); no Streamlit.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

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
def _days(df: pd.DataFrame, column: str = "run_date") -> pd.DataFrame:
    """Days as text (2026-11-16), so a daily axis shows days rather than instants."""
    return df.assign(**{column: pd.to_datetime(df[column]).dt.strftime("%Y-%m-%d")})


LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))


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
    fig = go.Figure(
        go.Heatmap(
            z=z.values - lo,
            x=z.columns,
            y=z.index,
            customdata=text.values,
            colorscale=scale,
            zmin=-0.5,
            zmax=n - 0.5,
            xgap=1,
            ygap=2,
            showscale=False,
            hovertemplate="%{y}<br>%{x}<br>%{customdata}<extra></extra>",
        )
    )
    for s in order:  # a legend for the states
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=s,
                                 marker=dict(size=10, symbol="square", color=FEED_COLORS[s])))
    minutes = int(bucket.total_seconds() // 60)
    width = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
    fig.update_layout(title=f"Feed status per {width}", height=110 + 28 * len(z.index), **LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def latency_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Feed x hour, p95 latency as a share of the feed's latency SLA; cells above the SLA are marked."""
    z = matrix.pivot(index="feed_id", columns="hour_ts", values="sla_ratio")
    ms = matrix.pivot(index="feed_id", columns="hour_ts", values="latency_p95_ms")
    sla = matrix.groupby("feed_id")["latency_sla_ms"].first().reindex(z.index)
    fig = go.Figure(
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
    )
    over = matrix[matrix["above_sla"]]
    if len(over):
        fig.add_trace(
            go.Scatter(
                x=over["hour_ts"],
                y=[f"{f} (SLA {sla[f]:.0f} ms)" for f in over["feed_id"]],
                mode="markers",
                marker=dict(symbol="x-thin", size=7, line=dict(width=1.5, color="black")),
                name="above SLA",
                hoverinfo="skip",
            )
        )
    fig.update_layout(title="Latency p95 per hour against the SLA (x = above)", height=140 + 28 * len(z.index), **LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def quality_over_time(hours: pd.DataFrame) -> go.Figure:
    """Missing fields and invalid values per 10k messages, per feed and hour."""
    df = hours.copy()
    msgs = df["messages"].where(df["messages"] > 0)
    df["missing fields"] = 1e4 * df["missing_fields"] / msgs
    df["invalid values"] = 1e4 * df["invalid_values"] / msgs
    long = df.melt(id_vars=["feed_id", "hour_ts"], value_vars=["missing fields", "invalid values"],
                   var_name="indicator", value_name="per 10k messages")
    fig = px.line(long, x="hour_ts", y="per 10k messages", color="feed_id", facet_row="indicator",
                  title="Data quality per hour (per 10k messages)")
    fig.update_yaxes(matches=None)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_layout(height=420, **LAYOUT)
    return fig


def gantt(bars: pd.DataFrame, as_of: pd.Timestamp) -> go.Figure:
    """Runs per job (grouped by asset class) from start to end; running runs grow to now and continue as a
    projected bar; SLA deadlines of running and late runs are diamonds."""
    df = bars.copy()
    df["row"] = df["asset_class_id"] + " · " + df["job_key"].str.split(".", n=1).str[-1]
    fig = px.timeline(
        df,
        x_start="bar_start",
        x_end="bar_end",
        y="row",
        color="state",
        color_discrete_map=RUN_COLORS,
        hover_data={"run_id": True, "duration_min": ":.0f", "usual_min": ":.0f", "deadline": True, "row": False},
        category_orders={"row": sorted(df["row"].unique())},
    )
    marks = df[(df["state"].isin(["late", "running", "running, projected late"]))].dropna(subset=["deadline"])
    if len(marks):
        fig.add_trace(
            go.Scatter(
                x=marks["deadline"],
                y=marks["row"],
                mode="markers",
                marker=dict(symbol="diamond", size=10, color="black"),
                name="SLA deadline",
                hovertext=marks["run_id"],
            )
        )
    fig.add_vline(x=pd.Timestamp(as_of), line_dash="dot", line_color="#555")
    fig.update_layout(title="Runs per asset class and job (dotted line: latest data)",
                      height=160 + 26 * df["row"].nunique(), **LAYOUT)
    fig.update_yaxes(title=None)
    return fig


def duration_trend(perf: pd.DataFrame) -> go.Figure:
    """Duration index (successful runs against their job's 28-day median) per asset class and day."""
    fig = px.line(_days(perf).sort_values("run_date"), x="run_date", y="duration_index", color="asset_class_id", markers=True,
                  title="Duration index (1.0 = usual)")
    fig.add_hline(y=1.0, line_dash="dash", line_color="#555", annotation_text="usual")
    fig.update_xaxes(type="category", title=None)
    fig.update_layout(height=340, **LAYOUT)
    return fig


def success_rates(rates: pd.DataFrame) -> go.Figure:
    """Successful and failed runs per asset class over the range, as shares of finished runs."""
    long = rates.melt(id_vars=["asset_class_id"], value_vars=["success %", "failure %"], var_name="outcome",
                      value_name="share of finished runs (%)")
    fig = px.bar(long, x="asset_class_id", y="share of finished runs (%)", color="outcome",
                 color_discrete_map={"success %": "#2e9e44", "failure %": "#d62728"},
                 title="Success and failure rates")
    fig.update_layout(height=340, **LAYOUT)
    return fig


def sla_heatmap(sla: pd.DataFrame) -> go.Figure:
    """On-time % per job and day."""
    z = _days(sla).pivot_table(index="job_key", columns="run_date", values="on_time_pct", aggfunc="mean")
    fig = go.Figure(
        go.Heatmap(z=z.values, x=[str(c) for c in z.columns], y=z.index, zmin=0, zmax=100,
                   colorscale=[[0, "#d62728"], [0.8, "#f2c037"], [1, "#2e9e44"]],
                   colorbar=dict(title="on time %"),
                   hovertemplate="%{y}<br>%{x}<br>%{z:.0f} % on time<extra></extra>")
    )
    fig.update_layout(title="SLA compliance per job and day (on-time %)", height=140 + 24 * len(z.index), **LAYOUT)
    fig.update_xaxes(type="category")
    return fig


def sla_by_asset_class(daily: pd.DataFrame) -> go.Figure:
    fig = px.line(_days(daily).sort_values("run_date"), x="run_date", y="on_time_pct", color="asset_class_id", markers=True,
                  title="SLA compliance per asset class and day (on-time %)")
    fig.update_yaxes(range=[0, 105])
    fig.update_xaxes(type="category", title=None)
    fig.update_layout(height=320, **LAYOUT)
    return fig


def volume(perf: pd.DataFrame) -> go.Figure:
    """Records processed per day (bars) and records per minute of successful run time (lines)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("records per day", "records per minute of run time"))
    for i, (ac, g) in enumerate(_days(perf).groupby("asset_class_id")):
        color = px.colors.qualitative.Plotly[i % 10]
        fig.add_trace(go.Bar(x=g["run_date"], y=g["records"], name=ac, marker_color=color, legendgroup=ac), 1, 1)
        fig.add_trace(go.Scatter(x=g["run_date"], y=g["records_per_minute"], name=ac, mode="lines+markers",
                                 line_color=color, legendgroup=ac, showlegend=False), 2, 1)
    fig.update_xaxes(type="category")
    fig.update_layout(title="Volume and throughput", barmode="stack", height=460, **LAYOUT)
    return fig


def stage_grid(states: pd.DataFrame, order: list[str]) -> go.Figure:
    """Today's runs (rows) x stages (columns), coloured by the stage's state in the run."""
    rank = {s: i for i, s in enumerate(STAGE_COLORS)}
    z = states.pivot(index="run_label", columns="stage_id", values="state").reindex(columns=order)
    n = len(STAGE_COLORS)
    scale = []
    for i, s in enumerate(STAGE_COLORS):
        scale += [[i / n, STAGE_COLORS[s]], [(i + 1) / n, STAGE_COLORS[s]]]
    fig = go.Figure(
        go.Heatmap(z=z.replace(rank).astype(float).values, x=list(z.columns), y=list(z.index), text=z.values,
                   texttemplate="%{text}", colorscale=scale, zmin=-0.5, zmax=n - 0.5, showscale=False, xgap=2,
                   ygap=2, hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>")
    )
    fig.update_layout(title="Runs of the day, stage by stage", height=120 + 30 * len(z.index), **LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def stage_dag(
    pos: dict[str, tuple[float, float]],
    edges: list[tuple[str, str]],
    states: pd.DataFrame,
    critical: set[str],
    bottleneck: Bottleneck | None,
) -> go.Figure:
    """The job's stage DAG (from the ontology): nodes coloured by state, the critical path drawn thick."""
    fig = go.Figure()
    for a, b in edges:
        on_path = a in critical and b in critical
        fig.add_trace(go.Scatter(x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines",
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
        fig.add_trace(
            go.Scatter(
                x=[pos[s][0] for s in ids], y=[pos[s][1] for s in ids], mode="markers+text", name=state,
                text=ids, textposition="top center", hovertext=hover, hoverinfo="text",
                marker=dict(size=[34 if bottleneck and s == bottleneck.stage_id else 24 for s in ids], color=color,
                            line=dict(width=[4 if bottleneck and s == bottleneck.stage_id else 1 for s in ids],
                                      color="black")),
            )
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[min(p[1] for p in pos.values()) - 0.8, max(p[1] for p in pos.values()) + 0.8])
    fig.update_layout(title="Stage DAG (thick: critical path; large ring: bottleneck)", height=300, **LAYOUT)
    return fig


def resource_utilisation(series: pd.DataFrame, window: tuple[pd.Timestamp, pd.Timestamp] | None) -> go.Figure:
    """The CloudWatch series of a stage's resources, one panel per metric, with the stage's run shaded."""
    df = series.copy()
    df["series"] = df["entity_id"]
    fig = px.line(df, x="minute_ts", y="avg_value", color="series", facet_row="metric", title="Resource utilisation")
    fig.update_yaxes(matches=None, title=None)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    if window is not None and pd.notna(window[0]):
        fig.add_vrect(x0=window[0], x1=window[1], fillcolor="#1f77b4", opacity=0.08, line_width=0,
                      row="all", col="all")
    fig.update_layout(height=160 + 150 * df["metric"].nunique(), **LAYOUT)
    return fig


def stage_trend(trends: pd.DataFrame) -> go.Figure:
    fig = px.line(_days(trends).sort_values("run_date"), x="run_date", y="median_elapsed_min", color="stage_id", markers=True,
                  title="Stage duration per day (median minutes, retries included)")
    fig.update_xaxes(type="category", title=None)
    fig.update_layout(height=340, **LAYOUT)
    return fig


def ranked_causes(hyp: pd.DataFrame) -> go.Figure:
    """Ranked (entity, kind) causes by score."""
    df = hyp.copy()
    df["cause"] = df["rank"].astype(str) + ". " + df["entity"] + " — " + df["kind"]
    fig = px.bar(df, x="score", y="cause", orientation="h", title="Ranked causes", hover_data=["reason"])
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_layout(height=120 + 36 * len(df), **LAYOUT)
    return fig


def evidence_series(frame: pd.DataFrame, start: pd.Timestamp) -> go.Figure:
    """The evidence series of the top causes around the incident's start (seasonally adjusted values)."""
    df = frame.copy()
    df["series"] = df["entity"] + " " + df["metric"]
    fig = px.line(df, x="time", y="value", color="series", facet_row="series", title="Evidence")
    fig.update_yaxes(matches=None, title=None)
    fig.for_each_annotation(lambda a: a.update(text=""))
    fig.update_layout(legend=dict(orientation="h", y=-0.1))
    fig.add_vline(x=pd.Timestamp(start), line_dash="dash", line_color="#d62728")
    fig.update_layout(height=140 + 150 * df["series"].nunique(), showlegend=True, **LAYOUT)
    return fig


def episodes(table: pd.DataFrame) -> go.Figure:
    """Confirmed alarm episodes over time: height = peak score, size = alarms."""
    fig = px.scatter(table, x="start", y="peak score", size="alarms", hover_data=["entities", "minutes"],
                     title="Confirmed alarm episodes")
    fig.update_layout(height=280, **LAYOUT)
    return fig
