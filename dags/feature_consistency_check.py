"""
### Feature consistency check

Checks the batch feature groups after each weekly ingest:

1. **great-expectations** suites on the latest week's offline records: keys present and
   unique, counts and amounts non-negative, fraud rates in [0, 1], 7-day counts not above
   30-day counts, and so on.
2. **Online vs offline**: for a random sample of record identifiers, the online record must
   equal the latest offline record, feature by feature.

A failure fails the task with the failed checks in its message; the full result is pushed
to XCom first (keys `validation_result` and `comparison_result`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from fraud_airflow.dag_defaults import (
    CARD_WEEKLY_ASSET,
    DEFAULT_ARGS,
    START_DATE,
    TERMINAL_WEEKLY_ASSET,
    VALIDATED_FEATURES_ASSET,
)


@dag(
    schedule=[CARD_WEEKLY_ASSET, TERMINAL_WEEKLY_ASSET],
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["fraud-detection", "feature-store", "data-quality"],
    params={"sample_size": Param(500, type="integer", minimum=1, description="Records compared per feature group.")},
    doc_md=__doc__,
)
def feature_consistency_check():
    @task
    def validate_latest_week(ti=None) -> dict:
        """Run the great-expectations suites on the latest week's records."""
        from fraud_detection.config import Settings
        from fraud_detection.features.catalog import BATCH_FEATURE_GROUPS
        from fraud_detection.pipelines.consistency import raise_if_failed, validate_feature_data
        from fraud_detection.stores import open_feature_store

        store = open_feature_store(Settings.from_env())
        frames = {}
        for spec in BATCH_FEATURE_GROUPS:
            records = store.read_offline(spec.name)
            latest = records[spec.event_time_feature].max() if len(records) else None
            frames[spec.name] = records[records[spec.event_time_feature] == latest] if latest is not None else records
        report = validate_feature_data(frames)
        ti.xcom_push(key="validation_result", value=report)
        raise_if_failed(report, "great-expectations validation of the feature groups")
        return report

    @task(outlets=[VALIDATED_FEATURES_ASSET])
    def compare_online_and_offline(params=None, ti=None) -> dict:
        """Check that sampled online records equal their latest offline records."""
        from fraud_detection.config import Settings
        from fraud_detection.features.catalog import FEATURE_GROUPS
        from fraud_detection.pipelines.consistency import compare_online_offline, raise_if_failed
        from fraud_detection.stores import open_feature_store

        store = open_feature_store(Settings.from_env())
        results = [
            compare_online_offline(store, spec, sample_size=int(params["sample_size"]))
            for spec in FEATURE_GROUPS
            if _exists(store, spec.name)
        ]
        report = {"success": all(r["success"] for r in results), "feature_groups": results}
        ti.xcom_push(key="comparison_result", value=report)
        raise_if_failed(report, "Online vs offline comparison")
        return report

    validate_latest_week() >> compare_online_and_offline()


def _exists(store, name: str) -> bool:
    from fraud_detection.errors import FeatureGroupNotFoundError

    try:
        store.describe_feature_group(name)
    except FeatureGroupNotFoundError:
        return False
    return True


feature_consistency_check()
