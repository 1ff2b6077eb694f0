"""Checks of feature group definitions for the aws backend.

SageMaker limits group names, descriptions and tags in ways that ``FeatureGroupSpec`` does not
check. ``check_group_name`` and ``check_create_arguments`` apply those limits before a request
is sent. ``raise_unless_created`` rejects a group whose status is not ``Created``, and
``definition_differences`` lists how an existing group's DescribeFeatureGroup response differs
from a requested ``FeatureGroupSpec``.
"""

from __future__ import annotations

from typing import Any

from fraud_detection.errors import FeatureGroupCreationError
from fraud_detection.features.spec import FEATURE_GROUP_NAME_PATTERN, MAX_NAME_LENGTH, FeatureGroupSpec

# Limits of the botocore 1.44.8 service model of sagemaker.
MAX_DESCRIPTION_LENGTH = 128
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

TTL_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
# The layout offline_table_sql reads. An Iceberg offline store lays its files out differently.
OFFLINE_TABLE_FORMAT = "Glue"


def check_group_name(name: Any) -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not FEATURE_GROUP_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"Invalid feature group name {name!r}: use 1-64 letters or digits, with '-' or '_' only between them."
        )


def check_create_arguments(spec: FeatureGroupSpec) -> None:
    """Check what ``FeatureGroupSpec`` does not: the limits SageMaker puts on descriptions and tags."""
    problems = []
    if len(spec.description) > MAX_DESCRIPTION_LENGTH:
        problems.append(
            f"description of {len(spec.description)} characters, SageMaker allows at most {MAX_DESCRIPTION_LENGTH}"
        )
    for key, value in spec.tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY_LENGTH:
            problems.append(f"tag key {key!r} must be 1-{MAX_TAG_KEY_LENGTH} characters")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            problems.append(f"tag value of {key!r} is longer than {MAX_TAG_VALUE_LENGTH} characters")
    if problems:
        raise ValueError(f"Invalid feature group {spec.name!r} for SageMaker: " + ", ".join(problems) + ".")


def raise_unless_created(name: str, description: dict[str, Any]) -> None:
    status = description.get("FeatureGroupStatus")
    if status == "CreateFailed":
        raise FeatureGroupCreationError(name, f"CreateFailed: {description.get('FailureReason', 'no reason given')}")
    if status != "Created":
        raise FeatureGroupCreationError(name, f"its status is {status}")


def definition_differences(description: dict[str, Any], spec: FeatureGroupSpec) -> list[str]:
    """List how an existing group differs from ``spec``, in the local store's wording."""
    differences = []
    for key, expected in (
        ("RecordIdentifierFeatureName", spec.record_identifier),
        ("EventTimeFeatureName", spec.event_time_feature),
    ):
        if description.get(key) != expected:
            differences.append(f"{key} is {description.get(key)!r}, requested {expected!r}")
    definitions = [
        {key: value for key, value in definition.items() if key in ("FeatureName", "FeatureType", "CollectionType")}
        for definition in description.get("FeatureDefinitions", [])
    ]
    if definitions != spec.feature_definitions():
        differences.append(f"FeatureDefinitions is {definitions!r}, requested {spec.feature_definitions()!r}")

    online = description.get("OnlineStoreConfig") or {}
    actual_online = {"EnableOnlineStore": bool(online.get("EnableOnlineStore", False))}
    if online.get("TtlDuration"):
        actual_online["TtlDuration"] = online["TtlDuration"]
    requested_online = spec.online_store_config()
    if _online_key(actual_online) != _online_key(requested_online):
        differences.append(f"OnlineStoreConfig is {actual_online!r}, requested {requested_online!r}")

    offline = description.get("OfflineStoreConfig")
    if (offline is not None) != spec.offline:
        differences.append(f"offline store enabled is {not spec.offline}, requested {spec.offline}")
    elif offline is not None and offline.get("TableFormat", OFFLINE_TABLE_FORMAT) not in (OFFLINE_TABLE_FORMAT, "Default"):
        differences.append(
            f"OfflineStoreConfig.TableFormat is {offline['TableFormat']!r}, requested {OFFLINE_TABLE_FORMAT!r}"
        )
    return differences


def _online_key(config: dict[str, Any]) -> tuple[bool, int | None]:
    """Return (enabled, TTL in seconds), so 14 Days and 2 Weeks compare equal."""
    ttl = config.get("TtlDuration")
    seconds = ttl["Value"] * TTL_UNIT_SECONDS[ttl["Unit"]] if ttl else None
    return bool(config.get("EnableOnlineStore")), seconds
