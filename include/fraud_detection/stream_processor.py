"""The streaming processor: transactions in, ``card-recent-activity`` records out.

It reads transactions as they arrive, in event-time order give or take the allowed lateness,
and keeps each card's :class:`~fraud_detection.features.streaming.CardActivity`. After every
micro-batch it ingests the changed cards' records into the feature group (online and offline).

- Event time, not processing time, decides every window.
- A transaction id seen before is ignored (at-least-once delivery is fine).
- The watermark is the latest event time seen minus the allowed lateness. A transaction older
  than the watermark is too late: it is counted and set aside, never applied.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

import pandas as pd

from fraud_detection.data.source import connect
from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY
from fraud_detection.features.streaming import (
    DEFAULT_ALLOWED_LATENESS_SECONDS,
    LONGEST_WINDOW_MS,
    CardActivity,
    Event,
)
from fraud_detection.stores.base import FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transaction:
    transaction_id: int
    card_id: int
    time_ms: int
    amount_cents: int


@dataclass
class StreamStats:
    transactions_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    too_late: int = 0
    records_written: int = 0
    micro_batches: int = 0
    late_transaction_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        summary = asdict(self)
        summary["late_transaction_ids"] = self.late_transaction_ids[:100]
        return summary


class StreamProcessor:
    """Maintain per-card recent activity and write it to the online and offline stores."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        allowed_lateness_seconds: int = DEFAULT_ALLOWED_LATENESS_SECONDS,
        micro_batch_size: int = 1000,
        retention_seconds: int | None = None,
    ):
        """Create a processor.

        ``retention_seconds`` is how far behind the latest event time the state keeps events
        (default: the longest window plus twice the allowed lateness). A request is served
        exactly while its time is at least ``latest event time - retention + longest window``.
        """
        if allowed_lateness_seconds < 0:
            raise ValueError(f"Invalid allowed lateness {allowed_lateness_seconds} s: use 0 or more seconds.")
        if micro_batch_size < 1:
            raise ValueError(f"Invalid micro-batch size {micro_batch_size}: use 1 or more transactions.")
        self.store = store
        self.lateness_ms = allowed_lateness_seconds * 1000
        self.micro_batch_size = micro_batch_size
        default_retention_ms = LONGEST_WINDOW_MS + 2 * self.lateness_ms
        self._retention_ms = default_retention_ms if retention_seconds is None else retention_seconds * 1000
        if self._retention_ms < LONGEST_WINDOW_MS:
            raise ValueError(
                f"Invalid retention {retention_seconds} s: keep at least the longest window, {LONGEST_WINDOW_MS // 1000} s."
            )
        self.cards: dict[int, CardActivity] = {}
        self.max_time_ms: int | None = None
        self.stats = StreamStats()

    @property
    def watermark_ms(self) -> int | None:
        return None if self.max_time_ms is None else self.max_time_ms - self.lateness_ms

    @property
    def retention_ms(self) -> int:
        return self._retention_ms

    def seed(self, history: Iterable[Transaction]) -> None:
        """Load earlier transactions into the state and write the seeded cards' records."""
        for transaction in history:
            self._apply(transaction)
        if self.cards:
            self._flush(set(self.cards))
        log.info("Seeded the state of %d cards from history", len(self.cards))

    def process(self, transactions: Iterable[Transaction]) -> StreamStats:
        """Apply transactions in arrival order, writing records after every micro-batch."""
        changed: set[int] = set()
        pending = 0
        late_before = self.stats.too_late
        for transaction in transactions:
            self.stats.transactions_read += 1
            watermark = self.watermark_ms
            if watermark is not None and transaction.time_ms < watermark:
                self.stats.too_late += 1
                self.stats.late_transaction_ids.append(transaction.transaction_id)
                continue
            if not self._apply(transaction):
                self.stats.duplicates += 1
                continue
            self.stats.accepted += 1
            changed.add(transaction.card_id)
            pending += 1
            if pending >= self.micro_batch_size:
                self._flush(changed)
                changed, pending = set(), 0
        if changed:
            self._flush(changed)
        late = self.stats.too_late - late_before
        if late:
            log.warning(
                "Set aside %d transactions older than the watermark (allowed lateness %d s), e.g. ids %s",
                late, self.lateness_ms // 1000, self.stats.late_transaction_ids[-late:][:5],
            )
        return self.stats

    def _apply(self, transaction: Transaction) -> bool:
        activity = self.cards.setdefault(transaction.card_id, CardActivity())
        event: Event = (transaction.time_ms, transaction.transaction_id, transaction.amount_cents)
        if not activity.add(event):
            return False
        if self.max_time_ms is None or transaction.time_ms > self.max_time_ms:
            self.max_time_ms = transaction.time_ms
        return True

    def _prune(self, card_ids: Iterable[int]) -> None:
        if self.max_time_ms is None:
            return
        cutoff = self.max_time_ms - self.retention_ms
        for card_id in card_ids:
            self.cards[card_id].prune(cutoff)

    def _flush(self, changed: set[int]) -> None:
        self._prune(changed)
        records = pd.DataFrame(
            {
                "card_id": sorted(changed),
                "event_time": [self.cards[c].latest_ms / 1000.0 for c in sorted(changed)],
                "recent_transactions": [self.cards[c].to_json() for c in sorted(changed)],
                "transaction_count": [self.cards[c].accepted for c in sorted(changed)],
            }
        )
        result = self.store.ingest(CARD_RECENT_ACTIVITY.name, records)
        self.stats.records_written += result.records_written
        self.stats.micro_batches += 1


def read_transactions(database: Path, start: datetime, end: datetime) -> list[Transaction]:
    """Read transactions with ``start <= time < end`` from the source datastore, in time order."""
    with connect(database) as connection:
        rows = connection.execute(
            "SELECT transaction_id, customer_id, epoch_ms(tx_datetime), tx_amount_cents FROM transactions "
            "WHERE tx_datetime >= ? AND tx_datetime < ? ORDER BY tx_datetime, transaction_id",
            [start, end],
        ).fetchall()
    return [Transaction(*row) for row in rows]


def read_seed_history(database: Path, start: datetime, retention: timedelta) -> list[Transaction]:
    """Read what the state needs before ``start``: the retention span and each card's anchor."""
    with connect(database) as connection:
        rows = connection.execute(
            """
            SELECT transaction_id, customer_id, epoch_ms(tx_datetime), tx_amount_cents
            FROM transactions WHERE tx_datetime >= $span_start AND tx_datetime < $start
            UNION ALL
            SELECT transaction_id, customer_id, epoch_ms(tx_datetime), tx_amount_cents FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY customer_id ORDER BY tx_datetime DESC, transaction_id DESC
                ) AS recency
                FROM transactions WHERE tx_datetime < $span_start
            ) WHERE recency = 1
            ORDER BY 3, 1
            """,
            {"start": start, "span_start": start - retention},
        ).fetchall()
    return [Transaction(*row) for row in rows]
