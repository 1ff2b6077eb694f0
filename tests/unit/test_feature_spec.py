"""Unit tests for feature group declarations and the SageMaker request pieces built from them."""

from __future__ import annotations

import re
from datetime import timedelta

import botocore.session
import pytest
from botocore.validate import validate_parameters

from fraud_detection.features.catalog import FEATURE_GROUPS, model_feature_names
from fraud_detection.features.spec import (
    FEATURE_GROUP_NAME_PATTERN,
    FEATURE_NAME_PATTERN,
    Feature,
    FeatureGroupSpec,
    FeatureType,
)

I, F, S = FeatureType.INTEGRAL, FeatureType.FRACTIONAL, FeatureType.STRING

BASE_FEATURES = (
    Feature("card_id", I, "Card identifier."),
    Feature("event_time", F, "Seconds since the epoch."),
    Feature("amount", F, "Amount."),
)


def make_spec(**overrides) -> FeatureGroupSpec:
    values = {
        "name": "toy-group",
        "description": "A small group for tests.",
        "record_identifier": "card_id",
        "event_time_feature": "event_time",
        "features": BASE_FEATURES,
    }
    values.update(overrides)
    return FeatureGroupSpec(**values)


def with_feature(name: str, feature_type: FeatureType = F) -> tuple[Feature, ...]:
    return (*BASE_FEATURES, Feature(name, feature_type, "Extra feature."))


@pytest.fixture(scope="module")
def create_feature_group_shape():
    service_model = botocore.session.get_session().get_service_model("sagemaker")
    return service_model.operation_model("CreateFeatureGroup").input_shape


def create_request(spec: FeatureGroupSpec) -> dict:
    """Build a CreateFeatureGroup request with dummy offline store and role values."""
    return {
        "FeatureGroupName": spec.name,
        "RecordIdentifierFeatureName": spec.record_identifier,
        "EventTimeFeatureName": spec.event_time_feature,
        "FeatureDefinitions": spec.feature_definitions(),
        "OnlineStoreConfig": spec.online_store_config(),
        "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": "s3://example-bucket/offline-store"}},
        "RoleArn": "arn:aws:iam::123456789012:role/FeatureStoreRole",
        "Description": spec.description,
    }


def server_side_violations(value, shape, path: str = "") -> list[str]:
    """List values that break the max length, pattern or enum of their shape.

    ``validate_parameters`` checks only types, required members and minimums (botocore 1.44),
    so the rules that SageMaker enforces on the server are checked here.
    """
    violations = []
    metadata = shape.metadata
    if shape.type_name == "structure":
        for name, member_value in value.items():
            violations += server_side_violations(member_value, shape.members[name], f"{path}.{name}")
    elif shape.type_name == "list":
        if "max" in metadata and len(value) > metadata["max"]:
            violations.append(f"{path}: {len(value)} items, max {metadata['max']}")
        for index, item in enumerate(value):
            violations += server_side_violations(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "string":
        if "max" in metadata and len(value) > metadata["max"]:
            violations.append(f"{path}: {value!r} is longer than {metadata['max']}")
        if "pattern" in metadata and not re.fullmatch(metadata["pattern"], value):
            violations.append(f"{path}: {value!r} does not match {metadata['pattern']}")
        if shape.enum and value not in shape.enum:
            violations.append(f"{path}: {value!r} is not one of {shape.enum}")
    elif shape.type_name == "integer":
        if "max" in metadata and value > metadata["max"]:
            violations.append(f"{path}: {value} is above {metadata['max']}")
    return violations


# Naming and typing rules


@pytest.mark.parametrize(
    ("overrides", "named_value"),
    [
        ({"name": "toy group"}, "'toy group'"),
        ({"name": "-toy"}, "'-toy'"),
        ({"name": "toy-"}, "'toy-'"),
        ({"name": ""}, "''"),
        ({"features": with_feature("amount.usd")}, "'amount.usd'"),
        ({"features": with_feature("_amount")}, "'_amount'"),
        ({"features": with_feature("x" * 65)}, "'" + "x" * 65 + "'"),
    ],
    ids=["space", "leading-dash", "trailing-dash", "empty", "dot", "leading-underscore", "65-chars"],
)
def test_invalid_name_rejected(overrides, named_value):
    with pytest.raises(ValueError, match=re.escape(named_value)):
        make_spec(**overrides)


@pytest.mark.parametrize("reserved", ["write_time", "api_invocation_time", "is_deleted", "Write_Time"])
def test_reserved_feature_name_rejected(reserved):
    with pytest.raises(ValueError, match=f"'{reserved}' is reserved"):
        make_spec(features=with_feature(reserved))


def test_duplicate_name_case_insensitive():
    with pytest.raises(ValueError, match="'Amount' is declared twice"):
        make_spec(features=with_feature("Amount"))


def test_fractional_record_identifier_rejected():
    features = (Feature("score_id", F, "Fractional id."), *BASE_FEATURES)

    with pytest.raises(ValueError, match="record identifier 'score_id' must be Integral or String"):
        make_spec(record_identifier="score_id", features=features)


@pytest.mark.parametrize("event_type", [I, S])
def test_event_time_must_be_fractional(event_type):
    features = (*BASE_FEATURES, Feature("seen_at", event_type, "Event time of another type."))

    with pytest.raises(ValueError, match="event time feature 'seen_at' must be Fractional"):
        make_spec(event_time_feature="seen_at", features=features)


def test_undeclared_record_identifier_rejected():
    with pytest.raises(ValueError, match="record identifier 'customer_id' is not one of the features"):
        make_spec(record_identifier="customer_id")


def test_ttl_below_minute_rejected():
    with pytest.raises(ValueError, match=re.escape("TTL 0:00:59")):
        make_spec(ttl=timedelta(seconds=59))


def test_ttl_of_one_minute_accepted():
    spec = make_spec(ttl=timedelta(minutes=1))

    assert spec.ttl == timedelta(minutes=1)


def test_no_store_enabled_rejected():
    with pytest.raises(ValueError, match="enable the online store, the offline store or both"):
        make_spec(online=False, offline=False)


def test_every_error_reported_together():
    with pytest.raises(ValueError) as raised:
        make_spec(name="bad name", features=with_feature("write_time"))

    message = str(raised.value)
    assert "'bad name'" in message
    assert "'write_time' is reserved" in message


def test_group_name_over_64_rejected():
    long_name = "a" + "_b" * 40

    with pytest.raises(ValueError, match=long_name):
        make_spec(name=long_name)


def test_name_patterns_match_botocore(create_feature_group_shape):
    members = create_feature_group_shape.members
    feature_name_shape = members["FeatureDefinitions"].member.members["FeatureName"]

    assert FEATURE_GROUP_NAME_PATTERN.pattern.strip("^$") == members["FeatureGroupName"].metadata["pattern"]
    assert FEATURE_NAME_PATTERN.pattern.strip("^$") == feature_name_shape.metadata["pattern"]


# Request pieces


def test_feature_definitions_shape():
    spec = make_spec(features=with_feature("merchant", S))

    assert spec.feature_definitions() == [
        {"FeatureName": "card_id", "FeatureType": "Integral"},
        {"FeatureName": "event_time", "FeatureType": "Fractional"},
        {"FeatureName": "amount", "FeatureType": "Fractional"},
        {"FeatureName": "merchant", "FeatureType": "String"},
    ]


def test_online_config_without_ttl():
    assert make_spec().online_store_config() == {"EnableOnlineStore": True}


def test_online_config_when_disabled():
    spec = make_spec(online=False, ttl=timedelta(days=1))

    assert spec.online_store_config() == {"EnableOnlineStore": False}


@pytest.mark.parametrize(
    ("ttl", "duration"),
    [
        (timedelta(days=14), {"Unit": "Weeks", "Value": 2}),
        (timedelta(days=3), {"Unit": "Days", "Value": 3}),
        (timedelta(hours=36), {"Unit": "Hours", "Value": 36}),
        (timedelta(minutes=90), {"Unit": "Minutes", "Value": 90}),
        (timedelta(seconds=61), {"Unit": "Seconds", "Value": 61}),
    ],
)
def test_ttl_duration_largest_exact_unit(ttl, duration):
    config = make_spec(ttl=ttl).online_store_config()

    assert config == {"EnableOnlineStore": True, "TtlDuration": duration}


# The catalog


@pytest.mark.parametrize("group", FEATURE_GROUPS, ids=lambda group: group.name)
def test_catalog_request_passes_botocore(group, create_feature_group_shape):
    request = create_request(group)

    validate_parameters(request, create_feature_group_shape)


@pytest.mark.parametrize("group", FEATURE_GROUPS, ids=lambda group: group.name)
def test_catalog_request_within_limits(group, create_feature_group_shape):
    request = create_request(group)

    assert server_side_violations(request, create_feature_group_shape) == []


def test_limits_check_catches_bad_value(create_feature_group_shape):
    request = create_request(make_spec())
    request["FeatureDefinitions"][0]["FeatureType"] = "Float"

    violations = server_side_violations(request, create_feature_group_shape)

    assert violations == [".FeatureDefinitions[0].FeatureType: 'Float' is not one of ['Integral', 'Fractional', 'String']"]


def test_model_features_unique():
    names = model_feature_names()

    assert len(names) == len(set(names))


def test_model_features_exclude_label():
    assert "tx_fraud" not in model_feature_names()


def test_model_features_exclude_scenario():
    leaked = [name for name in model_feature_names() if "scenario" in name.lower()]

    assert leaked == []


def test_model_features_exclude_keys():
    keys = {name for group in FEATURE_GROUPS for name in (group.record_identifier, group.event_time_feature)}

    assert keys.isdisjoint(model_feature_names())


def test_feature_docs_are_current():
    from pathlib import Path

    from fraud_detection.features.docs import render

    page = Path(__file__).resolve().parents[2] / "docs" / "features.md"
    assert page.read_text() == render(), "Regenerate: python -m fraud_detection.features.docs > docs/features.md"
