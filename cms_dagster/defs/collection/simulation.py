"""The simulator as an asset: on the embedded default it stands in for CloudWatch and SDK traffic."""

import dagster as dg

from cms_dagster.domain import load_ontology
from cms_dagster.lake import simulation_prefix
from cms_dagster.resources import LakeResource, WarehouseResource
from cms_dagster.simulate.incidents import parse_time
from cms_dagster.simulate.replay import replay_through_receiver
from cms_dagster.simulate.run import DEFAULT_START, simulate


class SimulationConfig(dg.Config):
    days: int = 7
    seed: int = 42
    start: str = DEFAULT_START.strftime("%Y-%m-%d")
    via_sdk: list[str] = []  # asset classes whose batch runs go through the Python SDK and the receiver


@dg.asset(
    key=["raw", "simulation"],
    group_name="collection",
    kinds={"python"},
    description="Simulated estate (CloudWatch + SDK business metrics with injected incidents) written to the "
    "raw zone, with its ground truth in the archive zone. Embedded mode only: skipped when the lake is on S3 "
    "or the warehouse is Snowflake, where real sources feed the raw zone.",
)
def simulation(
    context: dg.AssetExecutionContext, config: SimulationConfig, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    s = lake.settings()
    if s.raw_url.startswith("s3://") or warehouse.settings().warehouse != "duckdb":
        context.log.info("skipped: production mode (S3 lake or Snowflake): real sources feed the raw zone")
        return dg.MaterializeResult(metadata={"skipped": "production mode: real sources feed the raw zone"})
    res = simulate(
        load_ontology(s.domain_file or None),
        lake.lake(),
        days=config.days,
        seed=config.seed,
        start=parse_time(config.start),
        via_sdk=config.via_sdk,
        environment=s.environment,
        progress=context.log.info,
    )
    summary = res.summary()
    if res.sdk_events:
        # these runs go the production way: Python SDK -> OTLP/HTTP receiver -> raw zone (receipt hour)
        sent = replay_through_receiver(res.sdk_events, s.raw_url, s.environment, context.log.info)
        summary["sdk_points_exported"] = sent["exported"]
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.text(str(v)) if isinstance(v, str) else v for k, v in summary.items()},
            "labels": dg.MetadataValue.path(lake.lake().archive.uri(f"{simulation_prefix(res.name)}labels.json")),
        }
    )
