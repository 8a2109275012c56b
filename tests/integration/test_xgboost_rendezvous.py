"""xgboost.spark's barrier syncs served by the driver's rendezvous, in a real barrier stage of Spark tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pyspark.sql import SparkSession

from lakestream.training.rendezvous import PROPERTY, driver_rendezvous


def run_barrier_stage(spark: SparkSession) -> dict[int, tuple]:
    """Two tasks (the second late) sync once by barrier and twice by allGather; their records by partition."""

    def _syncing_task(rows: Iterator[int]) -> Iterator[tuple]:
        from pyspark import BarrierTaskContext

        import lakestream.training.rendezvous  # noqa: F401  # what xgboost.spark's workers get from the callback

        context = BarrierTaskContext.get()
        partition = context.partitionId()
        if partition == 1:
            time.sleep(0.5)
        arrived = time.time()
        context.barrier()
        left = time.time()
        first = context.allGather(f"from {partition}")
        second = context.allGather(str(partition * 10))
        yield partition, arrived, left, first, second, context.getLocalProperty(PROPERTY) is not None

    rdd = spark.sparkContext.parallelize(range(2), 2).barrier().mapPartitions(_syncing_task)
    return {row[0]: row for row in rdd.collect()}


def test_barrier_and_all_gather_meet_at_the_driver(spark: SparkSession) -> None:
    with driver_rendezvous(spark) as server:
        rows = run_barrier_stage(spark)
    assert server.syncs_served == 3
    assert all(row[5] for row in rows.values()), "the tasks carry the rendezvous address"
    assert min(row[2] for row in rows.values()) >= max(row[1] for row in rows.values()), "the barrier waited"
    for row in rows.values():
        assert row[3] == ["from 0", "from 1"]
        assert row[4] == ["0", "10"]
    assert spark.sparkContext.getLocalProperty(PROPERTY) is None, "the property ends with the block"


def test_without_the_rendezvous_the_same_stage_uses_sparks_barriers(spark: SparkSession) -> None:
    rows = run_barrier_stage(spark)
    assert not any(row[5] for row in rows.values())
    assert min(row[2] for row in rows.values()) >= max(row[1] for row in rows.values())
    for row in rows.values():
        assert row[3] == ["from 0", "from 1"]
