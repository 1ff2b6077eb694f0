"""As-of joins of transactions to feature records, and the latest version of each record.

Batch feature groups have few distinct event times, one per weekly run. The usual join
therefore fills a dense grid of (entity, event time) cells, each with the latest record at or
before that time, and answers each query with two small lookups, without sorting the queries.
When the grid would be large (many distinct event times), the join sorts int64 keys instead.
Both paths return the same indices.
"""

from __future__ import annotations

import numpy as np

from fraud_detection.features.vectorized import EntityRanks, KeySpace, unsort

# The grid path runs while the grid has at most this many cells per record and query, plus a
# fixed allowance, so its memory stays proportional to the inputs.
GRID_CELLS_PER_ROW = 4
GRID_CELLS_ALLOWANCE = 1 << 20


def asof_indices(
    record_entities: np.ndarray,
    record_times: np.ndarray,
    query_entities: np.ndarray,
    query_times: np.ndarray,
    *,
    use_grid: bool | None = None,
) -> np.ndarray:
    """Return, per query, the index of the latest record with the same entity and time <= query time, else -1.

    Among records with the same entity and time, the last one in input order wins.
    ``use_grid`` forces a path (for tests); by default the grid is used when it is small enough.
    """
    record_entities = np.asarray(record_entities, dtype=np.int64)
    record_times = np.asarray(record_times, dtype=np.int64)
    query_entities = np.asarray(query_entities, dtype=np.int64)
    query_times = np.asarray(query_times, dtype=np.int64)
    if not len(record_entities):
        return np.full(len(query_entities), -1, dtype=np.int64)
    entities = EntityRanks([record_entities])
    distinct_times = np.unique(record_times)
    cells = entities.count * len(distinct_times)
    if use_grid is None:
        use_grid = cells <= GRID_CELLS_PER_ROW * (len(record_times) + len(query_times)) + GRID_CELLS_ALLOWANCE
    if use_grid:
        return _grid_asof(entities, distinct_times, record_entities, record_times, query_entities, query_times)
    return _sorted_asof(record_entities, record_times, query_entities, query_times)


def latest_versions(
    identifiers: np.ndarray, event_times: np.ndarray, version_keys: list[np.ndarray], is_deleted: np.ndarray
) -> np.ndarray:
    """Return the row indices of each record's latest version, in input order, without deleted records.

    A record is one (identifier, event time) pair. Its versions are ordered by ``version_keys``,
    most significant first, for example write time then API invocation time. A record whose
    latest version is a deletion marker is left out, the offline store's rule.
    """
    if not len(identifiers):
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((*reversed([np.asarray(k) for k in version_keys]), event_times, identifiers))
    sorted_ids = np.asarray(identifiers)[order]
    sorted_times = np.asarray(event_times)[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (sorted_ids[1:] != sorted_ids[:-1]) | (sorted_times[1:] != sorted_times[:-1])
    latest = order[last]
    latest = latest[~np.asarray(is_deleted, dtype=bool)[latest]]
    latest.sort()
    return latest


def _grid_asof(
    entities: EntityRanks,
    distinct_times: np.ndarray,
    record_entities: np.ndarray,
    record_times: np.ndarray,
    query_entities: np.ndarray,
    query_times: np.ndarray,
) -> np.ndarray:
    width = len(distinct_times)
    grid = np.full(entities.count * width, -1, dtype=np.int64)
    cells = entities.rank(record_entities) * width + np.searchsorted(distinct_times, record_times)
    # The highest index per cell, so the last of several records with one entity and time wins.
    np.maximum.at(grid, cells, np.arange(len(cells), dtype=np.int64))
    grid = grid.reshape(entities.count, width)
    # Carry each entity's latest record forward to the later times where it has none.
    filled_at = np.maximum.accumulate(np.where(grid >= 0, np.arange(width), -1), axis=1)
    grid = np.where(filled_at >= 0, np.take_along_axis(grid, filled_at.clip(0), axis=1), -1).ravel()
    rank = entities.rank(query_entities)
    column = np.searchsorted(distinct_times, query_times, side="right") - 1
    found = (rank >= 0) & (column >= 0)
    return np.where(found, grid[np.where(found, rank * width + column, 0)], -1)


def _sorted_asof(
    record_entities: np.ndarray, record_times: np.ndarray, query_entities: np.ndarray, query_times: np.ndarray
) -> np.ndarray:
    space = KeySpace([record_entities, query_entities], [record_times, query_times])
    record_keys = space.keys(record_entities, record_times)
    order = np.argsort(record_keys, kind="stable")
    sorted_keys = record_keys[order]
    sorted_ranks = space.rank(record_entities[order])
    query_keys = space.keys(query_entities, query_times)
    # Sorted needles make searchsorted much faster on large inputs.
    query_order = np.argsort(query_keys, kind="stable")
    position = unsort(np.searchsorted(sorted_keys, query_keys[query_order], side="right") - 1, query_order)
    clipped = np.clip(position, 0, None)
    found = (position >= 0) & (sorted_ranks[clipped] == space.rank(query_entities))
    return np.where(found, order[clipped], -1)
