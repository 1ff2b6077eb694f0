"""Row checks of an ingest: convert values to the feature types and set bad rows aside."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_detection.features.spec import PANDAS_TYPES, FeatureGroupSpec, FeatureType

log = logging.getLogger(__name__)

REJECT_REASON = "reject_reason"


def check_columns(spec: FeatureGroupSpec, frame: pd.DataFrame) -> None:
    """Raise ``ValueError`` if the frame lacks the record identifier or event time column."""
    for key in (spec.record_identifier, spec.event_time_feature):
        if key not in frame.columns:
            raise ValueError(f"Column {key!r} is missing: every record of {spec.name!r} needs it.")


def split_valid_rows(spec: FeatureGroupSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (good rows converted to the feature types, rejected rows with a reason each)."""
    check_columns(spec, frame)
    frame = frame.reset_index(drop=True)
    reasons = pd.Series("", index=frame.index, dtype="object")
    # A value for a feature the group does not declare makes its row invalid; an empty one does not.
    for column in (c for c in frame.columns if c not in spec.feature_names):
        has_value = frame[column].notna() & (reasons == "")
        reasons[has_value] = f"{column}: unknown feature, not declared in feature group {spec.name}"
    converted = {}
    for feature in spec.features:
        if feature.name not in frame.columns:
            converted[feature.name] = pd.Series(None, index=frame.index, dtype=PANDAS_TYPES[feature.type])
            continue
        values, bad = _convert(frame[feature.name], feature.type)
        converted[feature.name] = values
        reasons[bad & (reasons == "")] = f"{feature.name}: not a valid {feature.type.value} value"
    for key in (spec.record_identifier, spec.event_time_feature):
        missing = converted[key].isna() & (reasons == "")
        reasons[missing] = f"{key}: missing (record identifier and event time are required)"
    good = reasons == ""
    typed = pd.DataFrame(converted)[good].reset_index(drop=True)
    rejected = frame[~good].copy()
    rejected[REJECT_REASON] = reasons[~good]
    return typed, rejected


def _convert(values: pd.Series, feature_type: FeatureType) -> tuple[pd.Series, pd.Series]:
    """Convert a column; return the converted values and a mask of values that failed."""
    fast = _convert_native(values, feature_type)
    if fast is not None:
        return fast
    present = values.notna()
    if feature_type is FeatureType.STRING:
        return values.astype("string"), pd.Series(False, index=values.index)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = present & numbers.isna()
    if feature_type is FeatureType.FRACTIONAL:
        numbers = numbers.astype("float64")
        bad |= present & ~np.isfinite(numbers.fillna(0.0))
        return numbers.where(~bad), bad
    fractional_part = numbers.fillna(0) % 1 != 0
    bad |= present & fractional_part
    return numbers.where(~bad).astype("Int64"), bad


def _convert_native(values: pd.Series, feature_type: FeatureType) -> tuple[pd.Series, pd.Series] | None:
    """Convert a column that already has a numeric dtype without parsing; None for other dtypes."""
    no_failures = pd.Series(False, index=values.index)
    if feature_type is FeatureType.INTEGRAL and pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64"), no_failures
    if feature_type is FeatureType.FRACTIONAL and pd.api.types.is_float_dtype(values.dtype):
        numbers = values.astype("float64")
        bad = pd.Series(np.isinf(numbers.to_numpy()), index=values.index)
        return (numbers.where(~bad) if bad.any() else numbers), bad
    if feature_type is FeatureType.FRACTIONAL and pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("float64"), no_failures
    return None


def write_quarantine(root: Path, group_name: str, ingest_id: str | None, rejected: pd.DataFrame) -> Path:
    """Write rejected rows with their reasons to a CSV file and return its path."""
    folder = root / group_name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{ingest_id or 'ingest'}-{stamp}.csv"
    rejected.to_csv(path, index=False)
    log.warning("Quarantined %d rows of feature group %s to %s", len(rejected), group_name, path)
    return path
