"""Feature group declarations: one definition that drives SageMaker, the local stores and docs.

A :class:`FeatureGroupSpec` names the record identifier, the event time feature and every
feature with its type and description. From it come the SageMaker ``FeatureDefinitions``, the
column types of the local online and offline stores, and the feature table in the docs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

# SageMaker's rules, from the botocore service model of CreateFeatureGroup.
FEATURE_GROUP_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}$")
FEATURE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")
# Names SageMaker adds to every offline store table, so no feature may use them.
RESERVED_FEATURE_NAMES = frozenset({"is_deleted", "write_time", "api_invocation_time"})
MAX_FEATURES = 2500
MAX_NAME_LENGTH = 64


class FeatureType(str, Enum):
    """SageMaker Feature Store value types."""

    INTEGRAL = "Integral"
    FRACTIONAL = "Fractional"
    STRING = "String"


# Column types of the local stores, by feature type.
DUCKDB_TYPES = {FeatureType.INTEGRAL: "BIGINT", FeatureType.FRACTIONAL: "DOUBLE", FeatureType.STRING: "VARCHAR"}
SQLITE_TYPES = {FeatureType.INTEGRAL: "INTEGER", FeatureType.FRACTIONAL: "REAL", FeatureType.STRING: "TEXT"}
PANDAS_TYPES = {FeatureType.INTEGRAL: "Int64", FeatureType.FRACTIONAL: "float64", FeatureType.STRING: "string"}


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    description: str


@dataclass(frozen=True)
class FeatureGroupSpec:
    """A feature group: its record identifier, event time and features.

    ``event_time_feature`` is a Fractional feature holding seconds since the Unix epoch (UTC).
    ``ttl`` is how long a record stays current in the online store after its event time. A
    read at time ``as_of`` returns a record only while ``as_of < event_time + ttl``.
    """

    name: str
    description: str
    record_identifier: str
    event_time_feature: str
    features: tuple[Feature, ...]
    online: bool = True
    offline: bool = True
    ttl: timedelta | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        errors = validate_spec(self)
        if errors:
            raise ValueError(f"Invalid feature group {self.name!r}: " + "; ".join(errors))

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def value_features(self) -> list[Feature]:
        """Features other than the record identifier and the event time."""
        keys = {self.record_identifier, self.event_time_feature}
        return [feature for feature in self.features if feature.name not in keys]

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"Feature {name!r} is not in feature group {self.name!r}.")

    def feature_definitions(self) -> list[dict[str, str]]:
        """Return the ``FeatureDefinitions`` of SageMaker's CreateFeatureGroup request."""
        return [{"FeatureName": f.name, "FeatureType": f.type.value} for f in self.features]

    def online_store_config(self) -> dict:
        """Return the ``OnlineStoreConfig`` of SageMaker's CreateFeatureGroup request."""
        config: dict = {"EnableOnlineStore": self.online}
        if self.online and self.ttl is not None:
            config["TtlDuration"] = _ttl_duration(self.ttl)
        return config


def _ttl_duration(ttl: timedelta) -> dict:
    seconds = int(ttl.total_seconds())
    for unit, size in (("Weeks", 604800), ("Days", 86400), ("Hours", 3600), ("Minutes", 60)):
        if seconds % size == 0:
            return {"Unit": unit, "Value": seconds // size}
    return {"Unit": "Seconds", "Value": seconds}


def validate_spec(spec: FeatureGroupSpec) -> list[str]:
    """Return every rule the spec breaks, each naming the bad value and the rule."""
    errors = []
    if len(spec.name) > MAX_NAME_LENGTH or not FEATURE_GROUP_NAME_PATTERN.fullmatch(spec.name):
        errors.append(
            f"name {spec.name!r} must be 1-64 letters or digits, with '-' or '_' only between them"
        )
    names = [f.name for f in spec.features]
    if not 1 <= len(names) <= MAX_FEATURES:
        errors.append(f"{len(names)} features given, SageMaker allows 1 to {MAX_FEATURES}")
    seen: set[str] = set()
    for feature in spec.features:
        lowered = feature.name.lower()
        if len(feature.name) > MAX_NAME_LENGTH or not FEATURE_NAME_PATTERN.fullmatch(feature.name):
            errors.append(
                f"feature name {feature.name!r} must be 1-64 letters or digits, "
                "with '-' or '_' only between them"
            )
        if lowered in RESERVED_FEATURE_NAMES:
            errors.append(f"feature name {feature.name!r} is reserved by the offline store")
        if lowered in seen:
            errors.append(f"feature name {feature.name!r} is declared twice (names are case-insensitive)")
        seen.add(lowered)
    if spec.record_identifier not in names:
        errors.append(f"record identifier {spec.record_identifier!r} is not one of the features")
    elif spec.features[names.index(spec.record_identifier)].type is FeatureType.FRACTIONAL:
        errors.append(f"record identifier {spec.record_identifier!r} must be Integral or String")
    if spec.event_time_feature not in names:
        errors.append(f"event time feature {spec.event_time_feature!r} is not one of the features")
    elif spec.features[names.index(spec.event_time_feature)].type is not FeatureType.FRACTIONAL:
        errors.append(
            f"event time feature {spec.event_time_feature!r} must be Fractional (seconds since the epoch)"
        )
    if not (spec.online or spec.offline):
        errors.append("enable the online store, the offline store or both")
    if spec.ttl is not None and spec.ttl.total_seconds() < 60:
        errors.append(f"TTL {spec.ttl} is shorter than SageMaker's minimum of one minute")
    elif spec.ttl is not None and spec.ttl.total_seconds() % 1:
        errors.append(f"TTL {spec.ttl} must be a whole number of seconds, as SageMaker's TtlDuration is")
    return errors


_TTL_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}


def spec_from_description(description: dict) -> FeatureGroupSpec:
    """Rebuild a spec from a DescribeFeatureGroup response (SageMaker's or the local one's)."""
    online_config = description.get("OnlineStoreConfig") or {}
    ttl_duration = online_config.get("TtlDuration")
    ttl = None
    if ttl_duration:
        ttl = timedelta(seconds=ttl_duration["Value"] * _TTL_UNIT_SECONDS[ttl_duration["Unit"]])
    return FeatureGroupSpec(
        name=description["FeatureGroupName"],
        description=description.get("Description", ""),
        record_identifier=description["RecordIdentifierFeatureName"],
        event_time_feature=description["EventTimeFeatureName"],
        features=tuple(
            Feature(d["FeatureName"], FeatureType(d["FeatureType"]), "") for d in description["FeatureDefinitions"]
        ),
        online=bool(online_config.get("EnableOnlineStore", False)),
        offline=description.get("OfflineStoreConfig") is not None,
        ttl=ttl,
    )
