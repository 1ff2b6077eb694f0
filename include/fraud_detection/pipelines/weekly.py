"""Weekly batch step: derive one week's aggregates and stage them for ingestion."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

from fraud_detection.config import Settings
from fraud_detection.data.source import connect
from fraud_detection.features import batch
from fraud_detection.features.catalog import CARD_WEEKLY, TERMINAL_WEEKLY

log = logging.getLogger(__name__)


def week_key(week_end: datetime) -> str:
    """Return the ingest id of a week, the same for every rerun of that week."""
    return f"week-ending-{week_end:%Y-%m-%d}"


def stage_weekly_aggregates(settings: Settings, week_end: datetime) -> dict[str, str]:
    """Write the week's card and terminal records to staging Parquet files and return their paths."""
    with connect(settings.source_database) as connection:
        frames = {
            CARD_WEEKLY.name: batch.card_aggregates(connection, week_end, settings.label_delay_days),
            TERMINAL_WEEKLY.name: batch.terminal_aggregates(connection, week_end, settings.label_delay_days),
        }
    folder = settings.staging_root / "weekly" / week_key(week_end)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        target = folder / f"{name}.parquet"
        temporary = target.with_name(f".{target.name}.{os.getpid()}.inprogress")
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, target)
        paths[name] = str(target)
        log.info("Staged %d %s records for the week ending %s at %s", len(frame), name, week_end, target)
    return paths


def week_end_of(interval_end: datetime) -> datetime:
    """Return the Monday 00:00 boundary at or before ``interval_end`` (naive UTC)."""
    from datetime import timedelta

    day = datetime(interval_end.year, interval_end.month, interval_end.day)
    return day - timedelta(days=day.weekday())


def read_staged(path: str | Path):
    import pandas as pd

    return pd.read_parquet(path)
