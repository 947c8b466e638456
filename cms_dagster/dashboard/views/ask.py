"""Ask: a question in plain words over the warehouse, answered by `cms ask`'s engine (cms_dagster.nlq):
the answer, the table behind it and what the question was understood as."""

from __future__ import annotations

import importlib

import streamlit as st

from cms_dagster.dashboard import ui

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Ask")


def _engine():
    """The question engine's ``ask`` function, or None while it is not part of this installation."""
    try:
        module = importlib.import_module("cms_dagster.nlq")
    except ModuleNotFoundError:
        return None
    return getattr(module, "ask", None)


ui.page_filters(filters)
ask = _engine()
if ask is None:
    st.info(
        "The question engine (`cms ask`) is not installed in this build, so questions cannot be answered "
        "here yet. The other pages show the same marts."
    )
else:
    question = st.text_input("Question", placeholder="which jobs breached their SLA yesterday?", key="ask_q")
    if question.strip():
        try:
            answer = ask(question, settings=src.settings)
        except ValueError as e:
            st.warning(str(e))
        else:
            st.markdown(getattr(answer, "text", str(answer)))
            table = getattr(answer, "table", None)
            if table is not None:
                st.dataframe(table, hide_index=True, key="ask_table")
            understood = getattr(answer, "understood", None)
            if understood:
                with st.expander("What the question was understood as"):
                    st.write(understood)
