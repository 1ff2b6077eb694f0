"""Retraining steps: point-in-time training sets, XGBoost, registry, deployment."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fraud_detection.config import Settings
from fraud_detection.data.source import transaction_time_range
from fraud_detection.features.catalog import model_feature_names
from fraud_detection.features.point_in_time import build_feature_frame
from fraud_detection.stores import open_feature_store
from fraud_detection.training import registry as model_registry
from fraud_detection.training.train import TrainingWindows, evaluate, plan_windows, predict, save_model, train_model

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT_NAME = "card-fraud-scoring"


def plan(settings: Settings, as_of: datetime, *, test_days: int, burn_in_days: int, training_days: int | None) -> dict[str, str]:
    """Return the training and evaluation windows for a retraining at ``as_of``."""
    first, last = transaction_time_range(settings.source_database)
    as_of = min(as_of, last.replace(microsecond=0) + pd.Timedelta(seconds=1))
    windows = plan_windows(
        data_start=first,
        as_of=as_of,
        label_delay_days=settings.label_delay_days,
        test_days=test_days,
        burn_in_days=burn_in_days,
        training_days=training_days,
    )
    log.info("Training windows for a retraining at %s: %s", as_of, windows)
    return windows.as_dict()


def build_training_sets(settings: Settings, windows: dict[str, str], run_key: str) -> dict[str, str]:
    """Write the point-in-time training and evaluation frames to staging Parquet files."""
    planned = TrainingWindows.from_dict(windows)
    store = open_feature_store(settings)
    folder = settings.staging_root / "training" / run_key
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, start, end in (("train", planned.train_start, planned.train_end), ("test", planned.test_start, planned.test_end)):
        frame = build_feature_frame(settings.source_database, store, start, end)
        target = folder / f"{name}.parquet"
        temporary = target.with_name(f".{target.name}.{os.getpid()}.inprogress")
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, target)
        paths[name] = str(target)
        log.info("Wrote the %s set: %d transactions, %d frauds, to %s", name, len(frame), int(frame["tx_fraud"].sum()), target)
    return paths


def train_and_evaluate(settings: Settings, paths: dict[str, str], windows: dict[str, str], run_key: str, *, num_boost_round: int) -> dict[str, Any]:
    """Train on the training set, score the evaluation set and save the model artifacts."""
    train = pd.read_parquet(paths["train"])
    test = pd.read_parquet(paths["test"])
    booster = train_model(train, num_boost_round=num_boost_round)
    metrics = evaluate(test["tx_fraud"].to_numpy(), predict(booster, test)) if len(test) else {}
    metrics["training_transactions"] = int(len(train))
    metrics["training_frauds"] = int(train["tx_fraud"].sum())
    artifacts = settings.staging_root / "models" / run_key
    save_model(booster, artifacts, {"features": model_feature_names(), "windows": windows, "metrics": metrics, "num_boost_round": num_boost_round})
    log.info("Evaluation on %s to %s: %s", windows["test_start"], windows["test_end"], metrics)
    return {"artifacts": str(artifacts), "metrics": metrics}


def register(settings: Settings, trained: dict[str, Any], windows: dict[str, str], *, min_average_precision: float) -> dict[str, Any]:
    """Register the model, approved when its average precision reaches the threshold."""
    metrics = trained["metrics"]
    average_precision = metrics.get("average_precision", float("nan"))
    approved = average_precision == average_precision and average_precision >= min_average_precision
    status = model_registry.APPROVED if approved else model_registry.REJECTED
    if not approved:
        log.warning(
            "Model rejected: average precision %s is below the threshold %s", average_precision, min_average_precision
        )
    registry = model_registry.LocalModelRegistry(settings.model_registry_root)
    version = registry.register(
        model_registry.DEFAULT_GROUP,
        Path(trained["artifacts"]),
        metrics=metrics,
        metadata={"windows": windows, "min_average_precision": min_average_precision},
        status=status,
    )
    return {"group": version.group, "version": version.version, "status": version.status, "model_name": version.model_name, "path": str(version.path), "metrics": metrics}


def deploy(settings: Settings, model: dict[str, Any], *, endpoint_name: str, memory_size_in_mb: int, max_concurrency: int) -> dict[str, Any]:
    """Create or update the local serverless endpoint with a registered, approved model."""
    from fraud_detection.serving.endpoints import EndpointConfig, LocalEndpointManager, ServerlessConfig
    from fraud_detection.serving.fraud_model import ENTRY_POINT

    if model["status"] != model_registry.APPROVED:
        raise ValueError(f"Model {model['model_name']} is {model['status']}, not Approved, so it is not deployed.")
    manager = LocalEndpointManager(settings.endpoints_root)
    config = EndpointConfig(
        name=endpoint_name,
        model_dir=Path(model["path"]),
        entry_point=ENTRY_POINT,
        environment={
            "FRAUD_DETECTION_BACKEND": settings.backend,
            "FRAUD_DETECTION_HOME": str(settings.home),
            "FRAUD_DETECTION_LABEL_DELAY_DAYS": str(settings.label_delay_days),
            "MODEL_NAME": model["model_name"],
        },
        serverless=ServerlessConfig(memory_size_in_mb=memory_size_in_mb, max_concurrency=max_concurrency),
        model_name=model["model_name"],
    )
    description = manager.create_or_update(config, timeout=180)
    log.info("Endpoint %s is %s at %s with %s", endpoint_name, description.status, description.url, description.model_name)
    return {"endpoint_name": endpoint_name, "url": description.url, "status": description.status, "model_name": description.model_name}
