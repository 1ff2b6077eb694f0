"""Sensors that wait for feature groups."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.sdk import BaseSensorOperator

from fraud_airflow.feature_store_hook import FeatureStoreHook

FAILED_STATES = ("CreateFailed", "DeleteFailed")


class FeatureGroupCreatedSensor(BaseSensorOperator):
    """Wait until a feature group's status is ``Created``.

    Fails at once when the status is ``CreateFailed`` or ``DeleteFailed``, with SageMaker's
    failure reason. Wraps DescribeFeatureGroup.

    :param feature_group_name: name of the feature group (templated).
    """

    template_fields: Sequence[str] = ("feature_group_name",)

    def __init__(self, *, feature_group_name: str, aws_conn_id: str | None = "aws_default", **kwargs) -> None:
        # SageMaker creates a group in minutes: an hour, not Airflow's week, before giving up.
        kwargs.setdefault("timeout", 60 * 60)
        kwargs.setdefault("poke_interval", 30)
        super().__init__(**kwargs)
        self.feature_group_name = feature_group_name
        self.aws_conn_id = aws_conn_id

    def poke(self, context) -> bool:
        from airflow.sdk.exceptions import AirflowFailException

        from fraud_detection.errors import FeatureGroupNotFoundError

        try:
            description = FeatureStoreHook(aws_conn_id=self.aws_conn_id).get_store().describe_feature_group(
                self.feature_group_name
            )
        except FeatureGroupNotFoundError:
            self.log.info("Feature group %s does not exist yet", self.feature_group_name)
            return False
        status = description.get("FeatureGroupStatus")
        self.log.info("Feature group %s is %s", self.feature_group_name, status)
        if status in FAILED_STATES:
            raise AirflowFailException(
                f"Feature group {self.feature_group_name} is {status}: {description.get('FailureReason', 'no reason given')}"
            )
        return status == "Created"
