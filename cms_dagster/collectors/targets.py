"""Which AWS accounts and regions the collector polls: the role ARNs of the settings, the account each
role belongs to, the (account, region) targets and their partition keys, and a client per target.

Plain Python (boto3); no Dagster: the Dagster wiring partitions ``raw/cloudwatch`` by :func:`target_keys`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cms_dagster.collectors.cloudwatch import ApiCounter, fast_timestamps

if TYPE_CHECKING:
    from cms_dagster.collectors.collector import CollectorConfig

__all__ = [
    "NOT_CONFIGURED",
    "Clients",
    "Target",
    "account_of",
    "resolve_targets",
    "roles_of_account",
    "target_keys",
]

NOT_CONFIGURED = (
    "no AWS account or endpoint is configured (CMS_AWS_REGIONS, CMS_AWS_ROLE_ARNS and AWS_ENDPOINT_URL are "
    "unset), so CloudWatch is not polled: in the embedded mode the simulator stands in for it. Set "
    "CMS_AWS_REGIONS (and credentials or CMS_AWS_ROLE_ARNS) to collect from AWS"
)


def account_of(role_arn: str) -> str:
    """The account id of a role ARN (``arn:aws:iam::123456789012:role/cms`` -> ``123456789012``); ValueError
    naming the entry when it is not a role ARN."""
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam" or not parts[4]:
        raise ValueError(
            f"CMS_AWS_ROLE_ARNS entry {role_arn!r} is not a role ARN: write arn:aws:iam::<account>:role/<name>"
        )
    return parts[4]


def target_keys(role_arns: Iterable[str], regions: Iterable[str]) -> list[str]:
    """``<account>-<region>`` of every collection target (``default`` when no role is given: the caller's)."""
    accounts = [account_of(arn) for arn in role_arns] or ["default"]
    return [f"{a}-{r}" for a in accounts for r in regions]


def roles_of_account(role_arns: Iterable[str], account: str) -> tuple[str, ...]:
    """The role ARNs that belong to ``account``."""
    return tuple(arn for arn in role_arns if account_of(arn) == account)


@dataclass
class Target:
    account_id: str
    region: str
    session: Any
    role_arn: str = ""

    @property
    def label(self) -> str:
        return f"{self.account_id}/{self.region}"


class Clients:
    def __init__(self, target: Target, config: CollectorConfig, counter: ApiCounter) -> None:
        self.target, self.config, self.counter = target, config, counter
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        c = self._clients.get(service)
        if c is None:
            from cms_dagster.lake import aws

            c = aws.client(
                service,
                region=self.target.region,
                mode=self.config.retry_mode,
                session=self.target.session,
                endpoint_url=self.config.endpoint_url or None,
            )
            self.counter.attach(c)
            self._clients[service] = c
        return c


def resolve_targets(config: CollectorConfig, session: Any, counter: ApiCounter) -> list[Target]:
    """(account, region) pairs to collect: each role of ``role_arns`` (assumed via STS), else the caller's."""
    from cms_dagster.lake import aws

    sts = counter.attach(
        aws.client("sts", region=config.default_region, session=session, endpoint_url=config.endpoint_url or None)
    )
    targets: list[Target] = []
    if config.role_arns:
        import boto3

        for arn in config.role_arns:
            account = account_of(arn)
            creds = sts.assume_role(RoleArn=arn, RoleSessionName="cms-collector")["Credentials"]
            sess = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=config.default_region,
            )
            fast_timestamps(sess)
            targets += [Target(account, r, sess, arn) for r in config.target_regions]
    else:
        account = sts.get_caller_identity()["Account"]
        targets += [Target(account, r, session) for r in config.target_regions]
    return targets
