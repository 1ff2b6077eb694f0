"""The serving path: enrich a transaction request from the online store.

The frame built here has the same columns as the training frame of
:mod:`fraud_detection.features.point_in_time`, and the same values for the same situation. It
takes batch features from the current online records (TTL applied at the transaction time),
streaming features from the card's recent activity by the shared definition, and the shared
request-time features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY, CARD_WEEKLY, TERMINAL_WEEKLY
from fraud_detection.features.request import add_request_features
from fraud_detection.features.streaming import CardActivity, streaming_features
from fraud_detection.serving.predictor import InvalidRequestError
from fraud_detection.stores.base import FeatureStore

EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class TransactionRequest:
    """One transaction to score, with ``tx_datetime`` in naive UTC."""

    transaction_id: int | None
    card_id: int
    terminal_id: int
    amount: float
    tx_datetime: datetime

    @property
    def time_ms(self) -> int:
        return (self.tx_datetime - EPOCH) // pd.Timedelta(milliseconds=1)


def parse_request(payload: Any) -> TransactionRequest:
    """Check one request body and return it typed, or raise ``InvalidRequestError`` naming the field."""
    if not isinstance(payload, dict):
        raise InvalidRequestError("body", f"expected a JSON object per transaction, got {type(payload).__name__}")
    known = {"transaction_id", "card_id", "terminal_id", "amount", "timestamp"}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise InvalidRequestError(unknown[0], f"unknown field. The accepted fields are {sorted(known)}")
    return TransactionRequest(
        transaction_id=_identifier(payload, "transaction_id", required=False),
        card_id=_identifier(payload, "card_id"),
        terminal_id=_identifier(payload, "terminal_id"),
        amount=_amount(payload),
        tx_datetime=_timestamp(payload),
    )


def _identifier(payload: dict, field: str, *, required: bool = True) -> int | None:
    value = payload.get(field)
    if value is None:
        if required:
            raise InvalidRequestError(field, "is required: a non-negative integer")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(field, f"must be a non-negative integer, got {value!r}")
    return value


def _amount(payload: dict) -> float:
    value = payload.get("amount")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidRequestError("amount", f"must be a non-negative number, got {value!r}")
    return float(value)


def _timestamp(payload: dict) -> datetime:
    value = payload.get("timestamp")
    if not isinstance(value, str):
        raise InvalidRequestError("timestamp", f"must be an ISO 8601 string such as 2018-10-01T09:30:00Z, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError("timestamp", f"is not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def build_online_feature_frame(store: FeatureStore, requests: list[TransactionRequest]) -> pd.DataFrame:
    """Return one feature row per request, read from the online store at each request's time."""
    rows = []
    for request in requests:
        as_of = request.time_ms / 1000.0
        records = store.get_records(
            {
                CARD_WEEKLY.name: [request.card_id],
                TERMINAL_WEEKLY.name: [request.terminal_id],
                CARD_RECENT_ACTIVITY.name: [request.card_id],
            },
            as_of=as_of,
        )
        row: dict[str, Any] = {
            "transaction_id": request.transaction_id,
            "tx_datetime": pd.Timestamp(request.tx_datetime),
            "card_id": request.card_id,
            "terminal_id": request.terminal_id,
            "tx_amount": request.amount,
        }
        row.update(_batch_values(CARD_WEEKLY, records[CARD_WEEKLY.name].get(request.card_id), as_of))
        row.update(_batch_values(TERMINAL_WEEKLY, records[TERMINAL_WEEKLY.name].get(request.terminal_id), as_of))
        activity_record = records[CARD_RECENT_ACTIVITY.name].get(request.card_id)
        activity = CardActivity.from_json(activity_record["recent_transactions"]) if activity_record else None
        row.update(streaming_features(activity, request.time_ms))
        rows.append(row)
    return add_request_features(pd.DataFrame(rows))


def _batch_values(spec, record: dict | None, as_of: float) -> dict[str, float]:
    if record is not None and record[spec.event_time_feature] > as_of:
        raise InvalidRequestError(
            "timestamp",
            f"is before the event time of the stored {spec.name} record; the endpoint scores "
            "transactions as they happen, so score past transactions with batch transform",
        )
    values = {}
    for feature in spec.value_features:
        value = None if record is None else record[feature.name]
        values[feature.name] = np.nan if value is None else float(value)
    return values
