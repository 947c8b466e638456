"""Settings: the one place that reads the environment (docs/configuration.md lists every variable).

Everything is read when :func:`load` is called, never at import time, so tests and the Dagster UI can
change the environment between runs. Defaults give the embedded mode under ``CMS_HOME`` (default ``.cms/``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

SECRET_MARKERS = ("PASSWORD", "KEY", "TOKEN", "SECRET")


@dataclass(frozen=True)
class Setting:
    env: str
    group: str
    help: str
    default: str = ""
    secret: bool = False


# Every variable CMS reads, with its default (empty = unset) and meaning. `cms config` prints these.
SETTINGS: list[Setting] = [
    Setting("CMS_HOME", "home", "where embedded state lives", ".cms"),
    Setting("DAGSTER_HOME", "home", "Dagster instance directory", "$CMS_HOME/dagster"),
    Setting("CMS_LAKE_URL", "lake", "lake root: a local path or s3://bucket/prefix", "$CMS_HOME/lake"),
    Setting(
        "CMS_RAW_URL", "lake", "raw zone (OTLP JSON lines, quarantine, checkpoints)", "$CMS_LAKE_URL/raw"
    ),
    Setting("CMS_PROCESSED_URL", "lake", "processed zone (Parquet points)", "$CMS_LAKE_URL/processed"),
    Setting(
        "CMS_ARCHIVE_URL", "lake", "archive zone (simulation truth, RCA reports)", "$CMS_LAKE_URL/archive"
    ),
    Setting("CMS_WAREHOUSE", "warehouse", "duckdb (embedded) or snowflake", "duckdb"),
    Setting("CMS_DUCKDB_PATH", "warehouse", "DuckDB database file", "$CMS_HOME/warehouse.duckdb"),
    Setting("SNOWFLAKE_ACCOUNT", "warehouse", "Snowflake account identifier"),
    Setting("SNOWFLAKE_USER", "warehouse", "Snowflake user"),
    Setting("SNOWFLAKE_PASSWORD", "warehouse", "Snowflake password", secret=True),
    Setting("SNOWFLAKE_PRIVATE_KEY_PATH", "warehouse", "key-pair authentication instead of a password"),
    Setting("SNOWFLAKE_ROLE", "warehouse", "role of dbt, queries and `cms snowflake setup`", "CMS_TRANSFORMER"),
    Setting("CMS_SNOWFLAKE_LOAD_ROLE", "warehouse", "role of the loading asset (writes RAW)", "CMS_LOADER"),
    Setting("SNOWFLAKE_WAREHOUSE", "warehouse", "virtual warehouse", "CMS_TRANSFORM_M"),
    Setting("SNOWFLAKE_DATABASE", "warehouse", "database", "CMS"),
    Setting("SNOWFLAKE_HOST", "warehouse", "host override (stand-ins, private link)"),
    Setting("SNOWFLAKE_PORT", "warehouse", "port override"),
    Setting("SNOWFLAKE_PROTOCOL", "warehouse", "https (default) or http for stand-ins"),
    Setting(
        "CMS_SNOWFLAKE_AUTH",
        "warehouse",
        "credentials (SNOWFLAKE_USER with a password or key pair) or container (the session token of Snowpark "
        "Container Services, e.g. Streamlit in Snowflake's container runtime)",
        "credentials",
    ),
    Setting("CMS_SNOWFLAKE_TOKEN_FILE", "warehouse", "the container's OAuth token file (CMS_SNOWFLAKE_AUTH=container)",
            "/snowflake/session/token"),
    Setting("DBT_TARGET", "warehouse", "dbt target (default: the CMS_WAREHOUSE value)"),
    Setting("CMS_DBT_PROJECT_DIR", "warehouse", "the dbt project", "dbt_project"),
    Setting("CMS_SNOWFLAKE_SQL_DIR", "warehouse", "SQL applied by cms snowflake setup", "infra/snowflake"),
    Setting("CMS_SNOWFLAKE_S3_ROLE_ARN", "warehouse", "IAM role Snowflake's storage integration assumes (snowflake-access stack output)"),
    Setting("AWS_ENDPOINT_URL", "aws", "endpoint for every AWS service (moto, private endpoints)"),
    Setting("AWS_DEFAULT_REGION", "aws", "default region", "us-east-1"),
    Setting("AWS_REGION", "aws", "region when AWS_DEFAULT_REGION is unset (as the AWS SDKs read it)"),
    Setting("AWS_ACCESS_KEY_ID", "aws", "credentials (or a profile / instance role)"),
    Setting("AWS_SECRET_ACCESS_KEY", "aws", "credentials", secret=True),
    Setting("CMS_AWS_REGIONS", "aws", "regions to collect CloudWatch from (comma list)"),
    Setting("CMS_AWS_ROLE_ARNS", "aws", "accounts to assume into (comma list of role ARNs)"),
    Setting(
        "CMS_CW_NAMESPACES", "aws", "CloudWatch namespaces", "AWS/RDS,AWS/SQS,AWS/Lambda,ContainerInsights"
    ),
    Setting("CMS_CW_RESOURCE_FILTER", "aws", "resource names or tag filters to collect (comma list)"),
    Setting(
        "CMS_CW_STATISTICS", "aws", "statistics to collect", "Average,Sum,Minimum,Maximum,SampleCount,p99"
    ),
    Setting("CMS_METRIC_STREAMS_URL", "aws", "s3:// prefix where Firehose delivers Metric Streams files"),
    Setting("CMS_INGEST_API_KEYS", "ingest", "receiver API keys: team:key,team:key", secret=True),
    Setting("CMS_INGEST_API_KEYS_FILE", "ingest", "receiver API keys as a YAML file (team: key, or team: {keys, services}; docs/security.md)"),
    Setting("OTEL_EXPORTER_OTLP_ENDPOINT", "sdk", "where SDKs send OTLP/HTTP", "http://127.0.0.1:4318"),
    Setting("OTEL_EXPORTER_OTLP_HEADERS", "sdk", "SDK headers (authorization=Bearer <key>)", secret=True),
    Setting("OTEL_SERVICE_NAME", "sdk", "SDK service.name"),
    Setting("CMS_ENVIRONMENT", "sdk", "dev | staging | prod | demo", "demo"),
    Setting("CMS_LLM", "llm", "offline (deterministic engine) or openai", "offline"),
    Setting("OPENAI_API_KEY", "llm", "OpenAI API key", secret=True),
    Setting("OPENAI_BASE_URL", "llm", "OpenAI-compatible endpoint", secret=True),
    Setting("CMS_LLM_MODEL", "llm", "model name", "gpt-4o-mini"),
    Setting("CMS_TIMEZONE", "nlq", "business time zone of 'today', 'yesterday', 'since 9am' in cms ask (IANA name)", "UTC"),
    Setting("CMS_LLM_MAX_TOKENS", "llm", "token budget per call (prompt + answer)", "6000"),
    Setting("CMS_LLM_TIMEOUT_S", "llm", "seconds before one OpenAI request times out", "30"),
    Setting("CMS_LLM_MAX_RETRIES", "llm", "retries of a failed or timed-out OpenAI request", "2"),
    Setting("CMS_ALERT_CHANNELS", "alerts", "outbox,sns,slack,webhook,pagerduty", "outbox"),
    Setting("CMS_ALERT_RULES_FILE", "alerts", "alert routing rules YAML", "(packaged alert_rules.yaml)"),
    Setting("CMS_DAGSTER_URL", "alerts", "the Dagster UI that alert messages link to", "http://127.0.0.1:3000"),
    Setting("CMS_SNS_TOPIC_ARN", "alerts", "SNS topic for alerts"),
    Setting("SLACK_BOT_TOKEN", "alerts", "Slack bot token", secret=True),
    Setting("CMS_SLACK_CHANNEL", "alerts", "Slack channel", "#cms-alerts"),
    Setting("SLACK_API_URL", "alerts", "Slack Web API base URL (stand-ins)"),
    Setting("CMS_WEBHOOK_URL", "alerts", "generic webhook URL", secret=True),
    Setting("PAGERDUTY_ROUTING_KEY", "alerts", "PagerDuty Events v2 integration key", secret=True),
    Setting("PAGERDUTY_EVENTS_URL", "alerts", "PagerDuty Events v2 endpoint (stand-ins)"),
    Setting("CMS_DOMAIN_FILE", "domain", "the estate ontology YAML", "(packaged estate.yaml)"),
    Setting("CMS_PUBLISH_RUN_METRICS", "infra", "1: the run-failure sensor publishes CMS/Dagster RunFailures to CloudWatch"),
    Setting("CMS_INFRA_DIR", "infra", "CloudFormation templates directory", "infra/cloudformation"),
    Setting("CMS_DAGSTER_STORAGE", "orchestrator", "Dagster run/event/schedule storage: sqlite (embedded) or postgres", "sqlite"),
    Setting("DAGSTER_PG_HOST", "orchestrator", "PostgreSQL host of Dagster's storage"),
    Setting("DAGSTER_PG_PORT", "orchestrator", "PostgreSQL port", "5432"),
    Setting("DAGSTER_PG_USER", "orchestrator", "PostgreSQL user", "dagster"),
    Setting("DAGSTER_PG_PASSWORD", "orchestrator", "PostgreSQL password (read by Dagster at start)", secret=True),
    Setting("DAGSTER_PG_DB", "orchestrator", "PostgreSQL database", "dagster"),
    Setting("CMS_DAGSTER_COMPUTE_LOGS_URL", "orchestrator", "s3://bucket/prefix for run logs (unset: local disk)"),
    Setting("CMS_DAGSTER_RUN_LAUNCHER", "orchestrator", "local (processes) or k8s (a pod per run)", "local"),
    Setting("CMS_DAGSTER_MAX_CONCURRENT_RUNS", "orchestrator", "runs in progress at once", "2 embedded, 10 production"),
    Setting("CMS_DAGSTER_MAX_COLLECTION_RUNS", "orchestrator", "CloudWatch collection runs at once", "2"),
    Setting("CMS_K8S_NAMESPACE", "orchestrator", "namespace of the run pods", "cms"),
    Setting("CMS_K8S_IMAGE", "orchestrator", "run pod image (default: the code location's image)"),
    Setting("CMS_K8S_SERVICE_ACCOUNT", "orchestrator", "run pods' service account (IAM role via IRSA)", "cms-dagster"),
    Setting("CMS_K8S_ENV_SECRET", "orchestrator", "Kubernetes secret with the CMS_* / SNOWFLAKE_* settings", "cms-settings"),
    Setting("CMS_K8S_KUBECONFIG", "orchestrator", "kubeconfig file (unset: in-cluster config)"),
]


def _env(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def _list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in _env(environ, name).split(",") if p.strip())


def _number(environ: Mapping[str, str], name: str, default: float, kind: type = float) -> float:
    """The positive number (``kind``: float or int) in ``name``, else ``default``; a clear error otherwise."""
    raw = _env(environ, name)
    if not raw:
        return default
    wanted = "a positive whole number" if kind is int else "a positive number"
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: give {wanted} (default {default})") from None
    if not value > 0 and not (name == "CMS_LLM_MAX_RETRIES" and value == 0):
        raise ValueError(f"{name}={raw!r}: give {wanted} (default {default})")
    return value


SNOWFLAKE_AUTHS = ("credentials", "container")
ALERT_CHANNELS = ("outbox", "sns", "slack", "webhook", "pagerduty")


def _join(base: str, child: str) -> str:
    if base.startswith("s3://"):
        return base.rstrip("/") + "/" + child
    return str(Path(base) / child)


@dataclass(frozen=True)
class Settings:
    home: Path
    dagster_home: Path
    lake_url: str
    raw_url: str
    processed_url: str
    archive_url: str
    warehouse: str
    duckdb_path: Path
    llm: str
    llm_model: str
    alert_channels: tuple[str, ...]
    environment: str
    domain_file: str
    # ingest receiver keys (secret: kept out of repr and masked by as_dict)
    ingest_api_keys: str = field(default="", repr=False, metadata={"env": "CMS_INGEST_API_KEYS"})
    ingest_api_keys_file: str = ""
    # CloudWatch collection (empty regions, role ARNs and endpoint = not configured: embedded mode)
    aws_endpoint_url: str = ""
    aws_default_region: str = "us-east-1"
    aws_regions: tuple[str, ...] = ()
    aws_role_arns: tuple[str, ...] = ()
    cw_namespaces: tuple[str, ...] = ("AWS/RDS", "AWS/SQS", "AWS/Lambda", "ContainerInsights")
    cw_resource_filter: tuple[str, ...] = ()
    cw_statistics: tuple[str, ...] = ("Average", "Sum", "Minimum", "Maximum", "SampleCount", "p99")
    metric_streams_url: str = ""
    # LLM (CMS_LLM=openai): secrets kept out of repr and masked by as_dict
    openai_api_key: str = field(default="", repr=False, metadata={"env": "OPENAI_API_KEY"})
    openai_base_url: str = field(default="", repr=False, metadata={"env": "OPENAI_BASE_URL"})
    llm_max_tokens: int = 6000
    llm_timeout_s: float = 30.0
    llm_max_retries: int = 2
    # alert channels (CMS_ALERT_CHANNELS)
    alert_rules_file: str = ""
    dagster_url: str = "http://127.0.0.1:3000"
    sns_topic_arn: str = ""
    slack_bot_token: str = field(default="", repr=False, metadata={"env": "SLACK_BOT_TOKEN"})
    slack_channel: str = "#cms-alerts"
    slack_api_url: str = ""
    webhook_url: str = field(default="", repr=False, metadata={"env": "CMS_WEBHOOK_URL"})
    pagerduty_routing_key: str = field(default="", repr=False, metadata={"env": "PAGERDUTY_ROUTING_KEY"})
    pagerduty_events_url: str = ""
    # business time zone: the day "today" means in cms ask (IANA name)
    timezone: str = "UTC"
    # Snowflake (CMS_WAREHOUSE=snowflake); the dbt profile reads the same variables
    snowflake_account: str = ""
    snowflake_user: str = ""
    snowflake_password: str = field(default="", repr=False, metadata={"env": "SNOWFLAKE_PASSWORD"})
    snowflake_private_key_path: str = ""
    snowflake_role: str = "CMS_TRANSFORMER"
    snowflake_load_role: str = "CMS_LOADER"
    snowflake_warehouse: str = "CMS_TRANSFORM_M"
    snowflake_database: str = "CMS"
    snowflake_host: str = ""
    snowflake_port: str = ""
    snowflake_protocol: str = ""
    # how to sign in: "credentials" (user + password or key pair) or "container" (Snowpark Container Services'
    # OAuth token file, which Snowflake keeps fresh: read at every connection)
    snowflake_auth: str = "credentials"
    snowflake_token_file: str = "/snowflake/session/token"
    snowflake_s3_role_arn: str = ""
    snowflake_sql_dir: str = ""
    # dbt: the target (empty = follow CMS_WAREHOUSE) and project folder (empty = dbt_project/ of the checkout)
    dbt_target: str = ""
    dbt_project_dir: str = ""
    # infra
    publish_run_metrics: str = ""
    infra_dir: str = ""

    @property
    def aws_configured(self) -> bool:
        """True when an AWS account or endpoint is configured for collection (else the simulator stands in)."""
        return bool(self.aws_regions or self.aws_role_arns or self.aws_endpoint_url)

    @property
    def is_embedded(self) -> bool:
        return self.warehouse == "duckdb" and not self.raw_url.startswith("s3://")

    def as_dict(self) -> dict[str, str]:
        return {
            f.name: mask(f.metadata["env"], str(getattr(self, f.name)))
            if "env" in f.metadata
            else str(getattr(self, f.name))
            for f in fields(self)
        }


def load(environ: Mapping[str, str] | None = None, *, overrides: Mapping[str, str | None] | None = None) -> Settings:
    """Effective settings from the environment (``os.environ`` by default). ``overrides`` (variable -> value;
    empty values ignored) take precedence: Dagster resources pass their configured fields this way."""
    env = os.environ if environ is None else environ
    if overrides:
        env = {**env, **{k: str(v) for k, v in overrides.items() if v not in (None, "")}}
    home = Path(_env(env, "CMS_HOME") or ".cms").expanduser().resolve()
    lake = _env(env, "CMS_LAKE_URL") or str(home / "lake")
    if not lake.startswith("s3://"):
        lake = str(Path(lake).expanduser().resolve())
    warehouse = (_env(env, "CMS_WAREHOUSE") or "duckdb").lower()
    if warehouse not in ("duckdb", "snowflake"):
        raise ValueError(f"CMS_WAREHOUSE={warehouse!r}: use 'duckdb' (embedded) or 'snowflake'")
    snowflake_auth = (_env(env, "CMS_SNOWFLAKE_AUTH") or "credentials").lower()
    if snowflake_auth not in SNOWFLAKE_AUTHS:
        raise ValueError(
            f"CMS_SNOWFLAKE_AUTH={snowflake_auth!r}: use 'credentials' (SNOWFLAKE_USER with SNOWFLAKE_PASSWORD or "
            "SNOWFLAKE_PRIVATE_KEY_PATH) or 'container' (inside Snowpark Container Services)"
        )
    llm = (_env(env, "CMS_LLM") or "offline").lower()
    if llm not in ("offline", "openai"):
        raise ValueError(f"CMS_LLM={llm!r}: use 'offline' or 'openai'")
    channels = tuple(c.strip() for c in (_env(env, "CMS_ALERT_CHANNELS") or "outbox").split(",") if c.strip())
    bad = [c for c in channels if c not in ALERT_CHANNELS]
    if bad:
        raise ValueError(
            f"CMS_ALERT_CHANNELS has unknown channel(s) {bad}: use {', '.join(ALERT_CHANNELS)}"
        )
    return Settings(
        home=home,
        dagster_home=Path(_env(env, "DAGSTER_HOME") or home / "dagster").resolve(),
        lake_url=lake,
        raw_url=_env(env, "CMS_RAW_URL") or _join(lake, "raw"),
        processed_url=_env(env, "CMS_PROCESSED_URL") or _join(lake, "processed"),
        archive_url=_env(env, "CMS_ARCHIVE_URL") or _join(lake, "archive"),
        warehouse=warehouse,
        duckdb_path=Path(_env(env, "CMS_DUCKDB_PATH") or home / "warehouse.duckdb").resolve(),
        llm=llm,
        llm_model=_env(env, "CMS_LLM_MODEL") or "gpt-4o-mini",
        alert_channels=channels,
        environment=_env(env, "CMS_ENVIRONMENT") or "demo",
        domain_file=_env(env, "CMS_DOMAIN_FILE"),
        ingest_api_keys=_env(env, "CMS_INGEST_API_KEYS"),
        ingest_api_keys_file=_env(env, "CMS_INGEST_API_KEYS_FILE"),
        aws_endpoint_url=_env(env, "AWS_ENDPOINT_URL"),
        aws_default_region=_env(env, "AWS_DEFAULT_REGION") or _env(env, "AWS_REGION") or "us-east-1",
        aws_regions=_list(env, "CMS_AWS_REGIONS"),
        aws_role_arns=_list(env, "CMS_AWS_ROLE_ARNS"),
        cw_namespaces=_list(env, "CMS_CW_NAMESPACES")
        or ("AWS/RDS", "AWS/SQS", "AWS/Lambda", "ContainerInsights"),
        cw_resource_filter=_list(env, "CMS_CW_RESOURCE_FILTER"),
        cw_statistics=_list(env, "CMS_CW_STATISTICS")
        or ("Average", "Sum", "Minimum", "Maximum", "SampleCount", "p99"),
        metric_streams_url=_env(env, "CMS_METRIC_STREAMS_URL"),
        openai_api_key=_env(env, "OPENAI_API_KEY"),
        openai_base_url=_env(env, "OPENAI_BASE_URL"),
        llm_max_tokens=int(_number(env, "CMS_LLM_MAX_TOKENS", 6000, int)),
        llm_timeout_s=float(_number(env, "CMS_LLM_TIMEOUT_S", 30.0)),
        llm_max_retries=int(_number(env, "CMS_LLM_MAX_RETRIES", 2, int)),
        alert_rules_file=_env(env, "CMS_ALERT_RULES_FILE"),
        dagster_url=(_env(env, "CMS_DAGSTER_URL") or "http://127.0.0.1:3000").rstrip("/"),
        sns_topic_arn=_env(env, "CMS_SNS_TOPIC_ARN"),
        slack_bot_token=_env(env, "SLACK_BOT_TOKEN"),
        slack_channel=_env(env, "CMS_SLACK_CHANNEL") or "#cms-alerts",
        slack_api_url=_env(env, "SLACK_API_URL"),
        webhook_url=_env(env, "CMS_WEBHOOK_URL"),
        pagerduty_routing_key=_env(env, "PAGERDUTY_ROUTING_KEY"),
        pagerduty_events_url=_env(env, "PAGERDUTY_EVENTS_URL"),
        timezone=_timezone(_env(env, "CMS_TIMEZONE") or "UTC"),
        snowflake_account=_env(env, "SNOWFLAKE_ACCOUNT"),
        snowflake_user=_env(env, "SNOWFLAKE_USER"),
        snowflake_password=_env(env, "SNOWFLAKE_PASSWORD"),
        snowflake_private_key_path=_env(env, "SNOWFLAKE_PRIVATE_KEY_PATH"),
        snowflake_role=_env(env, "SNOWFLAKE_ROLE") or "CMS_TRANSFORMER",
        snowflake_load_role=_env(env, "CMS_SNOWFLAKE_LOAD_ROLE") or "CMS_LOADER",
        snowflake_warehouse=_env(env, "SNOWFLAKE_WAREHOUSE") or "CMS_TRANSFORM_M",
        snowflake_database=_env(env, "SNOWFLAKE_DATABASE") or "CMS",
        snowflake_host=_env(env, "SNOWFLAKE_HOST"),
        snowflake_port=_env(env, "SNOWFLAKE_PORT"),
        snowflake_protocol=_env(env, "SNOWFLAKE_PROTOCOL"),
        snowflake_auth=snowflake_auth,
        snowflake_token_file=_env(env, "CMS_SNOWFLAKE_TOKEN_FILE") or "/snowflake/session/token",
        snowflake_s3_role_arn=_env(env, "CMS_SNOWFLAKE_S3_ROLE_ARN"),
        snowflake_sql_dir=_env(env, "CMS_SNOWFLAKE_SQL_DIR"),
        dbt_target=_env(env, "DBT_TARGET").lower(),
        dbt_project_dir=_env(env, "CMS_DBT_PROJECT_DIR"),
        publish_run_metrics=_env(env, "CMS_PUBLISH_RUN_METRICS"),
        infra_dir=_env(env, "CMS_INFRA_DIR"),
    )


def _timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"CMS_TIMEZONE={name!r}: not a known time zone; use an IANA name such as UTC, Europe/London or America/New_York"
        ) from None
    return name


def is_set(name: str) -> bool:
    """Whether the variable ``name`` is set (non-empty) in this process's environment."""
    return bool(_env(os.environ, name))


def process_environment(overrides: Mapping[str, str] | None = None, *, path_first: str | None = None) -> dict[str, str]:
    """The environment for a child process (dbt, the demo's services): this process's, plus ``overrides``;
    ``path_first`` goes to the front of ``PATH`` (e.g. the virtualenv's ``bin``, for tools found on PATH)."""
    env = {**os.environ, **(overrides or {})}
    if path_first:
        env["PATH"] = os.pathsep.join(p for p in (path_first, env.get("PATH", "")) if p)
    return env


def aws_identity() -> tuple[str | None, ...]:
    """The variables that decide which AWS endpoint, region and credentials a new boto3 client uses (a
    cache key for clients built from the standard AWS environment)."""
    return tuple(
        os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")
    )


def export_dagster_home(path: Path) -> None:
    """Point this process's Dagster (``DagsterInstance.get()`` reads ``DAGSTER_HOME``) at ``path``."""
    os.environ["DAGSTER_HOME"] = str(path)


@contextlib.contextmanager
def dagster_variable(name: str, value: str) -> Iterator[None]:
    """Set one of Dagster's own switches (``DAGSTER_*``, read from the process environment) for the duration."""
    if not name.startswith("DAGSTER_"):
        raise ValueError(f"{name} is not a Dagster variable")
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


# the event-time window of a partition's dbt build, for the dbt process it starts (read by
# dbt_project/macros/windows.sql at run time only, so that dbt's partial parsing survives a new window)
DBT_WINDOW_VARIABLES = {"window_start": "CMS_DBT_WINDOW_START", "window_end": "CMS_DBT_WINDOW_END"}
_DBT_WINDOW_LOCK = threading.Lock()


@contextlib.contextmanager
def dbt_window(window: Mapping[str, str]) -> Iterator[None]:
    """Set the dbt window variables (``window_start`` / ``window_end``: ``CMS_DBT_WINDOW_START`` / ``_END``)
    for the duration, so that a dbt process started meanwhile inherits them; unset ones are removed. One
    window at a time per process: a second thread's ``dbt_window`` waits until the first one's ends, so two
    dbt builds started at once from one process never see each other's window."""
    with _DBT_WINDOW_LOCK:
        saved = {env: os.environ.get(env) for env in DBT_WINDOW_VARIABLES.values()}
        for key, env in DBT_WINDOW_VARIABLES.items():
            if window.get(key):
                os.environ[env] = window[key]
            else:
                os.environ.pop(env, None)
        try:
            yield
        finally:
            for env, value in saved.items():
                if value is None:
                    os.environ.pop(env, None)
                else:
                    os.environ[env] = value


def mask(name: str, value: str) -> str:
    """Hide a secret's value but show that it is set."""
    if not value:
        return ""
    spec = next((s for s in SETTINGS if s.env == name), None)
    secret = spec.secret if spec else any(m in name for m in SECRET_MARKERS)
    if not secret:
        return value
    if name == "CMS_INGEST_API_KEYS":
        return ",".join(f"{p.split(':', 1)[0]}:****" for p in value.split(",") if p)
    if "://" in value:
        return mask_url(value)
    return "****" + (value[-4:] if len(value) > 12 else "")


def mask_url(value: str) -> str:
    """A secret URL as ``scheme://host[:port]/****``: where it points, without user, password, path
    (a webhook's path is its secret) or query."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(value.strip())
        host = u.hostname or ""
        port = f":{u.port}" if u.port else ""
    except ValueError:
        return "****"
    if not u.scheme or not host:
        return "****"
    user = "****@" if (u.username or u.password) else ""
    rest = "/****" if (u.path.strip("/") or u.query or u.fragment) else ""
    return f"{u.scheme}://{user}{host}{port}{rest}"


def describe(environ: Mapping[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(group, variable, effective value, where it came from) for every setting, secrets masked."""
    env = os.environ if environ is None else environ
    s = load(env)
    derived = {
        "CMS_HOME": str(s.home),
        "DAGSTER_HOME": str(s.dagster_home),
        "CMS_LAKE_URL": s.lake_url,
        "CMS_RAW_URL": s.raw_url,
        "CMS_PROCESSED_URL": s.processed_url,
        "CMS_ARCHIVE_URL": s.archive_url,
        "CMS_WAREHOUSE": s.warehouse,
        "CMS_DUCKDB_PATH": str(s.duckdb_path),
        "CMS_LLM": s.llm,
        "CMS_LLM_MODEL": s.llm_model,
        "CMS_ALERT_CHANNELS": ",".join(s.alert_channels),
        "CMS_ENVIRONMENT": s.environment,
        "CMS_TIMEZONE": s.timezone,
    }
    rows = []
    for spec in SETTINGS:
        raw = _env(env, spec.env)
        if raw:
            rows.append((spec.group, spec.env, mask(spec.env, raw), "env"))
        elif spec.env in derived:
            rows.append((spec.group, spec.env, derived[spec.env], "default"))
        else:
            rows.append((spec.group, spec.env, spec.default, "default" if spec.default else "unset"))
    return rows


@dataclass(frozen=True)
class OrchestratorSettings:
    """Which Dagster instance CMS runs on (cms_dagster.infra.dagster_instance turns this into dagster.yaml)."""

    storage: str = "sqlite"
    compute_logs_url: str = ""
    run_launcher: str = "local"
    max_concurrent_runs: int = 2
    max_collection_runs: int = 2
    pg_host: str = ""
    pg_port: int = 5432
    pg_user: str = "dagster"
    pg_db: str = "dagster"
    k8s_namespace: str = "cms"
    k8s_image: str = ""
    k8s_service_account: str = "cms-dagster"
    k8s_env_secret: str = "cms-settings"
    k8s_kubeconfig: str = ""
    k8s_instance_config_map: str = "dagster-instance"
    k8s_postgres_secret: str = "dagster-postgresql-secret"
    k8s_run_cpu: str = "500m"
    k8s_run_memory: str = "2Gi"
    aws_region: str = ""
    aws_endpoint_url: str = ""

    @property
    def production(self) -> bool:
        return self.storage != "sqlite" or self.run_launcher != "local" or bool(self.compute_logs_url)

    @property
    def queued(self) -> bool:
        """Production uses the queued run coordinator with per-tag limits."""
        return self.production


def load_orchestrator(environ: Mapping[str, str] | None = None) -> OrchestratorSettings:
    """The Dagster instance settings (CMS_DAGSTER_*, CMS_K8S_*) from the environment."""
    env = os.environ if environ is None else environ
    storage = (_env(env, "CMS_DAGSTER_STORAGE") or "sqlite").lower()
    if storage not in ("sqlite", "postgres"):
        raise ValueError(f"CMS_DAGSTER_STORAGE={storage!r}: use 'sqlite' (embedded) or 'postgres'")
    launcher = (_env(env, "CMS_DAGSTER_RUN_LAUNCHER") or "local").lower()
    if launcher not in ("local", "k8s"):
        raise ValueError(f"CMS_DAGSTER_RUN_LAUNCHER={launcher!r}: use 'local' or 'k8s'")
    if storage == "postgres" and not _env(env, "DAGSTER_PG_HOST"):
        raise ValueError("CMS_DAGSTER_STORAGE=postgres needs DAGSTER_PG_HOST (and DAGSTER_PG_PASSWORD)")
    base = OrchestratorSettings(storage=storage, run_launcher=launcher, compute_logs_url=_env(env, "CMS_DAGSTER_COMPUTE_LOGS_URL"))
    return OrchestratorSettings(
        storage=storage,
        compute_logs_url=base.compute_logs_url,
        run_launcher=launcher,
        max_concurrent_runs=int(_number(env, "CMS_DAGSTER_MAX_CONCURRENT_RUNS", 10 if base.production else 2, int)),
        max_collection_runs=int(_number(env, "CMS_DAGSTER_MAX_COLLECTION_RUNS", 2, int)),
        pg_host=_env(env, "DAGSTER_PG_HOST"),
        pg_port=int(_number(env, "DAGSTER_PG_PORT", 5432, int)),
        pg_user=_env(env, "DAGSTER_PG_USER") or "dagster",
        pg_db=_env(env, "DAGSTER_PG_DB") or "dagster",
        k8s_namespace=_env(env, "CMS_K8S_NAMESPACE") or "cms",
        k8s_image=_env(env, "CMS_K8S_IMAGE"),
        k8s_service_account=_env(env, "CMS_K8S_SERVICE_ACCOUNT") or "cms-dagster",
        k8s_env_secret=_env(env, "CMS_K8S_ENV_SECRET") or "cms-settings",
        k8s_kubeconfig=_env(env, "CMS_K8S_KUBECONFIG"),
        aws_region=_env(env, "AWS_DEFAULT_REGION") or _env(env, "AWS_REGION"),
        aws_endpoint_url=_env(env, "AWS_ENDPOINT_URL"),
    )
