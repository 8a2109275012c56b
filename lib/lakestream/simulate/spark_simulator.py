"""Distributed transaction simulator: the NumPy core (generator.py) run by Spark tasks, then ids and frauds in Spark.

How the work is split:
- driver: customer and terminal profiles (one vectorised draw each, small) are broadcast, together with a
  task plan that cuts the customers into spatially compact blocks of ``customers_per_task``;
- executors: each task finds its customers' terminals in range and generates their transactions with
  ``generator.generate_customer_transactions`` (``mapInArrow``), emitting a per-customer sequence number;
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
    import pyarrow as pa
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
_GENERATED_COLUMNS = ("customer_id", "terminal_id", "tx_time_seconds", "tx_time_days", "tx_seq", "amount")
GENERATED_SCHEMA = (
    "customer_id long, terminal_id long, tx_time_seconds long, tx_time_days long, tx_seq long, amount double"
)
_SCENARIO3_SELECTION_SCHEMA = "scenario_day long, customer_id long, tx_seq long"

# A task's customers come from vertical stripes this many radii wide, so the terminals a task must compare
# against are those of a small rectangle, not of the whole area (it matters at 100x the default size).
_STRIPE_WIDTH_IN_RADII = 4.0
_DAYS_PER_OFFSET_PARTITION = 1 << 40


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
    tasks: Iterator[pa.RecordBatch],
    *,
    customers_bc: Broadcast[Columns],
    terminal_xy_bc: Broadcast[np.ndarray],
    plan_bc: Broadcast[np.ndarray],
    customers_per_task: int,
    radius: float,
    nb_days: int,
    seed_offset: int,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: task ids in, the generated transactions of each task's customers out."""
    import pyarrow as pa

    customers = customers_bc.value
    terminal_xy = terminal_xy_bc.value
    plan = plan_bc.value
    for batch in tasks:
        for task in batch.column("id").to_pylist():
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
                yield pa.RecordBatch.from_arrays(
                    [pa.array(columns[name]) for name in _GENERATED_COLUMNS], _GENERATED_COLUMNS
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
    return spark.range(0, n_tasks, 1, numPartitions=n_tasks).mapInArrow(generate, schema=GENERATED_SCHEMA)


def compute_day_offsets(transactions: DataFrame) -> DataFrame:
    """(tx_time_days, _offset): how many transactions happen on earlier days; one row per day."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    day_sizes = transactions.groupBy("tx_time_days").agg(F.count(F.lit(1)).alias("_day_size"))
    # One row per day, so a single window partition is fine. Its key is derived from the day (and constant
    # for any realistic number of days) because Spark folds a literal key away and then warns about it.
    single_partition = F.floor(F.col("tx_time_days") / _DAYS_PER_OFFSET_PARTITION)
    earlier_days = (
        Window.partitionBy(single_partition).orderBy("tx_time_days").rowsBetween(Window.unboundedPreceding, -1)
    )
    return day_sizes.select(
        "tx_time_days", F.coalesce(F.sum("_day_size").over(earlier_days), F.lit(0)).cast("long").alias("_offset")
    )


def assign_transaction_ids(
    transactions: DataFrame, *, tie_breakers: Sequence[str], day_offsets: DataFrame | None = None
) -> DataFrame:
    """+ transaction_id: 0-based rank in (tx_time_seconds, *tie_breakers) order; one row per transaction.

    Ranks are computed per day (tx_time_days) and shifted by the number of transactions of earlier days
    (`day_offsets`, as compute_day_offsets returns; computed from the data when not given), so no single task
    ever sorts the whole table.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    offsets = compute_day_offsets(transactions) if day_offsets is None else day_offsets
    rank_in_day = F.row_number().over(Window.partitionBy("tx_time_days").orderBy("tx_time_seconds", *tie_breakers))
    return (
        transactions.join(F.broadcast(offsets), "tx_time_days")
        .withColumn("transaction_id", (F.col("_offset") + rank_in_day - 1).cast("long"))
        .drop("_offset")
    )


def build_day_windows(
    spark: SparkSession,
    draws: dict[int, np.ndarray],
    *,
    id_column: str,
    window_days: int,
    keep_scenario_day: bool = True,
) -> DataFrame:
    """Small table (scenario_day, <id_column>, tx_time_days): every day each drawn id stays compromised.

    Without `keep_scenario_day`: the distinct (<id_column>, tx_time_days) pairs only.
    """
    import pandas as pd

    days = sorted(draws)
    scenario_day = np.repeat(np.array(days, dtype=np.int64), [len(draws[day]) for day in days])
    ids = np.concatenate([np.asarray(draws[day], dtype=np.int64) for day in days]) if days else scenario_day
    frame = pd.DataFrame(
        {
            "scenario_day": np.repeat(scenario_day, window_days),
            id_column: np.repeat(ids, window_days),
            "tx_time_days": np.repeat(scenario_day, window_days) + np.tile(np.arange(window_days), len(scenario_day)),
        }
    )
    if not keep_scenario_day:
        pairs = frame[[id_column, "tx_time_days"]].drop_duplicates(ignore_index=True)
        return spark.createDataFrame(pairs, schema=f"{id_column} long, tx_time_days long")
    return spark.createDataFrame(frame, schema=f"scenario_day long, {id_column} long, tx_time_days long")


def flag_compromised_terminals(transactions: DataFrame, *, compromised: DataFrame) -> DataFrame:
    """+ _scenario2 (bool): the terminal was compromised that day (small distinct (terminal_id, tx_time_days))."""
    from pyspark.sql import functions as F  # noqa: N812

    hits = compromised.select("terminal_id", "tx_time_days", F.lit(True).alias("_scenario2"))
    return transactions.join(F.broadcast(hits), ["terminal_id", "tx_time_days"], "left").fillna(
        False, subset=["_scenario2"]
    )


def _select_scenario3_group(key: tuple[Any, ...], candidates: pd.DataFrame, *, seed_offset: int) -> pd.DataFrame:
    """applyInPandas body: one scenario day's candidates in, the (customer_id, tx_seq) multiplied out."""
    import pandas as pd

    day = int(key[0])
    # Transaction-id order, i.e. the population order the core samples from. random.sample picks positions
    # from the population's length alone, so sampling positions selects the same rows as sampling the ids.
    ordered = candidates.sort_values(["tx_time_seconds", "customer_id", "tx_seq"], kind="stable")
    positions = generator.select_scenario3_transactions(day, np.arange(len(ordered)), seed_offset=seed_offset)
    chosen = ordered.iloc[np.asarray(positions, dtype=np.int64)]
    return pd.DataFrame(
        {
            "scenario_day": np.full(len(chosen), day, dtype=np.int64),
            "customer_id": chosen["customer_id"].to_numpy(dtype=np.int64),
            "tx_seq": chosen["tx_seq"].to_numpy(dtype=np.int64),
        }
    )


def select_scenario3_transactions(transactions: DataFrame, *, compromised: DataFrame, seed_offset: int) -> DataFrame:
    """(customer_id, tx_seq, _times_selected): how often scenario 3 picked each transaction (>= 1 rows only).

    `compromised` is the small (scenario_day, customer_id, tx_time_days) table; the candidates of one scenario
    day are a few dozen rows whatever the data size, so grouping them by day stays bounded.
    """
    from pyspark.sql import functions as F  # noqa: N812

    candidates = transactions.select("customer_id", "tx_time_days", "tx_time_seconds", "tx_seq").join(
        F.broadcast(compromised), ["customer_id", "tx_time_days"]
    )

    def select_day(key: tuple[Any, ...], day_candidates: pd.DataFrame) -> pd.DataFrame:
        return _select_scenario3_group(key, day_candidates, seed_offset=seed_offset)

    selected = (
        candidates.select("scenario_day", "tx_time_seconds", "customer_id", "tx_seq")
        .groupBy("scenario_day")
        .applyInPandas(select_day, schema=_SCENARIO3_SELECTION_SCHEMA)
    )
    return selected.groupBy("customer_id", "tx_seq").agg(F.count(F.lit(1)).alias("_times_selected"))


def label_frauds(transactions: DataFrame, *, scenario3: DataFrame) -> DataFrame:
    """Generated rows with _scenario2 -> + tx_amount (final), tx_fraud, tx_fraud_scenario; amount dropped."""
    from pyspark.sql import functions as F  # noqa: N812

    times = F.coalesce(F.col("_times_selected"), F.lit(0)).cast("int")
    # Repeated multiplication, not amount * 5**k: the core multiplies once per selection, and the two can
    # differ in the last bit.
    final_amount = F.when(times == 0, F.col("amount")).otherwise(
        F.aggregate(
            F.array_repeat(F.lit(generator.SCENARIO3_AMOUNT_FACTOR), times),
            F.col("amount"),
            lambda acc, factor: acc * factor,
        )
    )
    scenario = (
        F.when(times > 0, 3)
        .when(F.col("_scenario2"), 2)
        .when(F.col("amount") > generator.SCENARIO1_AMOUNT_THRESHOLD, 1)
        .otherwise(0)
    )
    return (
        transactions.join(F.broadcast(scenario3), ["customer_id", "tx_seq"], "left")
        .withColumns(
            {
                "tx_amount": final_amount,
                "tx_fraud": (scenario > 0).cast("int"),
                "tx_fraud_scenario": scenario.cast("int"),
            }
        )
        .drop("amount", "_scenario2", "_times_selected")
    )


def simulate_transactions_spark(
    spark: SparkSession, params: SimulationParams, *, customers_per_task: int = 250
) -> DataFrame:
    """The labelled dataset (TRANSACTION_COLUMNS, one row per transaction), persisted MEMORY_AND_DISK.

    Three jobs: generate (cached; per-day counts collected, one row per day), scenario 3's selection (small),
    then label, number and cache the result. Call `.unpersist()` on the result when done with it.
    """
    import pandas as pd
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    # Read by the day counts, scenario 3's candidates and the labelling: generated once, cached.
    raw = generate_raw_transactions(spark, params, customers_per_task=customers_per_task)
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    day_sizes = dict(raw.groupBy("tx_time_days").count().collect())  # at most nb_days rows
    last_day = max(day_sizes, default=None)
    nb_scenario_days = int(last_day) if last_day is not None else 0
    logger.info("generated transactions up to day %s; drawing %d scenario days", last_day, nb_scenario_days)
    days = np.array(sorted(day_sizes), dtype=np.int64)
    sizes = np.array([day_sizes[day] for day in days.tolist()], dtype=np.int64)
    offsets = spark.createDataFrame(
        pd.DataFrame({"tx_time_days": days, "_offset": np.cumsum(sizes) - sizes}), "tx_time_days long, _offset long"
    )

    terminal_ids = np.arange(params.n_terminals, dtype=np.int64)
    customer_ids = np.arange(params.n_customers, dtype=np.int64)
    seed_offset = params.seed_offset
    # Loops over days, not customers: a few draws per day, each over the id columns.
    compromised_terminals = build_day_windows(
        spark,
        {
            day: generator.draw_compromised_terminals(day, terminal_ids, seed_offset=seed_offset)
            for day in range(nb_scenario_days)
        },
        id_column="terminal_id",
        window_days=generator.SCENARIO2_WINDOW_DAYS,
        keep_scenario_day=False,
    )
    compromised_customers = build_day_windows(
        spark,
        {
            day: generator.draw_compromised_customers(day, customer_ids, seed_offset=seed_offset)
            for day in range(nb_scenario_days)
        },
        id_column="customer_id",
        window_days=generator.SCENARIO3_WINDOW_DAYS,
    )
    scenario3 = select_scenario3_transactions(raw, compromised=compromised_customers, seed_offset=seed_offset)
    scenario3 = spark.createDataFrame(scenario3.toPandas(), scenario3.schema)  # a few rows per scenario day

    start = datetime.combine(datetime.fromisoformat(params.start_date).date(), time(), tzinfo=UTC)
    labelled = (
        flag_compromised_terminals(raw, compromised=compromised_terminals)
        .transform(lambda frame: label_frauds(frame, scenario3=scenario3))
        .transform(
            lambda frame: assign_transaction_ids(frame, tie_breakers=("customer_id", "tx_seq"), day_offsets=offsets)
        )
        .withColumn("tx_datetime", F.timestamp_seconds(F.lit(int(start.timestamp())) + F.col("tx_time_seconds")))
        .select(*TRANSACTION_COLUMNS)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    count = labelled.count()
    raw.unpersist()
    logger.info("simulated %d transactions for %d customers over %d days", count, params.n_customers, params.nb_days)
    return labelled


def summarize_transactions(transactions: DataFrame) -> dict[str, Any]:
    """Counts for logs and checks: transactions, frauds, per-scenario counts, first and last tx_datetime."""
    from pyspark.sql import functions as F  # noqa: N812

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
