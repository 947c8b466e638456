"""CMS business-metrics SDK for Python: batch runs, sub-stages, market-data feeds and custom metrics,
exported as plain OTLP/HTTP (JSON) to the CMS receiver or any OpenTelemetry Collector.

    from cms_sdk import CmsClient
    client = CmsClient.from_env()
    with client.run("derivatives", "eod_valuation") as run:
        with run.stage("validation", type="validation", depends_on=["ingest"]) as st:
            st.records(125_000)
"""

from cms_sdk._version import __version__
from cms_sdk.client import CmsClient, Feed, Run, Stage
from cms_sdk.config import Config, ConfigError
from cms_sdk.exporter import HttpTransport, Response
from cms_sdk.times import ManualClock

__all__ = [
    "CmsClient",
    "Config",
    "ConfigError",
    "Feed",
    "HttpTransport",
    "ManualClock",
    "Response",
    "Run",
    "Stage",
    "__version__",
]
