"""The financial operations dashboard (Streamlit + Plotly): market data feeds, batch processing, critical
sub-stages, incidents and questions, read from the warehouse's marts. ``cms dashboard`` serves it.

``queries`` (parametrised SQL), ``filters`` (URL deep links), ``transform`` (shaping) and ``charts``
(Plotly figures) are plain libraries; ``app`` and ``views/`` are the Streamlit scripts.
"""
