"""What the Dagster Helm chart does not create: PostgreSQL on RDS with a generated secret, and the IRSA
role of the Dagster service account. Asserted from the template where moto does not apply a setting."""

from __future__ import annotations

import pytest
from infra_helpers import props


@pytest.fixture(scope="module")
def template(templates):
    return templates["orchestrator"]


def test_the_password_is_generated_into_secrets_manager_and_never_a_parameter(template) -> None:
    secret = props(template, "DatabaseSecret")
    gen = secret["GenerateSecretString"]
    assert gen["GenerateStringKey"] == "password" and gen["PasswordLength"] >= 32
    assert secret["KmsKeyId"] == {"Ref": "KmsKeyArn"}
    db = props(template, "Database")
    assert "secretsmanager:${DatabaseSecret}:SecretString:password" in db["MasterUserPassword"]["Fn::Sub"]
    assert not any("password" in p.lower() for p in template["Parameters"])


def test_the_database_survives_what_production_does_to_it(template) -> None:
    res = template["Resources"]["Database"]
    db = res["Properties"]
    assert res["DeletionPolicy"] == "Snapshot" and res["UpdateReplacePolicy"] == "Snapshot"
    assert db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False
    assert db["DeletionProtection"] is True and db["MultiAZ"] == {"Ref": "DbMultiAz"}
    assert db["BackupRetentionPeriod"] == {"Ref": "DbBackupRetentionDays"}


def test_only_the_cluster_reaches_port_5432(template) -> None:
    (rule,) = props(template, "DatabaseSecurityGroup")["SecurityGroupIngress"]
    assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
    assert rule["SourceSecurityGroupId"] == {"Ref": "ClusterSecurityGroupId"}
    assert "CidrIp" not in rule
