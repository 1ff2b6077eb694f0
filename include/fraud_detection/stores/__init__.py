"""Feature store backends behind one interface, chosen by ``FRAUD_DETECTION_BACKEND``."""

from __future__ import annotations

from fraud_detection.config import Settings
from fraud_detection.errors import ConfigurationError
from fraud_detection.stores.base import FeatureStore, IngestResult


def open_feature_store(settings: Settings) -> FeatureStore:
    """Return the feature store of the configured backend."""
    if settings.backend == "local":
        from fraud_detection.stores.local import LocalFeatureStore

        return LocalFeatureStore(settings.home / "feature-store", settings.quarantine_root)
    # TODO: add the SageMaker Feature Store backend (boto3 sagemaker and
    # sagemaker-featurestore-runtime clients); until then only `local` runs.
    raise ConfigurationError(
        f"The {settings.backend!r} feature store backend is not available in this version. "
        "Set FRAUD_DETECTION_BACKEND=local."
    )


__all__ = ["FeatureStore", "IngestResult", "open_feature_store"]
