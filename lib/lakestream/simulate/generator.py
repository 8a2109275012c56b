"""Pure NumPy core of the card-transaction simulator (fraud-protocol.md, section 1).

Every random draw goes through a local ``np.random.RandomState`` or ``random.Random`` instance seeded
exactly like the legacy global generators of the reference description, so results are reproduced row for
row while the functions stay thread-safe and can run inside Spark executors on batches of customers.

Arrays are passed around as ``dict[str, np.ndarray]`` ("columns") so that they convert directly to pandas
or Arrow without this module importing either.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lakestream.errors import ConfigError

logger = logging.getLogger(__name__)

Columns = dict[str, np.ndarray]

SECONDS_PER_DAY = 86_400
TX_TIME_MEAN_SECONDS = 43_200.0
TX_TIME_STD_SECONDS = 20_000.0

CUSTOMER_PROFILE_SEED = 0
TERMINAL_PROFILE_SEED = 1

SCENARIO1_AMOUNT_THRESHOLD = 220.0
SCENARIO2_NB_TERMINALS = 2
SCENARIO2_WINDOW_DAYS = 28
SCENARIO3_NB_CUSTOMERS = 3
SCENARIO3_WINDOW_DAYS = 14
SCENARIO3_AMOUNT_FACTOR = 5.0

_MAX_NUMPY_SEED = 2**32 - 1
_TRANSACTION_COLUMNS = ("customer_id", "terminal_id", "tx_time_seconds", "tx_time_days", "amount")


@dataclass(frozen=True)
class SimulationParams:
    """Size and seeding of one simulated dataset; the defaults reproduce the reference dataset."""

    n_customers: int = 5000
    n_terminals: int = 10000
    nb_days: int = 183
    start_date: str = "2018-04-01"
    radius: float = 5.0
    seed_offset: int = 0

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_terminals", "nb_days", "seed_offset"):
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"SimulationParams.{name} must be >= 0, got {value!r}")
        if not self.radius >= 0:  # also rejects NaN
            raise ConfigError(f"SimulationParams.radius must be >= 0, got {self.radius!r}")
        try:
            np.datetime64(self.start_date, "s")
        except ValueError as exc:
            raise ConfigError(
                f"SimulationParams.start_date must be an ISO date such as '2018-04-01', got {self.start_date!r}"
            ) from exc


def _checked_seed(seed: int) -> int:
    """Return ``seed`` if the legacy NumPy seeding accepts it, else raise a ConfigError naming it."""
    if not 0 <= seed <= _MAX_NUMPY_SEED:
        raise ConfigError(f"seed {seed} is outside [0, 2**32 - 1]; lower seed_offset or the number of ids/days")
    return seed


def generate_customer_profiles(params: SimulationParams) -> Columns:
    """One row per customer: customer_id, x, y, mean_amount, std_amount, mean_nb_tx_per_day."""
    n = params.n_customers
    rng = np.random.RandomState(_checked_seed(CUSTOMER_PROFILE_SEED + params.seed_offset))
    # One uniform stream, read per customer in the order x, y, mean_amount, mean_nb_tx_per_day;
    # low + (high - low) * u is exactly what legacy ``uniform`` computes for each scalar draw.
    u = rng.random_sample((n, 4))
    mean_amount = 5.0 + 95.0 * u[:, 2]
    return {
        "customer_id": np.arange(n, dtype=np.int64),
        "x": 0.0 + 100.0 * u[:, 0],
        "y": 0.0 + 100.0 * u[:, 1],
        "mean_amount": mean_amount,
        "std_amount": mean_amount / 2,
        "mean_nb_tx_per_day": 0.0 + 4.0 * u[:, 3],
    }


def generate_terminal_profiles(params: SimulationParams) -> Columns:
    """Terminal profiles (terminal_id, x, y), one row per terminal."""
    n = params.n_terminals
    rng = np.random.RandomState(_checked_seed(TERMINAL_PROFILE_SEED + params.seed_offset))
    u = rng.random_sample((n, 2))
    return {
        "terminal_id": np.arange(n, dtype=np.int64),
        "x": 0.0 + 100.0 * u[:, 0],
        "y": 0.0 + 100.0 * u[:, 1],
    }


def _group_by_cell(cells: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Map each occupied (cx, cy) grid cell to the ascending row positions it holds."""
    if len(cells) == 0:
        return {}
    order = np.lexsort((np.arange(len(cells)), cells[:, 1], cells[:, 0]))
    sorted_cells = cells[order]
    change = np.any(sorted_cells[1:] != sorted_cells[:-1], axis=1)
    starts = np.concatenate(([0], np.flatnonzero(change) + 1, [len(cells)]))
    return {
        (int(sorted_cells[s, 0]), int(sorted_cells[s, 1])): order[s:e] for s, e in itertools.pairwise(starts.tolist())
    }


def compute_available_terminals(
    customer_xy: np.ndarray,
    terminal_xy: np.ndarray,
    radius: float,
    *,
    max_block_elements: int = 4_000_000,
) -> list[np.ndarray]:
    """Per customer row: ascending terminal row positions (= ids) at distance strictly below radius."""
    customer_xy = np.asarray(customer_xy, dtype=np.float64).reshape(-1, 2)
    terminal_xy = np.asarray(terminal_xy, dtype=np.float64).reshape(-1, 2)
    empty = np.empty(0, dtype=np.int64)
    result: list[np.ndarray] = [empty] * len(customer_xy)
    if radius <= 0 or len(terminal_xy) == 0 or len(customer_xy) == 0:
        return result
    # A grid of cells slightly wider than the radius: every terminal closer than the radius lies in one of
    # the 3x3 cells around the customer's cell, so each block only compares nearby points (bounded memory).
    cell_size = float(radius) * (1.0 + 1e-9)
    terminal_cells = _group_by_cell(np.floor(terminal_xy / cell_size).astype(np.int64))
    customer_cells = _group_by_cell(np.floor(customer_xy / cell_size).astype(np.int64))
    for (cx, cy), customer_rows in customer_cells.items():
        neighbours = [
            terminal_cells[key]
            for key in ((cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1))
            if key in terminal_cells
        ]
        if not neighbours:
            continue
        candidates = np.sort(np.concatenate(neighbours)).astype(np.int64)
        cand_x = terminal_xy[candidates, 0]
        cand_y = terminal_xy[candidates, 1]
        rows_per_block = max(1, max_block_elements // len(candidates))
        for start in range(0, len(customer_rows), rows_per_block):
            rows = customer_rows[start : start + rows_per_block]
            # Same float operations as sqrt(sum(square(customer - terminal))) so boundary cases agree.
            dx = customer_xy[rows, 0][:, None] - cand_x[None, :]
            dy = customer_xy[rows, 1][:, None] - cand_y[None, :]
            within = np.sqrt(dx * dx + dy * dy) < radius
            for row, mask in zip(rows.tolist(), within, strict=True):
                result[row] = candidates[mask]
    return result


def _empty_transactions() -> Columns:
    """Transaction columns with zero rows."""
    return {
        "customer_id": np.empty(0, dtype=np.int64),
        "terminal_id": np.empty(0, dtype=np.int64),
        "tx_time_seconds": np.empty(0, dtype=np.int64),
        "tx_time_days": np.empty(0, dtype=np.int64),
        "amount": np.empty(0, dtype=np.float64),
    }


def generate_customer_transactions(
    *,
    customer_id: int,
    mean_amount: float,
    std_amount: float,
    mean_nb_tx_per_day: float,
    available_terminals: Sequence[int] | np.ndarray,
    nb_days: int,
    seed_offset: int = 0,
) -> Columns:
    """One customer's transactions in draw order: customer_id, terminal_id, tx_time_seconds/days, amount."""
    terminals = np.asarray(available_terminals, dtype=np.int64).tolist()
    if not terminals:
        # Nothing is ever emitted, and the customer's streams are private, so skipping the draws is exact.
        return _empty_transactions()
    seed = _checked_seed(int(customer_id) + seed_offset)
    np_rng = np.random.RandomState(seed)
    py_rng = random.Random(seed)
    poisson = np_rng.poisson
    normal = np_rng.normal
    uniform = np_rng.uniform
    choice = py_rng.choice
    lam = float(mean_nb_tx_per_day)
    loc = float(mean_amount)
    scale = float(std_amount)
    upper = 2.0 * loc

    times: list[int] = []
    days: list[int] = []
    amounts: list[float] = []
    chosen: list[int] = []
    add_time, add_day, add_amount, add_terminal = times.append, days.append, amounts.append, chosen.append
    for day in range(nb_days):
        day_start = day * SECONDS_PER_DAY
        for _ in range(poisson(lam)):
            time = int(normal(TX_TIME_MEAN_SECONDS, TX_TIME_STD_SECONDS))
            if 0 < time < SECONDS_PER_DAY:  # a rejected time consumes no further draw
                amount = normal(loc, scale)
                if amount < 0:
                    amount = uniform(0.0, upper)
                add_time(time + day_start)
                add_day(day)
                add_amount(amount)
                add_terminal(choice(terminals))

    n = len(times)
    return {
        "customer_id": np.full(n, int(customer_id), dtype=np.int64),
        "terminal_id": np.array(chosen, dtype=np.int64),
        "tx_time_seconds": np.array(times, dtype=np.int64),
        "tx_time_days": np.array(days, dtype=np.int64),
        # np.round (scale, rint, unscale) rather than Python's round(): it is what a NumPy pipeline applies.
        "amount": np.round(np.array(amounts, dtype=np.float64), 2),
    }


def concatenate_columns(parts: Sequence[Columns], *, empty: Columns | None = None) -> Columns:
    """Concatenate column dicts with identical keys, in the given order."""
    if not parts:
        return empty if empty is not None else {}
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def generate_transactions(
    customers: Columns,
    available_terminals: Sequence[np.ndarray],
    *,
    nb_days: int,
    seed_offset: int = 0,
) -> Columns:
    """Transactions of a batch of customer profile rows, customer by customer in row order (unsorted)."""
    parts = [
        generate_customer_transactions(
            customer_id=int(customer_id),
            mean_amount=float(mean_amount),
            std_amount=float(std_amount),
            mean_nb_tx_per_day=float(mean_nb_tx),
            available_terminals=terminals,
            nb_days=nb_days,
            seed_offset=seed_offset,
        )
        for customer_id, mean_amount, std_amount, mean_nb_tx, terminals in zip(
            customers["customer_id"].tolist(),
            customers["mean_amount"].tolist(),
            customers["std_amount"].tolist(),
            customers["mean_nb_tx_per_day"].tolist(),
            available_terminals,
            strict=True,
        )
    ]
    return concatenate_columns(parts, empty=_empty_transactions())


def order_transactions(transactions: Columns) -> Columns:
    """Rows sorted by tx_time_seconds (stable: ties keep input order) plus transaction_id = row number."""
    order = np.argsort(transactions["tx_time_seconds"], kind="stable")
    ordered = {name: values[order] for name, values in transactions.items()}
    ordered["transaction_id"] = np.arange(len(order), dtype=np.int64)
    return ordered


def _sample_positions(seed: int, population_size: int, n: int) -> np.ndarray:
    """Positions pandas ``Series.sample(n=n, random_state=seed)`` picks from a Series of that length."""
    if n > population_size:
        raise ConfigError(
            f"cannot sample {n} ids without replacement from {population_size}; "
            "the simulation needs more terminals/customers"
        )
    # pandas turns an int random_state into RandomState(seed) and calls choice(len, n, replace=False).
    rng = np.random.RandomState(_checked_seed(seed))
    return rng.choice(population_size, size=n, replace=False)


def draw_compromised_terminals(day: int, terminal_ids: np.ndarray, *, seed_offset: int = 0) -> np.ndarray:
    """The 2 terminal ids compromised on ``day`` (scenario 2), drawn over the terminal profile ids."""
    ids = np.asarray(terminal_ids)
    return ids[_sample_positions(day + seed_offset, len(ids), SCENARIO2_NB_TERMINALS)]


def draw_compromised_customers(day: int, customer_ids: np.ndarray, *, seed_offset: int = 0) -> np.ndarray:
    """The 3 customer ids compromised on ``day`` (scenario 3), drawn over the customer profile ids."""
    ids = np.asarray(customer_ids)
    return ids[_sample_positions(day + seed_offset, len(ids), SCENARIO3_NB_CUSTOMERS)]


def select_scenario3_transactions(
    day: int, transaction_ids: Sequence[int] | np.ndarray, *, seed_offset: int = 0
) -> list[int]:
    """Ids multiplied on ``day``, given the compromised cards' window transaction ids in id order."""
    population = np.asarray(transaction_ids).tolist()
    rng = random.Random(day + seed_offset)
    return rng.sample(population, k=len(population) // 3)


def apply_fraud_scenarios(
    transactions: Columns,
    *,
    terminal_ids: np.ndarray,
    customer_ids: np.ndarray,
    seed_offset: int = 0,
) -> Columns:
    """Add tx_fraud and tx_fraud_scenario and the final amount; rows must be in transaction_id order."""
    amount = transactions["amount"].astype(np.float64, copy=True)
    days = transactions["tx_time_days"]
    n = len(amount)
    tx_fraud = np.zeros(n, dtype=np.int64)
    scenario = np.zeros(n, dtype=np.int64)

    scenario1 = amount > SCENARIO1_AMOUNT_THRESHOLD
    tx_fraud[scenario1] = 1
    scenario[scenario1] = 1

    nb_scenario_days = int(days.max()) if n else 0
    terminal_order = np.argsort(transactions["terminal_id"], kind="stable")
    terminal_sorted = transactions["terminal_id"][terminal_order]
    for day in range(nb_scenario_days):
        for terminal in draw_compromised_terminals(day, terminal_ids, seed_offset=seed_offset):
            lo, hi = np.searchsorted(terminal_sorted, [terminal, terminal + 1])
            rows = terminal_order[lo:hi]
            rows = rows[(days[rows] >= day) & (days[rows] < day + SCENARIO2_WINDOW_DAYS)]
            tx_fraud[rows] = 1
            scenario[rows] = 2

    customer_order = np.argsort(transactions["customer_id"], kind="stable")
    customer_sorted = transactions["customer_id"][customer_order]
    for day in range(nb_scenario_days):
        parts = []
        for customer in draw_compromised_customers(day, customer_ids, seed_offset=seed_offset):
            lo, hi = np.searchsorted(customer_sorted, [customer, customer + 1])
            parts.append(customer_order[lo:hi])
        rows = np.sort(np.concatenate(parts))  # row number == transaction_id
        rows = rows[(days[rows] >= day) & (days[rows] < day + SCENARIO3_WINDOW_DAYS)]
        selected = np.array(select_scenario3_transactions(day, rows, seed_offset=seed_offset), dtype=np.int64)
        amount[selected] *= SCENARIO3_AMOUNT_FACTOR
        tx_fraud[selected] = 1
        scenario[selected] = 3

    result = dict(transactions)
    result["amount"] = amount
    result["tx_fraud"] = tx_fraud
    result["tx_fraud_scenario"] = scenario
    return result


def simulate_transactions(params: SimulationParams) -> Columns:
    """Whole dataset in transaction_id order: ids, tx_datetime, times, amount and fraud labels."""
    customers = generate_customer_profiles(params)
    terminals = generate_terminal_profiles(params)
    available = compute_available_terminals(
        np.column_stack((customers["x"], customers["y"])),
        np.column_stack((terminals["x"], terminals["y"])),
        params.radius,
    )
    raw = generate_transactions(customers, available, nb_days=params.nb_days, seed_offset=params.seed_offset)
    ordered = order_transactions(raw)
    labelled = apply_fraud_scenarios(
        ordered,
        terminal_ids=terminals["terminal_id"],
        customer_ids=customers["customer_id"],
        seed_offset=params.seed_offset,
    )
    labelled["tx_datetime"] = np.datetime64(params.start_date, "s") + labelled["tx_time_seconds"].astype(
        "timedelta64[s]"
    )
    logger.info(
        "simulated %d transactions (%d frauds) for %d customers, %d terminals, %d days",
        len(labelled["amount"]),
        int(labelled["tx_fraud"].sum()),
        params.n_customers,
        params.n_terminals,
        params.nb_days,
    )
    return labelled
