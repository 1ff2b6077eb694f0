"""Operators that create, describe, delete and ingest into feature groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from fraud_airflow.feature_store_hook import FeatureStoreHook


def _declared_spec(name: str):
    from fraud_detection.features.catalog import feature_group

    return feature_group(name)


class _FeatureGroupOperator(BaseOperator):
    template_fields: Sequence[str] = ("feature_group_name",)
    ui_color = "#f3e6ff"

    def __init__(self, *, feature_group_name: str, aws_conn_id: str | None = "aws_default", **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(feature_group_name, str) or not feature_group_name:
            raise ValueError(f"Invalid feature_group_name {feature_group_name!r}: give the feature group's name.")
        self.feature_group_name = feature_group_name
        self.aws_conn_id = aws_conn_id

    @property
    def hook(self) -> FeatureStoreHook:
        return FeatureStoreHook(aws_conn_id=self.aws_conn_id)


class CreateFeatureGroupOperator(_FeatureGroupOperator):
    """Create a declared feature group, or accept an existing one with the same definition.

    The definition comes from :mod:`fraud_detection.features.catalog`. A group that exists
    with a different definition fails the task with the differences listed.

    :param feature_group_name: name of a declared feature group (templated).
    """

    def execute(self, context) -> dict[str, Any]:
        spec = _declared_spec(self.feature_group_name)
        description = self.hook.get_store().create_feature_group(spec)
        self.log.info("Feature group %s is %s", spec.name, description["FeatureGroupStatus"])
        return description


class DescribeFeatureGroupOperator(_FeatureGroupOperator):
    """Return a feature group's description, as SageMaker's DescribeFeatureGroup does.

    :param feature_group_name: name of the feature group (templated).
    """

    def execute(self, context) -> dict[str, Any]:
        return self.hook.get_store().describe_feature_group(self.feature_group_name)


class DeleteFeatureGroupOperator(_FeatureGroupOperator):
    """Delete a feature group and its online records; offline files are kept.

    :param feature_group_name: name of the feature group (templated).
    """

    def execute(self, context) -> None:
        self.hook.get_store().delete_feature_group(self.feature_group_name)
        self.log.info("Deleted feature group %s", self.feature_group_name)


class IngestFeatureGroupOperator(_FeatureGroupOperator):
    """Ingest Parquet files into a feature group's online and offline stores.

    A folder is ingested file by file. Malformed rows go to a quarantine file with a reason
    each and the good rows are written. The task fails when the rejected share exceeds
    ``max_rejected_ratio``.

    :param feature_group_name: name of the feature group (templated).
    :param source_path: a Parquet file, or a folder of them, whose columns are the group's
        features (templated).
    :param ingest_id: makes reruns idempotent: a rerun replaces what the same id wrote to
        the offline store (templated); each file of a folder gets ``<ingest_id>-<file stem>``.
        Without it, every run appends.
    :param target_stores: ``("online", "offline")`` or one of them.
    :param max_rejected_ratio: share of rejected rows, 0 to 1, above which the task fails.
    """

    template_fields: Sequence[str] = ("feature_group_name", "source_path", "ingest_id")

    def __init__(
        self,
        *,
        source_path: str,
        ingest_id: str | None = None,
        target_stores: Sequence[str] = ("online", "offline"),
        max_rejected_ratio: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= max_rejected_ratio <= 1.0:
            raise ValueError(f"Invalid max_rejected_ratio {max_rejected_ratio!r}: use a share from 0 to 1.")
        from fraud_detection.ingest_targets import check_target_stores

        target_stores = check_target_stores(target_stores)
        self.source_path = source_path
        self.ingest_id = ingest_id
        self.target_stores = target_stores
        self.max_rejected_ratio = max_rejected_ratio

    def execute(self, context) -> dict[str, Any]:
        from fraud_airflow.task_errors import fail_without_retry
        from fraud_detection.errors import FeatureGroupNotFoundError

        store = self.hook.get_store()
        written = rejected = 0
        quarantine_paths: list[str] = []
        with fail_without_retry(FileNotFoundError, FeatureGroupNotFoundError):
            store.describe_feature_group(self.feature_group_name)
            files = self._source_files()
        for ingest_id, frame in self._frames(files):
            result = store.ingest(self.feature_group_name, frame, ingest_id=ingest_id, target_stores=self.target_stores)
            written += result.records_written
            rejected += result.records_rejected
            if result.quarantine_path:
                quarantine_paths.append(str(result.quarantine_path))
        self.log.info("Wrote %d records to %s, rejected %d", written, self.feature_group_name, rejected)
        total = written + rejected
        if total and rejected / total > self.max_rejected_ratio:
            with fail_without_retry(ValueError):
                raise ValueError(
                    f"{rejected} of {total} rows for {self.feature_group_name} were rejected, above "
                    f"max_rejected_ratio={self.max_rejected_ratio}. The good rows were written; the rejected "
                    f"ones and their reasons are in {', '.join(quarantine_paths)}."
                )
        return {
            "feature_group_name": self.feature_group_name,
            "records_written": written,
            "records_rejected": rejected,
            "quarantine_paths": quarantine_paths,
            "target_stores": list(self.target_stores),
        }

    def _source_files(self) -> list:
        """Return the Parquet files to ingest, in name order; raise if there are none."""
        from pathlib import Path

        source = Path(self.source_path)
        files = sorted(source.glob("*.parquet")) if source.is_dir() else [source]
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(f"No Parquet file at {self.source_path}; give a Parquet file or a folder of them.")
        return files

    def _frames(self, files: list):
        """Yield (ingest id, rows) for each source file."""
        from pathlib import Path

        import pandas as pd

        from_folder = Path(self.source_path).is_dir()
        for path in files:
            self.log.info("Ingesting %s into %s", path, self.feature_group_name)
            # Each file of a folder gets its own id, so a rerun replaces exactly what it wrote.
            ingest_id = f"{self.ingest_id}-{path.stem}" if from_folder and self.ingest_id else self.ingest_id
            yield ingest_id, pd.read_parquet(path)


class GetFeatureRecordsOperator(BaseOperator):
    """Read online records of one or more feature groups, as SageMaker's BatchGetRecord does.

    :param identifiers: mapping of feature group name to a list of record identifiers
        (templated; a rendered JSON string is parsed). The ``aws`` backend sends at most 100
        identifiers per call.
    :param as_of: time of the read for the TTL, as seconds since the epoch or an ISO 8601
        time (templated, so ``{{ data_interval_end }}`` works); default: now.
    :return: ``{group: {identifier as string: record}}`` for the records found.
    """

    template_fields: Sequence[str] = ("identifiers", "as_of")

    def __init__(
        self, *, identifiers: dict[str, list], as_of: float | str | None = None, aws_conn_id: str | None = "aws_default", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(identifiers, (dict, str)) or not identifiers:
            raise ValueError(f"Invalid identifiers {identifiers!r}: give {{feature group name: [record identifiers]}}.")
        self.identifiers = identifiers
        self.as_of = as_of
        self.aws_conn_id = aws_conn_id

    def execute(self, context) -> dict[str, dict[str, dict]]:
        from fraud_airflow.task_errors import fail_without_retry
        from fraud_detection.errors import FeatureGroupNotFoundError

        with fail_without_retry(ValueError, FeatureGroupNotFoundError):
            identifiers = _identifier_lists(self.identifiers)
            as_of = _epoch_seconds(self.as_of, "as_of")
            records = FeatureStoreHook(aws_conn_id=self.aws_conn_id).get_store().get_records(identifiers, as_of=as_of)
        for name, found in records.items():
            self.log.info("Found %d of %d records in %s", len(found), len(identifiers[name]), name)
        return {name: {str(key): value for key, value in found.items()} for name, found in records.items()}


def _identifier_lists(identifiers) -> dict[str, list]:
    """Return ``{group: [identifiers]}`` from a mapping or its JSON text; raise ValueError otherwise."""
    import json

    if isinstance(identifiers, str):
        try:
            identifiers = json.loads(identifiers)
        except json.JSONDecodeError:
            raise ValueError(
                f"Invalid identifiers {identifiers!r}: give {{feature group name: [record identifiers]}}, "
                "or JSON text of it."
            ) from None
    if not isinstance(identifiers, dict) or not identifiers:
        raise ValueError(f"Invalid identifiers {identifiers!r}: give {{feature group name: [record identifiers]}}.")
    for name, values in identifiers.items():
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"Invalid identifiers for {name!r}: {values!r} is not a list of record identifiers.")
    return {name: list(values) for name, values in identifiers.items()}


def _epoch_seconds(value, parameter: str) -> float | None:
    """Read a time given as epoch seconds or ISO 8601 (UTC unless it has an offset)."""
    from datetime import datetime, timezone

    if value is None or value in ("", "None"):
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"Invalid {parameter} {value!r}: give seconds since the epoch or an ISO 8601 time such as 2018-06-20T00:00:00Z."
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class QueryOfflineStoreOperator(_FeatureGroupOperator):
    """Export a feature group's offline records with ``start <= event time < end`` to Parquet.

    The ``local`` backend reads the offline store's Parquet files with DuckDB; the ``aws``
    backend queries the group's Glue table through Athena. Each record appears once: the
    latest write of each (record identifier, event time), deleted records left out.

    :param feature_group_name: name of the feature group (templated).
    :param start: first event time, ISO 8601 UTC (templated).
    :param end: end of the range, exclusive, ISO 8601 UTC (templated).
    :param output_path: Parquet file to write (templated).
    """

    template_fields: Sequence[str] = ("feature_group_name", "start", "end", "output_path")

    def __init__(self, *, start: str, end: str, output_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.output_path = output_path

    def execute(self, context) -> dict[str, Any]:
        import os
        from pathlib import Path

        from fraud_airflow.task_errors import fail_without_retry

        from fraud_detection.errors import FeatureGroupNotFoundError

        with fail_without_retry(ValueError, FeatureGroupNotFoundError):
            start, end = _epoch_seconds(self.start, "start"), _epoch_seconds(self.end, "end")
            if start is None or end is None:
                raise ValueError(f"Invalid range {self.start!r} to {self.end!r}: give both start and end.")
            if end <= start:
                raise ValueError(f"Invalid range: end {self.end} must be after start {self.start}.")
            frame = self.hook.get_store().read_offline(self.feature_group_name, start=start, end=end)
        target = Path(self.output_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.inprogress")
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, target)
        self.log.info(
            "Wrote %d records of %s from %s to %s into %s", len(frame), self.feature_group_name, self.start, self.end, target
        )
        return {"output_path": str(target), "records": int(len(frame))}
