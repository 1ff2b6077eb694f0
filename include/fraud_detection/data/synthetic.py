"""Generate a synthetic card-transaction data set with labelled fraud.

Customers and terminals sit at random points on a 100 x 100 grid. Each customer has a
home location, a lognormal amount distribution (mean 10-100, std 20-60 % of the mean)
and a mean number of transactions per day (0-4). A customer uses only the terminals
within ``CUSTOMER_TERMINAL_RADIUS`` of home, or the ``FALLBACK_TERMINAL_COUNT`` nearest
terminals when none is that close. Each day a customer makes a Poisson number of
transactions at times clustered around midday, with a tail into the night.

Four fraud scenarios are injected on top, each adding a few tenths of a percent of the
rows, for an overall fraud rate of about 0.5-1.5 %:

1. Every amount above ``AMOUNT_FRAUD_THRESHOLD`` is fraud.
2. Terminals are compromised at random, and all their transactions in the
   ``TERMINAL_COMPROMISE_DAYS`` days from the compromise day on are fraud.
3. Cards are compromised at random. In the ``CARD_COMPROMISE_DAYS`` days from the
   compromise day on, each of their transactions is fraud with probability 1/3, and
   its amount is multiplied by 5.
4. Bursts: a card makes 3-8 extra transactions within ``BURST_SPAN_SECONDS`` at
   random terminals anywhere on the grid, all fraud.

The number of compromises and bursts per day is Poisson, with a mean proportional to the
number of terminals or customers, so the fraud rate barely depends on the data-set size.
"""

from __future__ import annotations

import logging
import numbers
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

COLUMNS = [
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
]

SCENARIO_GENUINE = 0
SCENARIO_AMOUNT = 1
SCENARIO_TERMINAL = 2
SCENARIO_CARD = 3
SCENARIO_BURST = 4

GRID_SIZE = 100.0
CUSTOMER_TERMINAL_RADIUS = 5.0
FALLBACK_TERMINAL_COUNT = 3

SECONDS_PER_DAY = 86_400
# The time of day is normal around 12:30 with a 4.5 h standard deviation, wrapped into
# [0, 24 h). That puts about 8 % of the transactions between 00:00 and 06:00.
TIME_OF_DAY_MEAN_SECONDS = 12.5 * 3600
TIME_OF_DAY_STD_SECONDS = 4.5 * 3600

AMOUNT_FRAUD_THRESHOLD = 220.0

TERMINAL_COMPROMISE_DAYS = 28
# Expected new compromised terminals per day, per terminal. For 2000 terminals that is
# 0.2 a day, which with 28-day windows over 84 days makes an expected 0.24 % of the
# transactions fraud.
TERMINAL_COMPROMISE_RATE = 1.0e-4

CARD_COMPROMISE_DAYS = 14
# Expected new compromised cards per day, per customer (0.6 a day for 1000 customers).
CARD_COMPROMISE_RATE = 6.0e-4
CARD_FRAUD_PROBABILITY = 1.0 / 3.0
CARD_FRAUD_AMOUNT_FACTOR = 5.0

# Expected bursts per day, per customer (1 a day for 1000 customers).
BURST_RATE = 1.0e-3
BURST_MIN_SIZE = 3
BURST_MAX_SIZE = 8
BURST_SPAN_SECONDS = 300

# Customer-terminal pairs per distance block, which bounds the temporaries to about 100 MB.
_DISTANCE_BLOCK_SIZE = 4_000_000


@dataclass(frozen=True)
class Profiles:
    """Customer and terminal profiles behind one generated data set.

    ``customers`` has the columns CUSTOMER_ID, X, Y, MEAN_AMOUNT, STD_AMOUNT and
    MEAN_TX_PER_DAY. ``terminals`` has TERMINAL_ID, X and Y. Coordinates are on the
    ``GRID_SIZE`` x ``GRID_SIZE`` grid.
    """

    customers: pd.DataFrame
    terminals: pd.DataFrame


def generate_profiles(*, n_customers: int = 1000, n_terminals: int = 2000, seed: int = 7) -> Profiles:
    """Generate the customer and terminal profiles that ``generate_transactions`` uses.

    For the same arguments, the profiles are the ones behind
    ``generate_transactions(n_customers=..., n_terminals=..., seed=...)``.
    """
    _validate_count("n_customers", n_customers)
    _validate_count("n_terminals", n_terminals)
    _validate_seed(seed)

    customer_rng, terminal_rng, _ = _spawn_generators(seed)
    return Profiles(
        customers=_generate_customers(customer_rng, n_customers),
        terminals=_generate_terminals(terminal_rng, n_terminals),
    )


def generate_transactions(
    *,
    n_customers: int = 1000,
    n_terminals: int = 2000,
    start: str | datetime = "2018-04-01",
    days: int = 84,
    seed: int = 7,
) -> pd.DataFrame:
    """Generate ``days`` days of card transactions with labelled fraud.

    The data starts at midnight of the date of ``start``, so its time of day is ignored.
    A timezone-aware ``start`` is converted to UTC first. The output is the same for the
    same arguments. See the module docstring for the model.

    Returns a DataFrame with the columns of ``COLUMNS``, sorted by TX_DATETIME, with
    TRANSACTION_ID numbering the rows from 0 in that order.

    Raises:
        ValueError: a count or ``days`` is not a positive integer, ``seed`` is not a
            non-negative integer, or ``start`` is not a valid date.
    """
    _validate_count("n_customers", n_customers)
    _validate_count("n_terminals", n_terminals)
    _validate_count("days", days)
    _validate_seed(seed)
    start_day = _parse_start(start)

    started = time.perf_counter()
    customer_rng, terminal_rng, rng = _spawn_generators(seed)
    customers = _generate_customers(customer_rng, n_customers)
    terminals = _generate_terminals(terminal_rng, n_terminals)

    offsets, candidates = _nearby_terminals(
        customers[["X", "Y"]].to_numpy(), terminals[["X", "Y"]].to_numpy()
    )
    amount_mu, amount_sigma = _lognormal_parameters(
        customers["MEAN_AMOUNT"].to_numpy(), customers["STD_AMOUNT"].to_numpy()
    )

    # Genuine transactions: a Poisson count per customer and day.
    counts = rng.poisson(customers["MEAN_TX_PER_DAY"].to_numpy()[:, None], size=(n_customers, days))
    customer_ids = np.repeat(np.arange(n_customers, dtype=np.int64), counts.sum(axis=1))
    day_index = np.nonzero(counts)[1].repeat(counts[counts > 0])
    n_genuine = customer_ids.size

    time_of_day = rng.normal(TIME_OF_DAY_MEAN_SECONDS, TIME_OF_DAY_STD_SECONDS, n_genuine)
    time_of_day = np.floor(time_of_day).astype(np.int64) % SECONDS_PER_DAY
    seconds = day_index * SECONDS_PER_DAY + time_of_day

    # Each transaction picks one of its customer's nearby terminals uniformly.
    choice = (rng.random(n_genuine) * np.diff(offsets)[customer_ids]).astype(np.int64)
    terminal_ids = candidates[offsets[customer_ids] + choice]

    amounts = _draw_amounts(rng, amount_mu[customer_ids], amount_sigma[customer_ids])

    # Scenarios 2 and 3 on the genuine rows.
    terminal_compromised = _compromise_windows(
        rng, n_terminals, days, TERMINAL_COMPROMISE_RATE, TERMINAL_COMPROMISE_DAYS
    )
    at_compromised_terminal = terminal_compromised[terminal_ids, day_index]

    card_compromised = _compromise_windows(rng, n_customers, days, CARD_COMPROMISE_RATE, CARD_COMPROMISE_DAYS)
    card_fraud = card_compromised[customer_ids, day_index] & (rng.random(n_genuine) < CARD_FRAUD_PROBABILITY)
    amounts[card_fraud] = np.round(amounts[card_fraud] * CARD_FRAUD_AMOUNT_FACTOR, 2)

    # When several scenarios apply, the highest-numbered one is the label, because it is
    # the more specific cause. For example, a compromised card's 5x amount often crosses
    # the scenario 1 threshold, and a compromised terminal can also see a large amount.
    scenario = np.where(amounts > AMOUNT_FRAUD_THRESHOLD, SCENARIO_AMOUNT, SCENARIO_GENUINE)
    scenario[at_compromised_terminal] = SCENARIO_TERMINAL
    scenario[card_fraud] = SCENARIO_CARD

    # Scenario 4 adds rows, which are labelled 4 whatever else applies to them.
    burst_customers, burst_seconds, burst_terminals = _generate_bursts(rng, n_customers, n_terminals, days)
    burst_amounts = _draw_amounts(rng, amount_mu[burst_customers], amount_sigma[burst_customers])

    customer_ids = np.concatenate([customer_ids, burst_customers])
    seconds = np.concatenate([seconds, burst_seconds])
    terminal_ids = np.concatenate([terminal_ids, burst_terminals])
    amounts = np.concatenate([amounts, burst_amounts])
    scenario = np.concatenate([scenario, np.full(burst_customers.size, SCENARIO_BURST)])

    # Ties in time are sorted by customer, and the stable sort keeps any remaining ties in
    # generation order, so the row order is deterministic.
    order = np.lexsort((customer_ids, seconds))
    timestamps = start_day + seconds[order].astype("timedelta64[s]")
    scenario = scenario[order].astype(np.int8)
    transactions = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(order.size, dtype=np.int64),
            "TX_DATETIME": timestamps,
            "CUSTOMER_ID": customer_ids[order],
            "TERMINAL_ID": terminal_ids[order],
            "TX_AMOUNT": amounts[order],
            "TX_FRAUD": (scenario > 0).astype(np.int8),
            "TX_FRAUD_SCENARIO": scenario,
        },
        columns=COLUMNS,
    )

    logger.info(
        "Generated %d transactions (%d customers, %d terminals, %d days, seed %d) "
        "in %.2f s, fraud rate %.2f %%",
        len(transactions),
        n_customers,
        n_terminals,
        days,
        seed,
        time.perf_counter() - started,
        100.0 * transactions["TX_FRAUD"].mean() if len(transactions) else 0.0,
    )
    return transactions


def write_transactions_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write transactions to a CSV file, gzip-compressed when ``path`` ends with .gz.

    TX_DATETIME is written as ``%Y-%m-%d %H:%M:%S`` and TX_AMOUNT with two decimals.
    Missing parent directories are created. The gzip header carries no timestamp, so
    writing the same data to the same path gives the same bytes. Returns the path written.
    """
    if "TX_DATETIME" not in df.columns:
        raise ValueError(
            f"column TX_DATETIME is missing from the DataFrame (columns: {list(df.columns)}). "
            "Pass the output of generate_transactions."
        )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compression = {"method": "gzip", "mtime": 0} if path.name.endswith(".gz") else None
    df.to_csv(
        path,
        index=False,
        date_format="%Y-%m-%d %H:%M:%S",
        float_format="%.2f",
        compression=compression,
    )
    logger.info("Wrote %d transactions to %s", len(df), path)
    return path


def _validate_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"invalid {name}: {value!r}. Pass an integer >= 1.")


def _validate_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"invalid seed: {seed!r}. Pass an integer >= 0.")


def _parse_start(start: str | datetime) -> np.datetime64:
    """Return midnight of the date of ``start`` as a naive UTC datetime64[s]."""
    try:
        timestamp = pd.Timestamp(start)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"invalid start: {start!r} is not a date ({error}). "
            "Pass a datetime or an ISO date such as '2018-04-01'."
        ) from error
    if pd.isna(timestamp):
        raise ValueError(
            f"invalid start: {start!r} is not a date. Pass a datetime or an ISO date such as '2018-04-01'."
        )
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(timestamp.normalize().date(), "s")


def _spawn_generators(seed: int) -> list[np.random.Generator]:
    """Return independent generators for customers, terminals and transactions.

    Separate streams keep the profiles independent of the transaction draws, so
    ``generate_profiles`` returns the profiles that ``generate_transactions`` used.
    """
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)]


def _generate_customers(rng: np.random.Generator, n_customers: int) -> pd.DataFrame:
    mean_amount = rng.uniform(10.0, 100.0, n_customers)
    return pd.DataFrame(
        {
            "CUSTOMER_ID": np.arange(n_customers, dtype=np.int64),
            "X": rng.uniform(0.0, GRID_SIZE, n_customers),
            "Y": rng.uniform(0.0, GRID_SIZE, n_customers),
            "MEAN_AMOUNT": mean_amount,
            "STD_AMOUNT": mean_amount * rng.uniform(0.2, 0.6, n_customers),
            "MEAN_TX_PER_DAY": rng.uniform(0.0, 4.0, n_customers),
        }
    )


def _generate_terminals(rng: np.random.Generator, n_terminals: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "TERMINAL_ID": np.arange(n_terminals, dtype=np.int64),
            "X": rng.uniform(0.0, GRID_SIZE, n_terminals),
            "Y": rng.uniform(0.0, GRID_SIZE, n_terminals),
        }
    )


def _nearby_terminals(customer_xy: np.ndarray, terminal_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each customer's candidate terminals in CSR form.

    Customer ``c`` uses ``candidates[offsets[c]:offsets[c + 1]]``: the terminals within
    ``CUSTOMER_TERMINAL_RADIUS`` of home, or the ``FALLBACK_TERMINAL_COUNT`` nearest when
    none is that close. Customers are processed in blocks to bound memory.
    """
    n_customers = len(customer_xy)
    n_terminals = len(terminal_xy)
    fallback = min(FALLBACK_TERMINAL_COUNT, n_terminals)
    block = max(1, _DISTANCE_BLOCK_SIZE // n_terminals)

    counts = []
    candidates = []
    for first in range(0, n_customers, block):
        xy = customer_xy[first : first + block]
        squared = ((xy[:, None, :] - terminal_xy[None, :, :]) ** 2).sum(axis=2)
        near = squared <= CUSTOMER_TERMINAL_RADIUS**2

        lonely = np.flatnonzero(~near.any(axis=1))
        if lonely.size:
            nearest = np.argpartition(squared[lonely], fallback - 1, axis=1)[:, :fallback]
            near[lonely[:, None], nearest] = True

        counts.append(near.sum(axis=1))
        candidates.append(np.nonzero(near)[1])

    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return offsets, np.concatenate(candidates).astype(np.int64)


def _lognormal_parameters(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the mu and sigma of the lognormal with the given mean and std."""
    sigma_squared = np.log1p((std / mean) ** 2)
    return np.log(mean) - sigma_squared / 2.0, np.sqrt(sigma_squared)


def _draw_amounts(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Draw lognormal amounts rounded to cents, with 0.01 as the minimum."""
    return np.maximum(np.round(rng.lognormal(mu, sigma), 2), 0.01)


def _compromise_windows(
    rng: np.random.Generator, n_entities: int, days: int, rate: float, duration: int
) -> np.ndarray:
    """Draw compromises and return a (n_entities, days) mask of compromised days.

    Each day, a Poisson number of entities (mean ``rate * n_entities``) is compromised
    for that day and the ``duration - 1`` days after it.
    """
    per_day = rng.poisson(rate * n_entities, size=days)
    start_days = np.repeat(np.arange(days), per_day)
    entities = rng.integers(0, n_entities, start_days.size)

    # Difference array: +1 on the first day, -1 after the last, then a running sum.
    change = np.zeros((n_entities, days + 1), dtype=np.int32)
    np.add.at(change, (entities, start_days), 1)
    np.add.at(change, (entities, np.minimum(start_days + duration, days)), -1)
    return np.cumsum(change, axis=1)[:, :days] > 0


def _generate_bursts(
    rng: np.random.Generator, n_customers: int, n_terminals: int, days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the burst rows and return their customer ids, seconds from start and terminal ids."""
    per_day = rng.poisson(BURST_RATE * n_customers, size=days)
    burst_days = np.repeat(np.arange(days), per_day)
    n_bursts = burst_days.size

    customers = rng.integers(0, n_customers, n_bursts)
    # The burst starts at a usual time of day and ends before midnight.
    first_second = rng.normal(TIME_OF_DAY_MEAN_SECONDS, TIME_OF_DAY_STD_SECONDS, n_bursts)
    first_second = np.clip(np.floor(first_second), 0, SECONDS_PER_DAY - BURST_SPAN_SECONDS).astype(np.int64)
    sizes = rng.integers(BURST_MIN_SIZE, BURST_MAX_SIZE + 1, n_bursts)

    row_customers = np.repeat(customers, sizes)
    row_start = np.repeat(burst_days * SECONDS_PER_DAY + first_second, sizes)
    row_seconds = row_start + rng.integers(0, BURST_SPAN_SECONDS, row_customers.size)
    row_terminals = rng.integers(0, n_terminals, row_customers.size)
    return row_customers.astype(np.int64), row_seconds, row_terminals.astype(np.int64)
