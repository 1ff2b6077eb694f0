"""A hook that opens the configured feature store backend."""

from __future__ import annotations

from airflow.sdk import BaseHook


class FeatureStoreHook(BaseHook):
    """Open the feature store of the backend set by ``FRAUD_DETECTION_BACKEND``.

    :param aws_conn_id: Airflow connection of the ``aws`` backend; the ``local`` backend
        ignores it.
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
            self._store = open_feature_store(settings)
        return self._store
