"""Request-time features and the model's feature matrix, shared by every path.

Training, batch transform and the endpoint all call :func:`add_request_features` and
:func:`feature_matrix` on a frame holding the transaction, its batch features and its
streaming features. Missing values (a new card or terminal, an empty window) stay NaN on
every path, and XGBoost handles them natively, so no path fills values the others do not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_detection.features.catalog import REQUEST_FEATURES, model_feature_names

NIGHT_END_HOUR = 6


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    denominator = np.asarray(denominator, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, np.asarray(numerator, dtype="float64") / denominator, np.nan)


def request_feature_columns(columns) -> dict[str, np.ndarray]:
    """Compute the request-time features from ``tx_amount``, ``tx_datetime`` and earlier features.

    ``columns`` is a DataFrame or a dict of arrays, and the result is a dict of float64 arrays.
    """
    times = pd.DatetimeIndex(np.asarray(columns["tx_datetime"], dtype="datetime64[ns]"))
    amount = np.asarray(columns["tx_amount"], dtype="float64")
    hour = times.hour.to_numpy()
    day_of_week = times.day_of_week.to_numpy()
    recent_mean = _ratio(columns["card_amount_sum_1d"], columns["card_tx_count_1d"])
    return {
        "tx_amount": amount,
        "tx_hour": hour.astype("float64"),
        "tx_day_of_week": day_of_week.astype("float64"),
        "tx_is_weekend": (day_of_week >= 5).astype("float64"),
        "tx_is_night": (hour < NIGHT_END_HOUR).astype("float64"),
        "tx_amount_to_card_mean_7d": _ratio(amount, columns["card_amount_mean_7d"]),
        "tx_amount_to_card_mean_30d": _ratio(amount, columns["card_amount_mean_30d"]),
        "tx_amount_to_card_max_90d": _ratio(amount, columns["card_amount_max_90d"]),
        "tx_amount_to_recent_mean_1d": _ratio(amount, recent_mean),
    }


def add_request_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the frame with the request-time features added (or replaced)."""
    features = request_feature_columns(frame)
    result = frame.drop(columns=[c for c in REQUEST_FEATURES if c in frame.columns])
    return result.assign(**features)


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Return the model's input matrix (float64, NaN for missing) in the declared column order."""
    names = model_feature_names()
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise KeyError(f"The frame lacks model features {missing}. Build it with the feature pipeline.")
    matrix = np.empty((len(frame), len(names)), dtype="float64")
    for index, name in enumerate(names):
        matrix[:, index] = frame[name].to_numpy(dtype="float64", na_value=np.nan)
    return matrix
