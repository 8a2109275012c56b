"""Distributed transaction simulator: the NumPy core (generator.py) run by Spark tasks, then ids and frauds in Spark.

How the work is split:
- driver: customer and terminal profiles (one vectorised draw each, small) are broadcast, together with a
  task plan that cuts the customers into spatially compact blocks of ``customers_per_task``;
- executors: each task finds its customers' terminals in range and generates their transactions with
  ``generator.generate_customer_transactions`` (``mapInPandas``), emitting a per-customer sequence number;
- Spark: the global event-time order and TRANSACTION_ID, TX_DATETIME and the three fraud scenarios. The
  scenario draws (2 terminals and 3 customers per day) are made on the driver with the core's functions and
  joined as small broadcast tables; scenario 3's random selection runs per day in a grouped pandas UDF.

The result equals ``generator.simulate_transactions`` row for row (ties in time are ordered by customer id,
then generation order within the customer, exactly as the core's stable sort does).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

import numpy as np

from lakestream.config.models import SimulationConfig
from lakestream.errors import ConfigError
from lakestream.simulate import generator
from lakestream.simulate.generator import Columns, SimulationParams

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

TRANSACTION_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_time_seconds",
    "tx_time_days",
    "tx_fraud",
    "tx_fraud_scenario",
)

# What one generation task emits; tx_seq is the generation order within the customer (the tie-break).
GENERATED_SCHEMA = (
    "customer_id long, terminal_id long, tx_time_seconds long, tx_time_days long, tx_seq long, amount double"
)
_SCENARIO3_SELECTION_SCHEMA = "scenario_day long, transaction_id long"

# A task's customers come from vertical stripes this many radii wide, so the terminals a task must compare
# against are those of a small rectangle, not of the whole area (it matters at 100x the default size).
_STRIPE_WIDTH_IN_RADII = 4.0


def build_simulation_params(simulation: SimulationConfig) -> SimulationParams:
    """The NumPy core's parameters from the `simulation:` configuration section."""
    return SimulationParams(
        n_customers=simulation.n_customers,
        n_terminals=simulation.n_terminals,
        nb_days=simulation.nb_days,
        start_date=simulation.start_date.isoformat(),
        radius=simulation.radius,
        seed_offset=simulation.seed_offset,
    )


def plan_customer_tasks(customers: Columns, *, radius: float) -> np.ndarray:
    """Customer row positions in task order: stripes of x, then y, so consecutive customers are neighbours."""
    width = _STRIPE_WIDTH_IN_RADII * radius if radius > 0 else math.inf
    stripe = np.floor(customers["x"] / width)
    return np.lexsort((customers["customer_id"], customers["y"], stripe))


def _generate_task_transactions(
    tasks: Iterator[pd.DataFrame],
    *,
    customers_bc: Broadcast[Columns],
    terminal_xy_bc: Broadcast[np.ndarray],
    plan_bc: Broadcast[np.ndarray],
    customers_per_task: int,
    radius: float,
    nb_days: int,
    seed_offset: int,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: task ids in, the generated transactions of each task's customers out."""
    import pandas as pd  # noqa: PLC0415 - executor-side import

    customers = customers_bc.value
    terminal_xy = terminal_xy_bc.value
    plan = plan_bc.value
    for batch in tasks:
        for task in batch["id"].tolist():
            rows = plan[task * customers_per_task : (task + 1) * customers_per_task]
            if len(rows) == 0:
                continue
            xy = np.column_stack((customers["x"][rows], customers["y"][rows]))
            # Terminals outside the block's bounding box grown by the radius cannot be in range of any of
            # its customers; the distances of the others are computed exactly as on the whole set.
            low, high = xy.min(axis=0) - radius, xy.max(axis=0) + radius
            inside = np.flatnonzero(
                (terminal_xy[:, 0] >= low[0])
                & (terminal_xy[:, 0] <= high[0])
                & (terminal_xy[:, 1] >= low[1])
                & (terminal_xy[:, 1] <= high[1])
            )
            available = generator.compute_available_terminals(xy, terminal_xy[inside], radius)
            parts = []
            for position, row in enumerate(rows.tolist()):
                generated = generator.generate_customer_transactions(
                    customer_id=int(customers["customer_id"][row]),
                    mean_amount=float(customers["mean_amount"][row]),
                    std_amount=float(customers["std_amount"][row]),
                    mean_nb_tx_per_day=float(customers["mean_nb_tx_per_day"][row]),
                    available_terminals=inside[available[position]],
                    nb_days=nb_days,
                    seed_offset=seed_offset,
                )
                generated["tx_seq"] = np.arange(len(generated["amount"]), dtype=np.int64)
                parts.append(generated)
            columns = generator.concatenate_columns(parts)
            if len(columns["amount"]):
                yield pd.DataFrame(
                    {
                        name: columns[name]
                        for name in ("customer_id", "terminal_id", "tx_time_seconds", "tx_time_days", "tx_seq", "amount")
                    }
                )


def generate_raw_transactions(spark: SparkSession, params: SimulationParams, *, customers_per_task: int) -> DataFrame:
    """Unordered transactions (customer_id, terminal_id, tx_time_seconds, tx_time_days, tx_seq, amount).

    One Spark task per block of `customers_per_task` customers; the profiles are broadcast, never collected.
    """
    if customers_per_task < 1:
        raise ConfigError(f"customers_per_task must be >= 1, got {customers_per_task}")
    customers = generator.generate_customer_profiles(params)
    terminals = generator.generate_terminal_profiles(params)
    plan = plan_customer_tasks(customers, radius=params.radius)
    n_tasks = max(1, math.ceil(params.n_customers / customers_per_task))
    context = spark.sparkContext
    generate = functools.partial(
        _generate_task_transactions,
        customers_bc=context.broadcast(customers),
        terminal_xy_bc=context.broadcast(np.column_stack((terminals["x"], terminals["y"]))),
        plan_bc=context.broadcast(plan),
        customers_per_task=customers_per_task,
        radius=params.radius,
        nb_days=params.nb_days,
        seed_offset=params.seed_offset,
    )
    logger.info("generating %d customers in %d tasks of up to %d", params.n_customers, n_tasks, customers_per_task)
    return spark.range(0, n_tasks, 1, numPartitions=n_tasks).mapInPandas(generate, schema=GENERATED_SCHEMA)


def assign_transaction_ids(transactions: DataFrame, *, tie_breakers: Sequence[str]) -> DataFrame:
    """+ transaction_id: 0-based rank in (tx_time_seconds, *tie_breakers) order; one row per transaction.

    Ranks are computed per day (tx_time_days) and shifted by the number of transactions of earlier days, so
    no single task ever sorts the whole table.
    """
    from pyspark.sql import Window  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415, N812

    day_sizes = transactions.groupBy("tx_time_days").agg(F.count(F.lit(1)).alias("_day_size"))
    earlier_days = Window.orderBy("tx_time_days").rowsBetween(Window.unboundedPreceding, -1)
    offsets = day_sizes.select("tx_time_days", F.coalesce(F.sum("_day_size").over(earlier_days), F.lit(0)).alias("_offset"))
    rank_in_day = F.row_number().over(Window.partitionBy("tx_time_days").orderBy("tx_time_seconds", *tie_breakers))
    return (
        transactions.join(F.broadcast(offsets), "tx_time_days")
        .withColumn("transaction_id", (F.col("_offset") + rank_in_day - 1).cast("long"))
        .drop("_offset")
    )


def build_day_windows(spark: SparkSession, draws: dict[int, np.ndarray], *, id_column: str, window_days: int) -> DataFrame:
    """Small table (scenario_day, <id_column>, tx_time_days): every day each drawn id stays compromised."""
    import pandas as pd  # noqa: PLC0415

    days = np.array(sorted(draws), dtype=np.int64)
    ids_per_day = len(draws[int(days[0])]) if len(days) else 0
    ids = np.concatenate([np.asarray(draws[int(day)], dtype=np.int64) for day in days]) if len(days) else []
    scenario_day = np.repeat(days, ids_per_day)
    frame = pd.DataFrame(
        {
            "scenario_day": np.repeat(scenario_day, window_days),
            id_column: np.repeat(np.asarray(ids, dtype=np.int64), window_days),
            "tx_time_days": np.repeat(scenario_day, window_days) + np.tile(np.arange(window_days), len(scenario_day)),
        }
    )
    return spark.createDataFrame(frame, schema=f"scenario_day long, {id_column} long, tx_time_days long")


def flag_compromised_terminals(transactions: DataFrame, *, compromised: DataFrame) -> DataFrame:
    """+ _scenario2 (bool): the terminal was compromised on that day (small (terminal_id, tx_time_days) table)."""
    from pyspark.sql import functions as F  # noqa: PLC0415, N812

    hits = compromised.select("terminal_id", "tx_time_days").distinct().withColumn("_scenario2", F.lit(True))
    return transactions.join(F.broadcast(hits), ["terminal_id", "tx_time_days"], "left").fillna(
        False, subset=["_scenario2"]
    )


def _select_scenario3_group(key: tuple[Any, ...], candidates: pd.DataFrame, *, seed_offset: int) -> pd.DataFrame:
    """applyInPandas body: one scenario day's candidate ids in, the ids whose amount is multiplied out."""
    import pandas as pd  # noqa: PLC0415

    day = int(key[0])
    ids = np.sort(candidates["transaction_id"].to_numpy(dtype=np.int64))  # the core samples in id order
    selected = generator.select_scenario3_transactions(day, ids, seed_offset=seed_offset)
    return pd.DataFrame(
        {"scenario_day": np.full(len(selected), day, dtype=np.int64), "transaction_id": np.array(selected, dtype=np.int64)}
    )


def select_scenario3_transactions(transactions: DataFrame, *, compromised: DataFrame, seed_offset: int) -> DataFrame:
    """(transaction_id, _times_selected): how often each transaction was picked by scenario 3 (>= 1 rows only).

    `compromised` is the small (scenario_day, customer_id, tx_time_days) table; the candidates of one scenario
    day are a few dozen rows whatever the data size, so grouping them by day stays bounded.
    """
    from pyspark.sql import functions as F  # noqa: PLC0415, N812

    candidates = transactions.select("customer_id", "tx_time_days", "transaction_id").join(
        F.broadcast(compromised), ["customer_id", "tx_time_days"]
    )

    def select_day(key: tuple[Any, ...], day_candidates: pd.DataFrame) -> pd.DataFrame:
        return _select_scenario3_group(key, day_candidates, seed_offset=seed_offset)

    selected = (
        candidates.select("scenario_day", "transaction_id")
        .groupBy("scenario_day")
        .applyInPandas(select_day, schema=_SCENARIO3_SELECTION_SCHEMA)
    )
    return selected.groupBy("transaction_id").agg(F.count(F.lit(1)).alias("_times_selected"))


def label_frauds(transactions: DataFrame, *, scenario3: DataFrame, start_epoch_seconds: int) -> DataFrame:
    """Flagged ordered transactions -> the TRANSACTION_COLUMNS table (final amount, tx_fraud, scenario)."""
    from pyspark.sql import functions as F  # noqa: PLC0415, N812

    times = F.coalesce(F.col("_times_selected"), F.lit(0)).cast("int")
    # Repeated multiplication, not amount * 5**k: the core multiplies once per selection, and the two can
    # differ in the last bit.
    final_amount = F.aggregate(
        F.array_repeat(F.lit(generator.SCENARIO3_AMOUNT_FACTOR), times), F.col("amount"), lambda acc, factor: acc * factor
    )
    scenario = (
        F.when(times > 0, 3)
        .when(F.col("_scenario2"), 2)
        .when(F.col("amount") > generator.SCENARIO1_AMOUNT_THRESHOLD, 1)
        .otherwise(0)
    )
    return (
        transactions.join(F.broadcast(scenario3), "transaction_id", "left")
        .select(
            "transaction_id",
            F.timestamp_seconds(F.lit(start_epoch_seconds) + F.col("tx_time_seconds")).alias("tx_datetime"),
            "customer_id",
            "terminal_id",
            final_amount.alias("tx_amount"),
            "tx_time_seconds",
            "tx_time_days",
            (scenario > 0).cast("int").alias("tx_fraud"),
            scenario.cast("int").alias("tx_fraud_scenario"),
        )
    )


def simulate_transactions_spark(
    spark: SparkSession, params: SimulationParams, *, customers_per_task: int = 250
) -> DataFrame:
    """The labelled dataset (TRANSACTION_COLUMNS, one row per transaction), persisted MEMORY_AND_DISK.

    Runs two small actions (per-day counts, then materialising the result); call `.unpersist()` on the
    returned DataFrame when done with it.
    """
    from pyspark import StorageLevel  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415, N812

    raw = generate_raw_transactions(spark, params, customers_per_task=customers_per_task).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    last_day = raw.agg(F.max("tx_time_days")).first()[0]
    nb_scenario_days = int(last_day) if last_day is not None else 0
    logger.info("generated transactions up to day %s; drawing %d scenario days", last_day, nb_scenario_days)

    terminal_ids = np.arange(params.n_terminals, dtype=np.int64)
    customer_ids = np.arange(params.n_customers, dtype=np.int64)
    offset = params.seed_offset
    # Loops over days, not customers: a few draws per day, each over the id columns.
    terminal_draws = {
        day: generator.draw_compromised_terminals(day, terminal_ids, seed_offset=offset) for day in range(nb_scenario_days)
    }
    customer_draws = {
        day: generator.draw_compromised_customers(day, customer_ids, seed_offset=offset) for day in range(nb_scenario_days)
    }

    ordered = assign_transaction_ids(raw, tie_breakers=("customer_id", "tx_seq"))
    if nb_scenario_days:
        compromised_terminals = build_day_windows(
            spark, terminal_draws, id_column="terminal_id", window_days=generator.SCENARIO2_WINDOW_DAYS
        )
        compromised_customers = build_day_windows(
            spark, customer_draws, id_column="customer_id", window_days=generator.SCENARIO3_WINDOW_DAYS
        )
        flagged = flag_compromised_terminals(ordered, compromised=compromised_terminals)
        scenario3 = select_scenario3_transactions(ordered, compromised=compromised_customers, seed_offset=offset)
    else:
        flagged = ordered.withColumn("_scenario2", F.lit(False))
        scenario3 = spark.createDataFrame([], "transaction_id long, _times_selected long")

    start = datetime.combine(datetime.fromisoformat(params.start_date).date(), time(), tzinfo=UTC)
    labelled = label_frauds(flagged, scenario3=scenario3, start_epoch_seconds=int(start.timestamp())).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    count = labelled.count()
    raw.unpersist()
    logger.info("simulated %d transactions for %d customers over %d days", count, params.n_customers, params.nb_days)
    return labelled


def summarize_transactions(transactions: DataFrame) -> dict[str, Any]:
    """Counts for logs and checks: transactions, frauds, per-scenario counts, first and last tx_datetime."""
    from pyspark.sql import functions as F  # noqa: PLC0415, N812

    rows = (
        transactions.groupBy("tx_fraud_scenario")
        .agg(F.count(F.lit(1)).alias("n"), F.min("tx_datetime").alias("first"), F.max("tx_datetime").alias("last"))
        .collect()
    )
    scenarios = {int(row["tx_fraud_scenario"]): int(row["n"]) for row in rows}
    return {
        "transactions": sum(scenarios.values()),
        "frauds": sum(n for scenario, n in scenarios.items() if scenario > 0),
        "scenarios": dict(sorted((k, v) for k, v in scenarios.items() if k > 0)),
        "first_tx_datetime": str(min((row["first"] for row in rows), default=None)),
        "last_tx_datetime": str(max((row["last"] for row in rows), default=None)),
    }
