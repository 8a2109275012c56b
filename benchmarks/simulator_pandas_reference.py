"""Single-process pandas implementation of the transaction simulator: the speed baseline.

Written the way a pandas user would write the algorithm of fraud-protocol.md section 1 (profile
DataFrames, one DataFrame per customer, concat, sort, scenario loops with ``Series.sample``), using the
legacy global ``np.random`` and ``random`` state. It deliberately shares no code with
``lakestream.simulate.generator``, so the two implementations check each other.

Usage: ``python benchmarks/simulator_pandas_reference.py [--n-customers N ...]``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = [
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
]


def make_customer_profiles(n_customers: int, *, random_state: int = 0) -> pd.DataFrame:
    """Customer profile table: CUSTOMER_ID, x/y location, amount mean/std and mean daily transactions."""
    np.random.seed(random_state)
    rows = []
    for customer_id in range(n_customers):
        x_customer = np.random.uniform(0, 100)
        y_customer = np.random.uniform(0, 100)
        mean_amount = np.random.uniform(5, 100)
        std_amount = mean_amount / 2
        mean_nb_tx_per_day = np.random.uniform(0, 4)
        rows.append([customer_id, x_customer, y_customer, mean_amount, std_amount, mean_nb_tx_per_day])
    return pd.DataFrame(
        rows,
        columns=[
            "CUSTOMER_ID",
            "x_customer_id",
            "y_customer_id",
            "mean_amount",
            "std_amount",
            "mean_nb_tx_per_day",
        ],
    )


def make_terminal_profiles(n_terminals: int, *, random_state: int = 1) -> pd.DataFrame:
    """Terminal profile table: TERMINAL_ID and x/y location."""
    np.random.seed(random_state)
    rows = []
    for terminal_id in range(n_terminals):
        x_terminal = np.random.uniform(0, 100)
        y_terminal = np.random.uniform(0, 100)
        rows.append([terminal_id, x_terminal, y_terminal])
    return pd.DataFrame(rows, columns=["TERMINAL_ID", "x_terminal_id", "y_terminal_id"])


def find_terminals_in_radius(customer: pd.Series, terminal_locations: np.ndarray, radius: float) -> list[int]:
    """Terminal ids (ascending) strictly closer than ``radius`` to one customer profile row."""
    customer_location = customer[["x_customer_id", "y_customer_id"]].to_numpy(dtype=float)
    distances = np.sqrt(np.sum(np.square(customer_location - terminal_locations), axis=1))
    return list(np.where(distances < radius)[0])


def make_customer_transactions(customer: pd.Series, nb_days: int) -> pd.DataFrame:
    """All transactions of one customer profile row, in generation order."""
    customer_id = int(customer["CUSTOMER_ID"])
    random.seed(customer_id)
    np.random.seed(customer_id)
    rows = []
    for day in range(nb_days):
        nb_tx = np.random.poisson(customer["mean_nb_tx_per_day"])
        for _ in range(nb_tx):
            time_tx = int(np.random.normal(86400 / 2, 20000))
            if 0 < time_tx < 86400:
                amount = np.random.normal(customer["mean_amount"], customer["std_amount"])
                if amount < 0:
                    amount = np.random.uniform(0, customer["mean_amount"] * 2)
                amount = np.round(amount, decimals=2)
                if len(customer["available_terminals"]) > 0:
                    terminal_id = random.choice(customer["available_terminals"])
                    rows.append([time_tx + day * 86400, day, customer_id, terminal_id, amount])
    return pd.DataFrame(rows, columns=["TX_TIME_SECONDS", "TX_TIME_DAYS", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"])


def add_frauds(
    transactions: pd.DataFrame, customer_profiles: pd.DataFrame, terminal_profiles: pd.DataFrame
) -> pd.DataFrame:
    """Label frauds with scenarios 1 (big amounts), 2 (compromised terminals) and 3 (compromised cards)."""
    transactions["TX_FRAUD"] = 0
    transactions["TX_FRAUD_SCENARIO"] = 0

    transactions.loc[transactions.TX_AMOUNT > 220, ["TX_FRAUD", "TX_FRAUD_SCENARIO"]] = [1, 1]
    logger.info("scenario 1 frauds: %d", transactions.TX_FRAUD.sum())

    nb_days = int(transactions.TX_TIME_DAYS.max()) if len(transactions) else 0
    for day in range(nb_days):
        compromised_terminals = terminal_profiles.TERMINAL_ID.sample(n=2, random_state=day).values
        hit = (
            transactions.TERMINAL_ID.isin(compromised_terminals)
            & (transactions["TX_TIME_DAYS"] >= day)
            & (transactions["TX_TIME_DAYS"] < day + 28)
        )
        transactions.loc[hit, ["TX_FRAUD", "TX_FRAUD_SCENARIO"]] = [1, 2]
    logger.info("frauds after scenario 2: %d", transactions.TX_FRAUD.sum())

    for day in range(nb_days):
        compromised_customers = customer_profiles.CUSTOMER_ID.sample(n=3, random_state=day).values
        window = transactions[
            (transactions["TX_TIME_DAYS"] >= day)
            & (transactions["TX_TIME_DAYS"] < day + 14)
            & transactions.CUSTOMER_ID.isin(compromised_customers)
        ]
        candidate_ids = list(window.TRANSACTION_ID)
        random.seed(day)
        chosen = random.sample(candidate_ids, k=int(len(candidate_ids) / 3))
        transactions.loc[chosen, "TX_AMOUNT"] = transactions.loc[chosen, "TX_AMOUNT"] * 5
        transactions.loc[chosen, ["TX_FRAUD", "TX_FRAUD_SCENARIO"]] = [1, 3]
    logger.info("frauds after scenario 3: %d", transactions.TX_FRAUD.sum())
    return transactions


def generate_dataset_pandas(
    n_customers: int = 5000,
    n_terminals: int = 10000,
    nb_days: int = 183,
    start_date: str = "2018-04-01",
    radius: float = 5.0,
) -> pd.DataFrame:
    """Labelled transaction table (OUTPUT_COLUMNS), one row per transaction, in TRANSACTION_ID order."""
    customer_profiles = make_customer_profiles(n_customers)
    terminal_profiles = make_terminal_profiles(n_terminals)
    terminal_locations = terminal_profiles[["x_terminal_id", "y_terminal_id"]].to_numpy(dtype=float)
    customer_profiles["available_terminals"] = customer_profiles.apply(
        find_terminals_in_radius, axis=1, terminal_locations=terminal_locations, radius=radius
    )

    per_customer = [make_customer_transactions(customer, nb_days) for _, customer in customer_profiles.iterrows()]
    # Customers without any terminal in range yield empty frames; leave them out so dtypes stay numeric.
    non_empty = [frame for frame in per_customer if len(frame)] or per_customer[:1]
    transactions = pd.concat(non_empty, ignore_index=True)
    transactions = transactions.astype(
        {
            "TX_TIME_SECONDS": "int64",
            "TX_TIME_DAYS": "int64",
            "CUSTOMER_ID": "int64",
            "TERMINAL_ID": "int64",
            "TX_AMOUNT": "float64",
        }
    )
    transactions["TX_DATETIME"] = pd.to_datetime(start_date) + pd.to_timedelta(transactions.TX_TIME_SECONDS, unit="s")
    # Stable sort: same-second transactions keep the customer-by-customer generation order.
    transactions = transactions.sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)
    transactions["TRANSACTION_ID"] = transactions.index

    transactions = add_frauds(transactions, customer_profiles, terminal_profiles)
    return transactions[OUTPUT_COLUMNS]


def main(argv: Sequence[str] | None = None) -> int:
    """Time one run of the pandas reference simulator and log the dataset summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-customers", type=int, default=5000)
    parser.add_argument("--n-terminals", type=int, default=10000)
    parser.add_argument("--nb-days", type=int, default=183)
    parser.add_argument("--start-date", default="2018-04-01")
    parser.add_argument("--radius", type=float, default=5.0)
    parser.add_argument("--output", help="optional parquet path for the result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    dataset = generate_dataset_pandas(
        n_customers=args.n_customers,
        n_terminals=args.n_terminals,
        nb_days=args.nb_days,
        start_date=args.start_date,
        radius=args.radius,
    )
    elapsed = time.perf_counter() - started
    logger.info(
        "pandas reference: %d transactions, %d frauds, scenarios %s, %s .. %s in %.1f s",
        len(dataset),
        dataset.TX_FRAUD.sum(),
        dataset.TX_FRAUD_SCENARIO.value_counts().sort_index().to_dict(),
        dataset.TX_DATETIME.min(),
        dataset.TX_DATETIME.max(),
        elapsed,
    )
    if args.output:
        dataset.to_parquet(args.output, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
