"""Feature store backends behind one interface, chosen by ``FRAUD_DETECTION_BACKEND``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fraud_detection.config import Settings
from fraud_detection.stores.base import FeatureStore, IngestResult

if TYPE_CHECKING:
    from fraud_detection.stores.aws_clients import FeatureStoreClients

log = logging.getLogger(__name__)


def open_feature_store(settings: Settings, *, clients: FeatureStoreClients | None = None) -> FeatureStore:
    """Return the feature store of the configured backend.

    :param clients: boto3 clients of the ``aws`` backend, such as the Airflow hook builds from
        a connection. Without them the backend builds them from boto3's default session. The
        ``local`` backend ignores them.
    """
    if settings.backend == "local":
        from fraud_detection.stores.local import LocalFeatureStore

        if clients is not None:
            log.warning("The local feature store ignores the AWS clients it was given")
        return LocalFeatureStore(settings.home / "feature-store", settings.quarantine_root)

    from fraud_detection.stores.aws import SageMakerFeatureStore
    from fraud_detection.stores.aws_clients import SageMakerFeatureStoreConfig, default_clients

    settings.check_aws_settings()
    config = SageMakerFeatureStoreConfig(
        role_arn=settings.sagemaker_role_arn,
        offline_store_s3_uri=settings.offline_store_s3_uri,
        athena_output_s3_uri=settings.athena_output_s3_uri,
        cache_root=settings.offline_store_cache_root,
        quarantine_root=settings.quarantine_root,
    )
    return SageMakerFeatureStore(config, clients if clients is not None else default_clients(settings.aws_region))


__all__ = ["FeatureStore", "IngestResult", "open_feature_store"]
