"""Collection targets: the accounts of the configured roles, and one partition key per account and region."""

from __future__ import annotations

import pytest

from cms_dagster.collectors.targets import account_of, roles_of_account, target_keys

ROLES = ("arn:aws:iam::111122223333:role/cms-collector", "arn:aws:iam::444455556666:role/cms-collector")


def test_each_role_and_region_is_a_target_named_by_its_account() -> None:
    assert target_keys(ROLES, ["eu-west-1", "us-east-1"]) == [
        "111122223333-eu-west-1",
        "111122223333-us-east-1",
        "444455556666-eu-west-1",
        "444455556666-us-east-1",
    ]
    assert roles_of_account(ROLES, "444455556666") == (ROLES[1],)


def test_without_roles_the_callers_own_account_is_the_default_target() -> None:
    assert target_keys((), ["eu-west-1"]) == ["default-eu-west-1"]


def test_an_entry_that_is_not_a_role_arn_is_named_with_the_form_to_write() -> None:
    with pytest.raises(ValueError, match=r"'cms-collector' is not a role ARN: write arn:aws:iam::<account>:role/<name>"):
        account_of("cms-collector")
    assert account_of(ROLES[0]) == "111122223333"
