"""The product's feature groups and the model's feature list, declared once.

Three feature groups:

- ``card-weekly-aggregates`` and ``terminal-weekly-aggregates``: written once a week by the
  batch job. A record's event time is the week boundary that ends its windows, so a
  transaction at time ``t`` uses the latest record with ``event_time <= t``.
- ``card-recent-activity``: written by the streaming processor. Its record contains the card's
  recent transactions, from which the serving path computes the near-real-time window features
  for any request time (see :mod:`fraud_detection.features.streaming`).
"""

from __future__ import annotations

from datetime import timedelta

from fraud_detection.features.spec import Feature, FeatureGroupSpec, FeatureType

I, F, S = FeatureType.INTEGRAL, FeatureType.FRACTIONAL, FeatureType.STRING

CARD_WINDOWS_DAYS = (7, 30, 90)
TERMINAL_WINDOWS_DAYS = (7, 30, 90)
# Fraud windows end `label delay` days before the week boundary, when labels are known.
LABELLED_WINDOWS_DAYS = (7, 30)
# Entities active in the longest window plus one week get a record, so an entity that just
# went quiet gets a record of zero counts instead of keeping last week's values.
ENTITY_LOOKBACK_DAYS = max(CARD_WINDOWS_DAYS + TERMINAL_WINDOWS_DAYS) + 7
# Near-real-time windows of the streaming feature group, in seconds.
STREAMING_WINDOWS = {"10m": 600, "1h": 3600, "1d": 86400}

EVENT_TIME = Feature("event_time", F, "End of the aggregation windows, seconds since the Unix epoch (UTC).")


def _card_features() -> tuple[Feature, ...]:
    features = [Feature("card_id", I, "Card (customer) identifier."), EVENT_TIME]
    for days in CARD_WINDOWS_DAYS:
        features += [
            Feature(f"card_tx_count_{days}d", I, f"Transactions of the card in the {days} days before the event time."),
            Feature(f"card_amount_sum_{days}d", F, f"Total amount of those {days}-day transactions."),
            Feature(f"card_amount_mean_{days}d", F, f"Mean amount of those {days}-day transactions; missing when there are none."),
            Feature(f"card_amount_max_{days}d", F, f"Largest amount of those {days}-day transactions; missing when there are none."),
        ]
    features += [
        Feature("card_amount_std_30d", F, "Sample standard deviation of the 30-day amounts; missing below two transactions."),
        Feature("card_terminal_count_30d", I, "Distinct terminals the card used in the 30 days before the event time."),
        Feature("card_fraud_count_30d", I, "Labelled frauds of the card in the 30 days ending one label delay before the event time."),
    ]
    return tuple(features)


def _terminal_features() -> tuple[Feature, ...]:
    features = [Feature("terminal_id", I, "Terminal (merchant) identifier."), EVENT_TIME]
    for days in TERMINAL_WINDOWS_DAYS:
        features.append(
            Feature(f"terminal_tx_count_{days}d", I, f"Transactions at the terminal in the {days} days before the event time.")
        )
    features += [
        Feature("terminal_amount_mean_30d", F, "Mean amount at the terminal over 30 days; missing when there are none."),
        Feature("terminal_card_count_30d", I, "Distinct cards seen at the terminal over 30 days."),
    ]
    for days in LABELLED_WINDOWS_DAYS:
        features += [
            Feature(f"terminal_labelled_tx_count_{days}d", I, f"Transactions in the {days} days ending one label delay before the event time."),
            Feature(f"terminal_fraud_count_{days}d", I, f"Frauds among those labelled {days}-day transactions."),
            Feature(f"terminal_fraud_rate_{days}d", F, f"Fraud count over labelled count for {days} days; missing when the count is 0."),
        ]
    return tuple(features)


CARD_WEEKLY = FeatureGroupSpec(
    name="card-weekly-aggregates",
    description="Per-card spending aggregates over 7, 30 and 90 days, written weekly.",
    record_identifier="card_id",
    event_time_feature="event_time",
    features=_card_features(),
    ttl=timedelta(days=14),
)

TERMINAL_WEEKLY = FeatureGroupSpec(
    name="terminal-weekly-aggregates",
    description="Per-terminal activity and label-delayed fraud aggregates, written weekly.",
    record_identifier="terminal_id",
    event_time_feature="event_time",
    features=_terminal_features(),
    ttl=timedelta(days=14),
)

CARD_RECENT_ACTIVITY = FeatureGroupSpec(
    name="card-recent-activity",
    description="Per-card recent transactions, written by the streaming processor as transactions arrive.",
    record_identifier="card_id",
    event_time_feature="event_time",
    features=(
        Feature("card_id", I, "Card (customer) identifier."),
        Feature("event_time", F, "Time of the latest transaction seen for the card, seconds since the Unix epoch (UTC)."),
        Feature(
            "recent_transactions",
            S,
            'JSON object {"events": [...], "anchor": [...]}. The events are the card\'s transactions '
            "within the processor's retention (by default the longest window plus twice the allowed "
            "lateness, before the latest event time seen), the anchor is the latest transaction before "
            "them, each as [epoch milliseconds, transaction id, amount in cents].",
        ),
        Feature("transaction_count", I, "Transactions of the card the processor has accepted so far."),
    ),
)

FEATURE_GROUPS = (CARD_WEEKLY, TERMINAL_WEEKLY, CARD_RECENT_ACTIVITY)
BATCH_FEATURE_GROUPS = (CARD_WEEKLY, TERMINAL_WEEKLY)


def streaming_feature_names() -> list[str]:
    """Return the near-real-time features computed from ``card-recent-activity``."""
    names = []
    for label in STREAMING_WINDOWS:
        names += [f"card_tx_count_{label}", f"card_amount_sum_{label}"]
    return names + ["card_seconds_since_last_tx"]


REQUEST_FEATURES = [
    "tx_amount",
    "tx_hour",
    "tx_day_of_week",
    "tx_is_weekend",
    "tx_is_night",
    "tx_amount_to_card_mean_7d",
    "tx_amount_to_card_mean_30d",
    "tx_amount_to_card_max_90d",
    "tx_amount_to_recent_mean_1d",
]


def model_feature_names() -> list[str]:
    """Return the model's input features, in the column order of its feature matrix."""
    batch = [f.name for group in BATCH_FEATURE_GROUPS for f in group.value_features]
    return batch + streaming_feature_names() + REQUEST_FEATURES


def feature_group(name: str) -> FeatureGroupSpec:
    for group in FEATURE_GROUPS:
        if group.name == name:
            return group
    known = ", ".join(g.name for g in FEATURE_GROUPS)
    raise KeyError(f"Unknown feature group {name!r}; the declared groups are: {known}.")
