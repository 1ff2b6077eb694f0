"""Parsing of DAG params that users type in the trigger form."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_utc_time(name: str, value: str | None) -> datetime | None:
    """Return param ``name`` (ISO 8601) as a naive UTC datetime, or None when it is empty.

    A time with an offset is converted to UTC, and a time without one is read as UTC.
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"Invalid param {name} {value!r}: use an ISO 8601 time such as 2018-09-24 or 2018-09-24T00:00:00Z."
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
