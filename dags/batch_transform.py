"""
### Batch transform

Scores every transaction of a chosen period with the latest approved model and writes the
predictions as Parquet. Features come from the same point-in-time pipeline as training.

Set `start` and `end` (ISO 8601, UTC) when you trigger the run; by default the last seven
days of the source datastore are scored.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from fraud_airflow.dag_defaults import DEFAULT_ARGS, DEPLOYED_MODEL_ASSET, START_DATE

PARAMS = {
    "start": Param(None, type=["null", "string"], description="First transaction time scored (ISO 8601, UTC)."),
    "end": Param(None, type=["null", "string"], description="Scoring stops before this time (ISO 8601, UTC)."),
    "model_version": Param(None, type=["null", "integer"], minimum=1, description="Registered model version; default: the latest approved."),
}


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["fraud-detection", "inference", "batch"],
    params=PARAMS,
    doc_md=__doc__,
)
def batch_transform():
    @task(inlets=[DEPLOYED_MODEL_ASSET])
    def score_period(params=None) -> dict:
        """Score the period's transactions and write the predictions."""
        from datetime import datetime, timedelta

        from fraud_detection.batch_transform import run_batch_transform
        from fraud_detection.config import Settings
        from fraud_detection.data.source import transaction_time_range
        from fraud_detection.stores import open_feature_store
        from fraud_detection.training.registry import DEFAULT_GROUP, LocalModelRegistry

        from fraud_airflow.dag_params import parse_utc_time
        from fraud_airflow.task_errors import fail_without_retry
        from fraud_detection.errors import ModelNotFoundError

        settings = Settings.from_env()
        with fail_without_retry(ValueError, ModelNotFoundError):
            _, last = transaction_time_range(settings.source_database)
            end = parse_utc_time("end", params["end"]) or last + timedelta(seconds=1)
            start = parse_utc_time("start", params["start"]) or end - timedelta(days=7)
            registry = LocalModelRegistry(settings.model_registry_root)
            version = params["model_version"]
            model = registry.get(DEFAULT_GROUP, version) if version else registry.latest(DEFAULT_GROUP)
            return run_batch_transform(
                settings.source_database, open_feature_store(settings), model, start, end, settings.batch_transform_root
            )

    score_period()


batch_transform()
