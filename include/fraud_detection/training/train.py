"""Train and evaluate the XGBoost fraud model on point-in-time feature frames.

Training respects the label delay: at retraining time ``T`` only transactions before
``T - delay`` have known labels. The last ``test_days`` of those are the evaluation window,
and a gap of one label delay separates it from the training window, as the model will
always score transactions a delay after the last labels it saw.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_detection.features.catalog import model_feature_names
from fraud_detection.features.request import feature_matrix

log = logging.getLogger(__name__)

DEFAULT_PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 1,
    "seed": 7,
}


@dataclass(frozen=True)
class TrainingWindows:
    """Time windows of one retraining run, all ``[start, end)`` in naive UTC."""

    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime

    def as_dict(self) -> dict[str, str]:
        return {key: value.isoformat() for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, str]) -> TrainingWindows:
        return cls(**{key: datetime.fromisoformat(value) for key, value in values.items()})


def plan_windows(
    *,
    data_start: datetime,
    as_of: datetime,
    label_delay_days: int,
    test_days: int = 7,
    burn_in_days: int = 7,
    training_days: int | None = None,
) -> TrainingWindows:
    """Place the training and evaluation windows before ``as_of``; raise if they do not fit."""
    if training_days is not None and training_days < 1:
        raise ValueError(f"Invalid training_days {training_days}: use 1 or more days, or None for all data.")
    delay = timedelta(days=label_delay_days)
    test_end = as_of - delay
    test_start = test_end - timedelta(days=test_days)
    train_end = test_start - delay
    train_start = data_start + timedelta(days=burn_in_days)
    if training_days is not None:
        train_start = max(train_start, train_end - timedelta(days=training_days))
    if train_end <= train_start:
        raise ValueError(
            f"No room for a training window: labels are known until {test_end:%Y-%m-%d %H:%M}, "
            f"evaluation takes {test_days} days and a {label_delay_days}-day gap, and the first "
            f"{burn_in_days} days of data ({data_start:%Y-%m-%d}) are burn-in. Use more data, or "
            "lower test_days, burn_in_days or FRAUD_DETECTION_LABEL_DELAY_DAYS."
        )
    return TrainingWindows(train_start, train_end, test_start, test_end)


def train_model(train: pd.DataFrame, *, num_boost_round: int = 200, params: dict | None = None):
    """Fit an XGBoost booster on a feature frame with a ``tx_fraud`` label."""
    import xgboost as xgb

    labels = train["tx_fraud"].to_numpy(dtype="float64")
    positives = int(labels.sum())
    if positives == 0:
        raise ValueError(f"The training window contains {len(train)} transactions and no fraud. Widen it.")
    matrix = xgb.DMatrix(feature_matrix(train), label=labels, feature_names=model_feature_names(), missing=np.nan)
    started = time.monotonic()
    booster = xgb.train({**DEFAULT_PARAMS, **(params or {}), "nthread": 2}, matrix, num_boost_round=num_boost_round)
    log.info(
        "Trained XGBoost on %d transactions (%d frauds) in %.1f s",
        len(train), positives, time.monotonic() - started,
    )
    return booster


def predict(booster, frame: pd.DataFrame) -> np.ndarray:
    """Return fraud scores in [0, 1] for the rows of a feature frame."""
    import xgboost as xgb

    matrix = xgb.DMatrix(feature_matrix(frame), feature_names=model_feature_names(), missing=np.nan)
    return booster.predict(matrix)


def evaluate(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Return average precision, ROC AUC and counts; the ranking metrics are NaN without both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, dtype="int64")
    both_classes = 0 < labels.sum() < len(labels)
    return {
        "average_precision": float(average_precision_score(labels, scores)) if both_classes else float("nan"),
        "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else float("nan"),
        "transactions": int(len(labels)),
        "frauds": int(labels.sum()),
    }


def save_model(booster, directory: Path, model_card: dict) -> Path:
    """Write the booster (XGBoost JSON) and its model card to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(directory / "model.json")
    (directory / "model-card.json").write_text(json.dumps(model_card, indent=2, default=str))
    return directory


def load_booster(directory: Path):
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(directory / "model.json")
    booster.set_param({"nthread": 1})
    return booster
