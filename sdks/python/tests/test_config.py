"""Configuration: OTel environment variables, config-file profiles, precedence and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cms_sdk import CmsClient, ConfigError
from cms_sdk.config import resolve

PROFILES = {
    "default_profile": "dev",
    "profiles": {
        "dev": {"endpoint": "http://127.0.0.1:4318", "service_name": "pricing-batch"},
        "staging": {"endpoint": "http://cms-staging:4318", "service_name": "pricing-batch", "max_retries": 2},
        "prod": {
            "endpoint": "https://cms.example.internal:4318",
            "headers": {"authorization": "Bearer PROD"},
            "spool_dir": "/var/spool/cms-sdk",
            "self_metrics": True,
        },
    },
}


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    p = tmp_path / "cms-sdk.json"
    p.write_text(json.dumps(PROFILES))
    return str(p)


def test_otel_environment_variables_configure_the_client() -> None:
    c = resolve(
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://cms:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc123,x-team=fx",
            "OTEL_SERVICE_NAME": "fx-rates",
            "CMS_ENVIRONMENT": "staging",
            "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=fx,service.name=ignored",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "CMS_MAX_QUEUE_SIZE": "100000",
        }
    )
    assert c.url == "http://cms:4318/v1/metrics"
    assert c.headers == {"authorization": "Bearer abc123", "x-team": "fx"}
    assert (c.service_name, c.environment, c.timeout_ms, c.max_queue_size) == ("fx-rates", "staging", 2500, 100000)
    client = CmsClient(environ={"OTEL_SERVICE_NAME": "fx-rates", "OTEL_RESOURCE_ATTRIBUTES": "service.name=x,k=v"}, start=False)
    res = client.resource_attributes()
    assert res["service.name"] == "fx-rates" and res["k"] == "v"  # resource attributes never override


def test_metrics_endpoint_is_used_as_is_and_metrics_headers_win_per_key() -> None:
    c = resolve(
        environ={
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318/custom/path",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "b=3",
        }
    )
    assert c.url == "http://collector:4318/custom/path" and c.headers == {"a": "1", "b": "3"}


def test_defaults_without_any_configuration() -> None:
    c = resolve(environ={})
    assert (c.url, c.service_name, c.environment, c.compression) == (
        "http://127.0.0.1:4318/v1/metrics", "unknown_service", "dev", "none",
    )
    assert c.spool_path is not None and c.spool_path.name == "unknown_service"


def test_profiles_dev_staging_prod_from_a_config_file(config_file: str) -> None:
    dev = resolve(environ={"CMS_CONFIG_FILE": config_file})
    assert (dev.profile, dev.environment, dev.endpoint) == ("dev", "dev", "http://127.0.0.1:4318")
    prod = resolve(environ={"CMS_CONFIG_FILE": config_file, "CMS_PROFILE": "prod"})
    assert prod.environment == "prod" and prod.headers == {"authorization": "Bearer PROD"} and prod.self_metrics
    assert str(prod.spool_path) == "/var/spool/cms-sdk"
    staging = resolve(config_file=config_file, profile="staging", environ={})
    assert staging.max_retries == 2 and staging.endpoint == "http://cms-staging:4318"


def test_profile_named_like_the_environment_is_chosen_without_a_default(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"profiles": PROFILES["profiles"]}))
    c = resolve(environ={"CMS_CONFIG_FILE": str(p), "CMS_ENVIRONMENT": "staging"})
    assert c.profile == "staging" and c.endpoint == "http://cms-staging:4318"


def test_precedence_explicit_over_environment_over_profile(config_file: str) -> None:
    env = {"CMS_CONFIG_FILE": config_file, "CMS_PROFILE": "prod", "OTEL_SERVICE_NAME": "from-env"}
    c = resolve(environ=env)
    assert c.service_name == "from-env" and c.endpoint == "https://cms.example.internal:4318"
    c = resolve({"service_name": "explicit", "endpoint": "http://x:1"}, environ=env)
    assert (c.service_name, c.endpoint) == ("explicit", "http://x:1")


def test_toml_config_file(tmp_path: Path) -> None:
    pytest.importorskip("tomllib")
    p = tmp_path / "cms.toml"
    p.write_text('default_profile = "prod"\n[profiles.prod]\nendpoint = "http://p:4318"\nmax_batch_size = 2000\n')
    c = resolve(environ={"CMS_CONFIG_FILE": str(p)})
    assert (c.endpoint, c.max_batch_size, c.environment) == ("http://p:4318", 2000, "prod")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CMS_CONFIG_FILE": "/nonexistent/cms.json"}, "does not exist"),
        ({"CMS_PROFILE": "prod"}, "no config file"),
        ({"CMS_MAX_QUEUE_SIZE": "lots"}, "not an integer"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "gzip or none"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "key=value"),
    ],
)
def test_bad_configuration_is_reported_when_the_client_is_built(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CmsClient(environ=env, start=False)


def test_unknown_profile_lists_the_known_ones(config_file: str) -> None:
    with pytest.raises(ConfigError, match="dev, prod, staging"):
        resolve(environ={"CMS_CONFIG_FILE": config_file, "CMS_PROFILE": "qa"})
