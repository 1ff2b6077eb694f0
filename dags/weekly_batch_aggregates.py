"""
### Weekly batch aggregates

Once a week, for the week that just ended, derive per-card and per-terminal aggregates over
7, 30 and 90 days from the source datastore and ingest them into the batch feature groups
`card-weekly-aggregates` and `terminal-weekly-aggregates` (online and offline store).

Each record's event time is the week boundary (Monday 00:00 UTC). Reruns and backfills are
idempotent: a week's offline partition is rewritten, and the online store keeps the record
with the newest event time. A manual run processes the week ending at the last Monday
before its logical date.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, task

from fraud_airflow.dag_defaults import CARD_WEEKLY_ASSET, DEFAULT_ARGS, END_DATE, START_DATE, TERMINAL_WEEKLY_ASSET
from fraud_airflow.feature_group_operators import CreateFeatureGroupOperator, IngestFeatureGroupOperator

STAGED = "{{{{ ti.xcom_pull(task_ids='compute_weekly_aggregates')['{key}'] }}}}"


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["fraud-detection", "feature-store", "batch"],
    doc_md=__doc__,
)
def weekly_batch_aggregates():
    create_card_group = CreateFeatureGroupOperator(
        task_id="create_card_feature_group", feature_group_name="card-weekly-aggregates"
    )
    create_terminal_group = CreateFeatureGroupOperator(
        task_id="create_terminal_feature_group", feature_group_name="terminal-weekly-aggregates"
    )

    @task
    def compute_weekly_aggregates(data_interval_end=None) -> dict[str, str]:
        """Derive the week's records and stage them as Parquet files."""
        from fraud_detection.config import Settings
        from fraud_detection.pipelines.weekly import stage_weekly_aggregates, week_end_of, week_key

        week_end = week_end_of(data_interval_end.replace(tzinfo=None))
        staged = stage_weekly_aggregates(Settings.from_env(), week_end)
        return {**staged, "ingest_id": week_key(week_end)}

    staged = compute_weekly_aggregates()

    ingest_card = IngestFeatureGroupOperator(
        task_id="ingest_card_aggregates",
        feature_group_name="card-weekly-aggregates",
        source_path=STAGED.format(key="card-weekly-aggregates"),
        ingest_id=STAGED.format(key="ingest_id"),
        outlets=[CARD_WEEKLY_ASSET],
    )
    ingest_terminal = IngestFeatureGroupOperator(
        task_id="ingest_terminal_aggregates",
        feature_group_name="terminal-weekly-aggregates",
        source_path=STAGED.format(key="terminal-weekly-aggregates"),
        ingest_id=STAGED.format(key="ingest_id"),
        outlets=[TERMINAL_WEEKLY_ASSET],
    )

    [create_card_group, create_terminal_group] >> staged >> [ingest_card, ingest_terminal]


weekly_batch_aggregates()
