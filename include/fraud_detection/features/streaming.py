"""Near-real-time card features: one definition for the stream, the endpoint and training.

For a transaction of card ``c`` at time ``t`` (epoch milliseconds), each window ``W`` covers
the card's other transactions with ``t - W <= time < t``. They are strictly before the current
one, so the result is the same whether or not the processor has already seen it. The time since
the last transaction uses the latest of them before ``t`` with no window.

The streaming processor keeps, per card, a :class:`CardActivity` state: the transactions
inside the longest window plus twice the allowed lateness, and the latest transaction older
than that (the anchor). For a request at ``t``, once every transaction before ``t`` has
arrived, that is all :func:`streaming_features` needs, so the endpoint reproduces the
training values.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field

import numpy as np

from fraud_detection.features.catalog import STREAMING_WINDOWS
from fraud_detection.features.vectorized import window_aggregates

WINDOW_MS = {label: seconds * 1000 for label, seconds in STREAMING_WINDOWS.items()}
LONGEST_WINDOW_MS = max(WINDOW_MS.values())
DEFAULT_ALLOWED_LATENESS_SECONDS = 300

# One accepted transaction: (epoch milliseconds, transaction id, amount in cents).
Event = tuple[int, int, int]


@dataclass
class CardActivity:
    """Recent transactions of one card, sorted by time, as the module docstring describes."""

    events: list[Event] = field(default_factory=list)
    anchor: Event | None = None
    transaction_ids: set[int] = field(default_factory=set)
    accepted: int = 0

    @property
    def latest_ms(self) -> int | None:
        if self.events:
            return self.events[-1][0]
        return self.anchor[0] if self.anchor else None

    def add(self, event: Event) -> bool:
        """Insert an event in time order and return False for a duplicate transaction id."""
        if event[1] in self.transaction_ids:
            return False
        bisect.insort(self.events, event)
        self.transaction_ids.add(event[1])
        self.accepted += 1
        return True

    def prune(self, cutoff_ms: int) -> None:
        """Drop events older than ``cutoff_ms``, keeping the latest of them as the anchor."""
        cutoff = cutoff_ms
        split = bisect.bisect_left(self.events, (cutoff, -(2**63), 0))
        if split == 0:
            return
        dropped = self.events[:split]
        self.events = self.events[split:]
        if self.anchor is None or dropped[-1] > self.anchor:
            self.anchor = dropped[-1]
        self.transaction_ids.difference_update(event[1] for event in dropped)

    def to_json(self) -> str:
        return json.dumps({"events": self.events, "anchor": self.anchor}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, accepted: int = 0) -> CardActivity:
        data = json.loads(text)
        events = [tuple(event) for event in data["events"]]
        anchor = tuple(data["anchor"]) if data.get("anchor") else None
        return cls(events=events, anchor=anchor, transaction_ids={e[1] for e in events}, accepted=accepted)


def streaming_features(activity: CardActivity | None, t_ms: int) -> dict[str, float]:
    """Compute the near-real-time features of a transaction at ``t_ms`` from a card's state."""
    values: dict[str, float] = {}
    events = activity.events if activity else []
    end = bisect.bisect_left(events, (t_ms, -(2**63), 0))
    for label, window_ms in WINDOW_MS.items():
        start = bisect.bisect_left(events, (t_ms - window_ms, -(2**63), 0))
        inside = events[start:end]
        values[f"card_tx_count_{label}"] = float(len(inside))
        values[f"card_amount_sum_{label}"] = sum(event[2] for event in inside) / 100.0
    if end > 0:
        last_ms = events[end - 1][0]
    elif activity is not None and activity.anchor is not None and activity.anchor[0] < t_ms:
        last_ms = activity.anchor[0]
    else:
        last_ms = None
    values["card_seconds_since_last_tx"] = (t_ms - last_ms) / 1000.0 if last_ms is not None else float("nan")
    return values


def streaming_features_columns(card_ids, times_ms, cents) -> dict[str, np.ndarray]:
    """Compute the near-real-time features of many transactions at once, as :func:`streaming_features` does.

    The inputs are the card's whole history up to the last transaction to score. Each row's
    features use the other rows of its card strictly before it.
    """
    aggregates = window_aggregates(card_ids, times_ms, cents, WINDOW_MS)
    columns: dict[str, np.ndarray] = {}
    for label in WINDOW_MS:
        columns[f"card_tx_count_{label}"] = aggregates[f"count_{label}"].astype("float64")
        columns[f"card_amount_sum_{label}"] = aggregates[f"cents_{label}"].astype("float64") / 100.0
    last = aggregates["last_time"]
    elapsed = (np.asarray(times_ms, dtype=np.int64) - last).astype("float64") / 1000.0
    columns["card_seconds_since_last_tx"] = np.where(aggregates["has_last"], elapsed, np.nan)
    return columns
