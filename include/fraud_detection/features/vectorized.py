"""Vectorised event-time windows over sorted integer keys.

Each (entity, time) pair becomes one int64 key, ``rank(entity) * span + (time - origin)``,
so that one ``numpy.searchsorted`` finds, for every row at once, the first event of a window.
:mod:`fraud_detection.features.asof` uses the same keys for large as-of joins. All arithmetic
is on integers (milliseconds, cents), so results are exact and equal to the per-request
serving path in :mod:`fraud_detection.features.streaming`.
"""

from __future__ import annotations

import numpy as np

INT64_MAX = np.iinfo(np.int64).max


class EntityRanks:
    """Ranks 0 to count - 1 of the distinct entities of several arrays, and -1 for other entities."""

    def __init__(self, entity_arrays: list[np.ndarray]):
        arrays = [np.asarray(a, dtype=np.int64) for a in entity_arrays if len(a)]
        low = min((int(a.min()) for a in arrays), default=0)
        high = max((int(a.max()) for a in arrays), default=-1)
        self._table = None
        if low >= 0 and high < 64 * sum(len(a) for a in arrays) + 1024:
            # Small non-negative identifiers (the usual case) rank through a lookup table, no sort.
            present = np.zeros(high + 1, dtype=bool)
            for values in arrays:
                present[values] = True
            self.count = int(present.sum())
            self._table = np.where(present, np.cumsum(present, dtype=np.int64) - 1, -1)
        else:
            self._distinct = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.int64)
            self.count = len(self._distinct)

    def rank(self, entities: np.ndarray) -> np.ndarray:
        entities = np.asarray(entities, dtype=np.int64)
        if self._table is not None:
            inside = (entities >= 0) & (entities < len(self._table))
            return np.where(inside, self._table[np.where(inside, entities, 0)], -1)
        if not self.count:
            return np.full(len(entities), -1, dtype=np.int64)
        position = np.searchsorted(self._distinct, entities).clip(max=self.count - 1)
        return np.where(self._distinct[position] == entities, position, -1)


class KeySpace:
    """Map (entity, time) pairs of several arrays into one ordered int64 key space."""

    def __init__(self, entity_arrays: list[np.ndarray], time_arrays: list[np.ndarray], *, lookback: int = 0):
        self.entities = EntityRanks(entity_arrays)
        times = [np.asarray(t, dtype=np.int64) for t in time_arrays if len(t)]
        low = min((int(t.min()) for t in times), default=0)
        high = max((int(t.max()) for t in times), default=0)
        self.origin = low - lookback
        self.span = high - self.origin + 1
        count = self.entities.count
        if count and (count + 1) > INT64_MAX // max(self.span, 1):
            raise OverflowError(
                f"{count} entities over a span of {self.span} time units do not fit in int64 keys; "
                "build the frame in shorter periods."
            )

    def rank(self, entities: np.ndarray) -> np.ndarray:
        return self.entities.rank(entities)

    def keys(self, entities: np.ndarray, times: np.ndarray) -> np.ndarray:
        return self.rank(entities) * self.span + (np.asarray(times, dtype=np.int64) - self.origin)


def window_aggregates(
    entities: np.ndarray, times: np.ndarray, cents: np.ndarray, windows: dict[str, int]
) -> dict[str, np.ndarray]:
    """Count and sum each entity's other events with ``t - window <= time < t``, for every event.

    Also returns ``last_time``, the latest of the entity's events strictly before ``t`` (no
    window), and ``has_last``, False where there is none. Inputs need not be sorted; outputs
    follow them.
    """
    longest = max(windows.values(), default=0)
    space = KeySpace([entities], [times], lookback=longest)
    times = np.asarray(times, dtype=np.int64)
    ranks = space.rank(entities)
    order = _entity_time_order(ranks, times, space.span)
    sorted_ranks = ranks[order]
    sorted_times = times[order]
    sorted_keys = sorted_ranks * space.span + (sorted_times - space.origin)
    running_cents = np.concatenate([[0], np.cumsum(np.asarray(cents, dtype=np.int64)[order])])
    # First index of each event's own key and of its entity. Everything before the first is
    # strictly earlier.
    end = _run_starts(sorted_keys)
    segment_start = _run_starts(sorted_ranks)
    results: dict[str, np.ndarray] = {}
    for label, window in windows.items():
        start = np.searchsorted(sorted_keys, sorted_keys - window, side="left")
        results[f"count_{label}"] = unsort(end - start, order)
        results[f"cents_{label}"] = unsort(running_cents[end] - running_cents[start], order)
    has_previous = end > segment_start
    previous = np.where(has_previous, sorted_times[np.clip(end - 1, 0, None)], 0)
    results["last_time"] = unsort(previous, order)
    results["has_last"] = unsort(has_previous, order)
    return results


def _entity_time_order(ranks: np.ndarray, times: np.ndarray, span: int) -> np.ndarray:
    """Return the stable order of events by (entity rank, time)."""
    if len(times) and ranks.max() < 2**16 and bool(np.all(times[1:] >= times[:-1])):
        # Events already in time order need only a stable sort by entity. numpy's stable sort
        # of small integer types is a radix sort (numpy.sort, Notes): on the handbook's 1.75M
        # events it took 0.045 s, against 0.145 s for the int64 keys below.
        return np.argsort(ranks.astype(np.uint16), kind="stable")
    return np.argsort(ranks * span + times, kind="stable")


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Return, for each position of a sorted array, the first position with the same value."""
    positions = np.arange(len(sorted_values))
    starts = np.ones(len(sorted_values), dtype=bool)
    starts[1:] = sorted_values[1:] != sorted_values[:-1]
    return np.maximum.accumulate(np.where(starts, positions, 0)) if len(positions) else positions


def unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Return ``values``, which follow ``order``, in the original order."""
    result = np.empty_like(values)
    result[order] = values
    return result
