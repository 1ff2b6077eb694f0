"""Feature data checks: great-expectations suites and online/offline equality.

great-expectations is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.errors import ValidationFailedError
from fraud_detection.features.catalog import CARD_WEEKLY, TERMINAL_WEEKLY, CARD_RECENT_ACTIVITY
from fraud_detection.features.spec import FeatureGroupSpec, FeatureType
from fraud_detection.stores.base import FeatureStore

log = logging.getLogger(__name__)


def _expectations(spec: FeatureGroupSpec) -> list:
    import great_expectations as gx

    expectations = [
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnValuesToNotBeNull(column=spec.record_identifier),
        gx.expectations.ExpectColumnValuesToNotBeNull(column=spec.event_time_feature),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=[spec.record_identifier, spec.event_time_feature]),
    ]
    for feature in spec.value_features:
        if feature.type is FeatureType.STRING:
            continue
        upper = 1 if "_rate_" in feature.name else None
        expectations.append(gx.expectations.ExpectColumnValuesToBeBetween(column=feature.name, min_value=0, max_value=upper))
    prefix = "card" if spec is CARD_WEEKLY else "terminal"
    pairs = [(f"{prefix}_tx_count_30d", f"{prefix}_tx_count_7d"), (f"{prefix}_tx_count_90d", f"{prefix}_tx_count_30d")]
    if spec is CARD_WEEKLY:
        pairs += [("card_amount_max_30d", "card_amount_mean_30d"), ("card_amount_sum_90d", "card_amount_sum_30d")]
    else:
        pairs += [("terminal_labelled_tx_count_30d", "terminal_fraud_count_30d")]
    for column_a, column_b in pairs:
        expectations.append(
            gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=column_a, column_B=column_b, or_equal=True, ignore_row_if="either_value_is_missing"
            )
        )
    return expectations


def validate_feature_data(frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Run the great-expectations suite of each batch feature group on its records."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("feature_store")
    report: dict[str, Any] = {"success": True, "feature_groups": {}}
    for spec in (CARD_WEEKLY, TERMINAL_WEEKLY):
        frame = frames[spec.name]
        asset = source.add_dataframe_asset(name=spec.name)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"{spec.name}-records")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{spec.name}-suite"))
        for expectation in _expectations(spec):
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{spec.name}-validation", data=batch_definition, suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": frame})
        failed = [
            {
                "expectation": r.expectation_config.type,
                "kwargs": {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
                "unexpected_count": r.result.get("unexpected_count"),
            }
            for r in result.results
            if not r.success
        ]
        report["feature_groups"][spec.name] = {
            "success": bool(result.success),
            "records": int(len(frame)),
            "evaluated_expectations": int(result.statistics["evaluated_expectations"]),
            "successful_expectations": int(result.statistics["successful_expectations"]),
            "failed_expectations": failed,
        }
        report["success"] &= bool(result.success)
        log.info(
            "great-expectations on %s: %d of %d expectations met",
            spec.name, result.statistics["successful_expectations"], result.statistics["evaluated_expectations"],
        )
    return report


def _same(left: Any, right: Any) -> bool:
    left_missing = left is None or (isinstance(left, float) and math.isnan(left)) or left is pd.NA
    right_missing = right is None or (isinstance(right, float) and math.isnan(right)) or right is pd.NA
    if left_missing or right_missing:
        return left_missing and right_missing
    return left == right


def compare_online_offline(store: FeatureStore, spec: FeatureGroupSpec, *, sample_size: int, seed: int = 7) -> dict[str, Any]:
    """Check that the online record of sampled identifiers equals their latest offline record."""
    offline = store.read_offline(spec.name)
    if offline.empty:
        return {"feature_group": spec.name, "sampled": 0, "mismatches": [], "success": True}
    latest = offline.sort_values(spec.event_time_feature).groupby(spec.record_identifier, sort=False).tail(1)
    sample = latest.sample(n=min(sample_size, len(latest)), random_state=seed)
    mismatches = []
    for row in sample.itertuples(index=False):
        row = row._asdict()
        identifier = _plain(row[spec.record_identifier])
        online = store.get_records({spec.name: [identifier]}, as_of=row[spec.event_time_feature])[spec.name]
        record = online.get(identifier)
        if record is None:
            mismatches.append({"record_identifier": identifier, "feature": None, "reason": "missing online"})
            continue
        for name in spec.feature_names:
            if not _same(_plain(row[name]), record[name]):
                mismatches.append(
                    {"record_identifier": identifier, "feature": name, "offline": _plain(row[name]), "online": record[name]}
                )
    log.info("Online vs offline on %s: %d records sampled, %d mismatches", spec.name, len(sample), len(mismatches))
    return {"feature_group": spec.name, "sampled": int(len(sample)), "mismatches": mismatches[:50], "success": not mismatches}


def _plain(value: Any) -> Any:
    if value is pd.NA or value is None:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def raise_if_failed(report: dict[str, Any], what: str) -> None:
    if not report["success"]:
        raise ValidationFailedError(f"{what} failed. The result lists the failed checks: {report}", report)
