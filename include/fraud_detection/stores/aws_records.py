"""Conversions between typed feature values and SageMaker Feature Store's ``ValueAsString`` records.

PutRecord, BatchGetRecord and DeleteRecord carry every value as text. This module converts frame
rows to PutRecord ``Record`` lists and records back to typed values, and formats record
identifiers and event times as SageMaker expects them. It also applies the contract's TTL rule
to the records read back, and sets aside rows whose String values exceed SageMaker's length limit.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.features.spec import FeatureGroupSpec, FeatureType
from fraud_detection.stores.validation import REJECT_REASON

# Maximum length of ValueAsString in the botocore 1.44.8 service model of sagemaker-featurestore-runtime.
MAX_VALUE_LENGTH = 358400


def records_from_frame(spec: FeatureGroupSpec, frame: pd.DataFrame) -> list[list[dict[str, str]]]:
    """Convert typed rows to PutRecord ``Record`` lists, leaving out missing values.

    Integral values become decimal integers and Fractional values the shortest text that
    parses back to the same float (``repr``), so values round-trip exactly.
    """
    columns: list[tuple[str, list[str | None]]] = []
    for feature in spec.features:
        if feature.name not in frame.columns:
            continue
        values = frame[feature.name].astype(object).tolist()
        present = frame[feature.name].notna().tolist()
        if feature.type is FeatureType.INTEGRAL:
            texts = [str(int(value)) if keep else None for value, keep in zip(values, present)]
        elif feature.type is FeatureType.FRACTIONAL:
            texts = [repr(float(value)) if keep else None for value, keep in zip(values, present)]
        else:
            texts = [str(value) if keep else None for value, keep in zip(values, present)]
        columns.append((feature.name, texts))
    return [
        [{"FeatureName": name, "ValueAsString": texts[row]} for name, texts in columns if texts[row] is not None]
        for row in range(len(frame))
    ]


def typed_record(spec: FeatureGroupSpec, record: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Convert a ``Record`` list to a dict of every feature, ``None`` where a value is missing."""
    texts = {value["FeatureName"]: value.get("ValueAsString") for value in record}
    return {feature.name: parse_value(feature.type, texts.get(feature.name)) for feature in spec.features}


def parse_value(feature_type: FeatureType, text: str | None) -> Any:
    if text is None:
        return None
    if feature_type is FeatureType.INTEGRAL:
        return int(text)
    if feature_type is FeatureType.FRACTIONAL:
        return float(text)
    return text


def identifier_as_string(spec: FeatureGroupSpec, value: Any) -> str:
    """Return a record identifier as SageMaker's ValueAsString, or raise ``ValueError`` if invalid."""
    feature = spec.feature(spec.record_identifier)
    if feature.type is FeatureType.INTEGRAL:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ValueError(
                f"Invalid record identifier {value!r} for feature group {spec.name!r}: "
                f"{spec.record_identifier!r} is Integral, so give an int."
            )
        return str(int(value))
    if not isinstance(value, str):
        raise ValueError(
            f"Invalid record identifier {value!r} for feature group {spec.name!r}: "
            f"{spec.record_identifier!r} is String, so give a str."
        )
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(
            f"Invalid record identifier of {len(value)} characters for feature group {spec.name!r}: "
            f"SageMaker allows at most {MAX_VALUE_LENGTH}."
        )
    return value


def iso_event_time(seconds: float) -> str:
    """Format epoch seconds as SageMaker's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` event time.

    NOTE: the format has millisecond resolution, so the time is rounded up to the next
    millisecond. A delete then never falls before a record written at ``seconds``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds):
        raise ValueError(f"Invalid event time {seconds!r}: give finite seconds since the Unix epoch.")
    milliseconds = math.ceil(round(float(seconds) * 1000, 6))
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


def is_current(spec: FeatureGroupSpec, values: dict[str, Any], expires_at: str | None, as_of: float) -> bool:
    """Apply the contract's TTL rule: a record is current while ``as_of < event_time + ttl``.

    The group's TTL decides. A record-level ``ExpiresAt`` counts only in a group without one.
    """
    if spec.ttl is not None:
        return as_of < values[spec.event_time_feature] + spec.ttl.total_seconds()
    if expires_at:
        return as_of < datetime.fromisoformat(expires_at).timestamp()
    return True


def split_long_strings(spec: FeatureGroupSpec, good: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move rows with a String value longer than SageMaker's ValueAsString limit aside."""
    reasons = pd.Series("", index=good.index, dtype="object")
    for feature in spec.features:
        if feature.type is FeatureType.STRING and feature.name in good.columns:
            too_long = good[feature.name].str.len().fillna(0) > MAX_VALUE_LENGTH
            reasons[too_long & (reasons == "")] = (
                f"{feature.name}: longer than {MAX_VALUE_LENGTH} characters, SageMaker's maximum"
            )
    bad = reasons != ""
    rejected = good[bad].copy()
    rejected[REJECT_REASON] = reasons[bad]
    return good[~bad].reset_index(drop=True), rejected
