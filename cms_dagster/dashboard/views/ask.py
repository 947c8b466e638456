"""Ask: a question in plain words over the warehouse, answered by `cms ask`'s function
(cms_dagster.nlq.ask): the answer, the table behind it and what the question was understood as."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import ui
from cms_dagster.nlq import ExecutionError, ask, default_engine

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Ask")
EXAMPLES = [
    "Which upstream data feeds were delayed today?",
    "Are there any critical sub-stages taking longer than usual today?",
    "Show me all derivatives batch jobs that failed this week",
    "failure rate by asset class this week",
]


def body() -> None:
    latest = ui.extent(src)["latest"]
    as_of = filters.window(latest)[1] if latest is not None else None
    if "ask_q" not in st.session_state:
        st.session_state["ask_q"] = filters.q or ""
    question = st.text_input("Question", placeholder=EXAMPLES[0], key="ask_q").strip()
    st.caption(
        "Answered from the marts as of "
        + (f"{as_of - pd.Timedelta(minutes=1):%Y-%m-%d %H:%M} UTC (the latest data)" if as_of is not None else "now")
        + ", as `cms ask` would. For example: " + " · ".join(f"*{e}*" for e in EXAMPLES)
    )
    ui.page_filters(filters, q=question or None)
    if not question:
        return
    s = src.settings
    engine = default_engine(src.ontology, s.llm, s) if s.llm != "offline" else None
    with st.spinner("Answering ..."):
        try:
            answer = ask(question, src.warehouse, src.ontology,
                         as_of=None if as_of is None else as_of.tz_localize("UTC").to_pydatetime(), engine=engine)
        except ExecutionError as e:
            st.error(f"The warehouse could not answer: {e}")
            return
    if answer.refused:
        st.warning(answer.refused)
    elif answer.clarify:
        st.info(answer.clarify)
    else:
        st.markdown(answer.answer)
        table = pd.DataFrame(answer.rows, columns=answer.columns)
        with st.container(key="table_answer"):
            st.dataframe(table, hide_index=True)
    if answer.interpretation or answer.sql:
        with st.expander("What the question was understood as", expanded=not answer.rows):
            if answer.interpretation:
                st.json(answer.interpretation)
            if answer.sql:
                st.code(answer.sql, language="sql")


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
