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
    """Ingest a Parquet file into a feature group's online and offline stores.

    Malformed rows go to a quarantine file with a reason each and the good rows are written.
    The task fails when the rejected share exceeds ``max_rejected_ratio``.

    :param feature_group_name: name of the feature group (templated).
    :param source_path: Parquet file whose columns are the group's features (templated).
    :param ingest_id: makes reruns idempotent: a rerun replaces what the same id wrote to
        the offline store (templated). Without it, every run appends.
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
        self.source_path = source_path
        self.ingest_id = ingest_id
        self.target_stores = tuple(target_stores)
        self.max_rejected_ratio = max_rejected_ratio

    def execute(self, context) -> dict[str, Any]:
        import pandas as pd

        frame = pd.read_parquet(self.source_path)
        self.log.info("Ingesting %d rows of %s into %s", len(frame), self.source_path, self.feature_group_name)
        result = self.hook.get_store().ingest(
            self.feature_group_name, frame, ingest_id=self.ingest_id, target_stores=self.target_stores
        )
        self.log.info(
            "Wrote %d records to %s, rejected %d", result.records_written, self.feature_group_name, result.records_rejected
        )
        if result.rejected_ratio > self.max_rejected_ratio:
            raise ValueError(
                f"{result.records_rejected} of {len(frame)} rows for {self.feature_group_name} were rejected, "
                f"above max_rejected_ratio={self.max_rejected_ratio}. The good rows were written; the rejected "
                f"ones and their reasons are in {result.quarantine_path}."
            )
        return result.as_dict()
