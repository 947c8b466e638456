"""boto3 clients configured from the standard AWS environment (``AWS_ENDPOINT_URL`` included).

Retries use botocore's standard mode with jitter; callers that poll heavily pass ``mode="adaptive"``.
"""

from __future__ import annotations

from typing import Any


def client(
    service: str, *, region: str | None = None, mode: str = "standard", session: Any = None, **kw: Any
) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"mode": mode, "max_attempts": 10}, **kw.pop("config_kwargs", {}))
    sess = session or boto3.session.Session()
    return sess.client(service, region_name=region or sess.region_name or "us-east-1", config=cfg, **kw)
