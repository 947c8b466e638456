"""Helpers for asserting on CloudFormation templates (parsed by cms_dagster.infra.templates.load_template)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def resources(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def props(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].get("Properties", {})


def default(template: Mapping[str, Any], parameter: str) -> Any:
    return template["Parameters"][parameter]["Default"]


def statements(policy_document: Mapping[str, Any]) -> list[dict[str, Any]]:
    stmts = policy_document["Statement"]
    return stmts if isinstance(stmts, list) else [stmts]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def substitute(sub: Any, values: Mapping[str, Any]) -> str:
    """Evaluate an ``Fn::Sub`` string with the given parameter/pseudo-parameter values."""
    text, local = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
    scope = {**values, **local}

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name not in scope:
            raise KeyError(f"no value for ${{{name}}}")
        return str(scope[name])

    return re.sub(r"\$\{([^}]+)\}", repl, text)


def sub_text(value: Any) -> str:
    """The raw text of an ``Fn::Sub`` (or a plain string)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    assert isinstance(value, str), f"expected a string or Fn::Sub, got {value!r}"
    return value


OIDC_URL = "oidc.eks.{region}.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"


def eks_cluster_parameters(region: str, endpoint_url: str | None = None) -> list[str]:
    """What the orchestrator stack needs from the estate's EKS cluster, made in the fake account: a VPC with
    two private subnets, the cluster's security group and its IAM OIDC provider (`--parameter` items)."""
    import boto3

    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint_url)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName="eks-cluster-sg", Description="EKS cluster", VpcId=vpc)["GroupId"]
    url = OIDC_URL.format(region=region)
    iam = boto3.client("iam", region_name=region, endpoint_url=endpoint_url)
    arn = iam.create_open_id_connect_provider(
        Url=f"https://{url}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40]
    )["OpenIDConnectProviderArn"]
    return [
        f"orchestrator.VpcId={vpc}",
        f"orchestrator.SubnetIds={','.join(subnets)}",
        f"orchestrator.ClusterSecurityGroupId={group}",
        f"orchestrator.OidcProviderArn={arn}",
        f"orchestrator.OidcProviderUrl={url}",
    ]
