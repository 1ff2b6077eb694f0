"""Batch transform: score every transaction of a period with a registered model.

Features come from the same point-in-time pipeline as training, so a transaction scored here
gets the score the endpoint would have given it at the time. The output is one Parquet file
per run, written under a temporary name and renamed, so a rerun replaces it whole.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

import pandas as pd

from fraud_detection.features.point_in_time import build_feature_frame
from fraud_detection.stores.base import FeatureStore
from fraud_detection.training.registry import ModelVersion
from fraud_detection.training.train import evaluate, load_booster, predict

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ["transaction_id", "tx_datetime", "card_id", "terminal_id", "tx_amount", "fraud_score", "tx_fraud"]


def run_batch_transform(
    source_database: Path,
    store: FeatureStore,
    model: ModelVersion,
    start: datetime,
    end: datetime,
    output_root: Path,
) -> dict:
    """Score transactions in ``[start, end)`` and return where the predictions are, with counts."""
    if end <= start:
        raise ValueError(f"Invalid period: end {end} must be after start {start}.")
    frame = build_feature_frame(source_database, store, start, end)
    booster = load_booster(model.path)
    frame["fraud_score"] = predict(booster, frame) if len(frame) else []
    output = frame[OUTPUT_COLUMNS].copy()
    output["model"] = model.model_name
    folder = Path(output_root) / f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "predictions.parquet"
    temporary = folder / f".predictions.parquet.{os.getpid()}.inprogress"
    output.to_parquet(temporary, index=False)
    os.replace(temporary, target)
    metrics = evaluate(output["tx_fraud"].to_numpy(), output["fraud_score"].to_numpy()) if len(output) else {}
    log.info("Scored %d transactions from %s to %s with %s into %s", len(output), start, end, model.model_name, target)
    return {
        "predictions_path": str(target),
        "transactions": int(len(output)),
        "model": model.model_name,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "metrics_on_known_labels": metrics,
    }


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
