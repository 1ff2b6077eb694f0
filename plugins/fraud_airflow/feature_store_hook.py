"""A hook that opens the configured feature store backend."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook


class FeatureStoreHook(BaseHook):
    """Open the feature store of the backend set by ``FRAUD_DETECTION_BACKEND``.

    On the ``aws`` backend the boto3 clients come from the Amazon provider's hooks, so they
    use the credentials and region of the Airflow connection ``aws_conn_id``. The provider
    is imported only when a store is opened, which keeps DAG parsing light.

    :param aws_conn_id: Airflow connection of the ``aws`` backend, ignored by the ``local``
        backend. ``None`` uses boto3's default credential chain.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"
    hook_name = "Feature Store"

    def __init__(self, aws_conn_id: str | None = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self._store = None

    @property
    def settings(self):
        from fraud_detection.config import Settings

        return Settings.from_env()

    def get_store(self):
        """Return the feature store, opened once per hook."""
        if self._store is None:
            from fraud_detection.stores import open_feature_store

            settings = self.settings
            self.log.info("Opening the %s feature store", settings.backend)
            clients = None
            if settings.backend == "aws":
                settings.check_aws_settings()
                clients = self.get_aws_clients()
            self._store = open_feature_store(settings, clients=clients)
        return self._store

    def get_aws_clients(self):
        """Build the aws backend's clients with ``AwsBaseHook`` and ``AthenaHook`` on ``aws_conn_id``."""
        from airflow.providers.amazon.aws.hooks.athena import AthenaHook
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from fraud_detection.stores.aws_clients import FeatureStoreClients

        def client(client_type: str):
            return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type=client_type).get_conn()

        self.log.info("Building SageMaker, Feature Store runtime, S3 and Athena clients from connection %s", self.aws_conn_id)
        return FeatureStoreClients(
            sagemaker=client("sagemaker"),
            featurestore_runtime=client("sagemaker-featurestore-runtime"),
            s3=client("s3"),
            athena_query=AthenaHookQuery(AthenaHook(aws_conn_id=self.aws_conn_id)),
        )


class AthenaHookQuery:
    """Run offline store queries through the Amazon provider's ``AthenaHook``.

    Starts the query with ``run_query``, waits with ``poll_query_status`` (``sleep_time``
    seconds between checks, at most ``max_polling_attempts`` checks) and reads every page of
    ``get_query_results_paginator``.
    """

    def __init__(self, hook, *, workgroup: str = "primary", sleep_time: int = 5, max_polling_attempts: int = 180):
        self.hook = hook
        self.workgroup = workgroup
        self.sleep_time = sleep_time
        self.max_polling_attempts = max_polling_attempts

    def __call__(self, sql: str, *, database: str, catalog: str, output_location: str) -> list[dict[str, Any]]:
        from fraud_detection.errors import OfflineQueryError
        from fraud_detection.stores.athena import rows_from_result_pages

        execution_id = self.hook.run_query(
            sql,
            query_context={"Database": database, "Catalog": catalog},
            result_configuration={"OutputLocation": output_location},
            workgroup=self.workgroup,
        )
        state = self.hook.poll_query_status(
            execution_id, max_polling_attempts=self.max_polling_attempts, sleep_time=self.sleep_time
        )
        if state != "SUCCEEDED":
            raise OfflineQueryError(execution_id, str(state), self.hook.get_state_change_reason(execution_id))
        return rows_from_result_pages(self.hook.get_query_results_paginator(execution_id))
