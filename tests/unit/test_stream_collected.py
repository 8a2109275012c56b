"""The driver writer's Arrow path equals the Spark expressions it replaces, row by row.

A micro-batch of operator rows made by hand (fraud_v2: every row and derived feature kind, each entity's window
features, nulls, a duplicate, a record that failed validation, late transactions in two Kafka partitions) goes
through both: the DataFrames of Spark's writer (combine_entities, score_transactions, rejected_rows) and
lakestream.streaming.collected. The scores, the decisions, every feature and every dead letter must be equal.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xgboost as xgb
from pyspark.sql import SparkSession

from lakestream.config.models import LakestreamConfig
from lakestream.features.spec import feature_set_path, load_feature_set
from lakestream.registry.models import LoadedModel
from lakestream.streaming.online_features import DUPLICATE, OK, REJECTED, REJECTED_ENTITY, OnlinePlan
from lakestream.streaming.pipeline import BatchWriter, ModelWatcher

T0 = 1_525_770_000  # 2018-05-08 09:00:00 UTC, a Tuesday
TIMES = ("processed_at", "dead_lettered_at")  # the commit times: each path takes its own clock


def operator_rows(plan: OnlinePlan, rng: np.random.Generator) -> list[dict]:
    """Transactions (one row per entity, each with its own features), a duplicate, a rejected record."""
    rows = []
    per_entity = {
        entity: [n for g in plan.groups if g.entity == entity for _, _, n in g.expanded()] for entity in plan.entities
    }
    for i in range(60):
        ts = T0 + int(rng.integers(-3 * 86_400, 4 * 86_400))  # weekdays and a weekend, day and night
        partition, amount = i % 2, round(float(rng.uniform(1, 200)), 2)
        for entity, entity_id in (("customer_id", 100 + i % 7), ("terminal_id", 500 + i % 11)):
            row = {
                "transaction_id": i,
                "entity": entity,
                "entity_id": entity_id,
                "status": OK,
                "ts": ts,
                "kafka_partition": partition,
                "kafka_offset": 1000 + i,
                "kafka_timestamp": (T0 + 10 * 86_400) * 1000 + i,
                "tx_amount": amount,
            }
            for name in per_entity[entity]:
                value = float(rng.integers(0, 9)) if "NB_TX" in name else float(rng.uniform(0, 150))
                if i % 13 == 0 and "AVG" in name:
                    value = 0.0  # zero denominators: the ratios' default
                if i % 17 == 0 and ("STD" in name or "AVG" in name):
                    value = None  # empty windows
                row[name] = value
            rows.append(row)
    for entity in plan.entities:  # transaction 7 arrived again: one duplicate, two operator rows
        rows.append(
            {"transaction_id": 7, "entity": entity, "entity_id": 1, "status": DUPLICATE, "ts": T0, "kafka_partition": 1}
            | {"kafka_offset": 2000, "kafka_timestamp": (T0 + 10 * 86_400) * 1000, "tx_amount": 3.0}
        )
    rows.append(
        {"entity": REJECTED_ENTITY, "entity_id": 3000, "status": REJECTED, "kafka_partition": 0, "kafka_offset": 3000}
        | {"kafka_timestamp": T0 * 1000, "topic": "fraud-labels", "raw": b"\x00{", "reason": "malformed_json"}
        | {"detail": "the value is not a JSON object"}
    )
    return rows


@pytest.mark.parametrize("late", [False, True], ids=["on-time", "with-late-events"])
def test_arrow_path_equals_the_spark_expressions(spark: SparkSession, config: LakestreamConfig, late: bool) -> None:
    from lakestream.streaming import collected as arrow

    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", "fraud_v2"))
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=3600, partition_skew_seconds=86_400)
    rng = np.random.default_rng(7)
    inputs = list(spec.model_inputs)
    booster = xgb.train(
        {"max_depth": 4, "objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(rng.normal(size=(400, len(inputs))), label=rng.integers(0, 2, 400), feature_names=inputs),
        num_boost_round=20,
    )
    model = LoadedModel(
        name="fraud",
        version="3",
        booster=booster,
        raw_bytes=bytes(booster.save_raw("ubj")),
        feature_names=tuple(inputs),
        feature_spec=spec,
        tags={},
    )
    watcher = ModelWatcher(config=config, alias="champion", refresh_seconds=1e9, model=model)
    writer = BatchWriter(config=config, spec=spec, plan=plan, models=watcher)
    writer.high_water = {0: T0 + 2 * 86_400, 1: T0 + 3 * 86_400} if late else {}
    out = spark.createDataFrame(operator_rows(plan, rng), plan.output_schema())

    _, scored, rejected = writer._frames(out, 5, model)
    schemas = writer._output_schemas(spark, model)
    rows = out.toArrow()
    transactions = arrow.combine(rows, plan, ok=OK)
    is_late = arrow.late_mask(
        transactions, writer.high_water, config.streaming.allowed_lateness_seconds, skew=plan.partition_skew_seconds
    )
    now = dt.datetime.now(dt.UTC)
    ours = arrow.scores(
        transactions.filter(~is_late),
        spec=spec,
        model=model,
        config=config,
        batch_id=5,
        schema=schemas.scores,
        processed_at=now,
    )
    from lakestream.streaming.pipeline import DUPLICATE_DETAIL, DUPLICATE_TRANSACTION, LATE_DETAIL, LATE_EVENT

    letters = arrow.dead_letters(
        rows,
        transactions.filter(is_late),
        statuses=(REJECTED, DUPLICATE),
        primary=plan.entities[0],
        query=config.streaming.query_name,
        topic=config.kafka.topics.transactions.name,
        reasons=(DUPLICATE_TRANSACTION, LATE_EVENT),
        details=(DUPLICATE_DETAIL, LATE_DETAIL),
        schema=schemas.dead_letters,
        at=now,
    )
    expected_scores, expected_letters = scored.toArrow(), rejected.toArrow()
    assert ours.schema.names == expected_scores.schema.names
    assert [f.type for f in ours.schema] == [f.type for f in expected_scores.schema]
    assert [f.type for f in letters.schema] == [f.type for f in expected_letters.schema]

    assert differences(ours, expected_scores, "transaction_id") == []
    assert differences(letters, expected_letters, "kafka_offset") == []
    assert ours.num_rows == (60 - int(is_late.sum()))
    assert int(is_late.sum()) > 0 if late else int(is_late.sum()) == 0
    assert {r["decision"] for r in ours.to_pylist()} >= {"approve"}


def differences(ours, expected, key: str) -> list[tuple]:
    """(key, column, ours, expected) of every value that differs, the commit times left out."""
    assert ours.num_rows == expected.num_rows
    ours, expected = ours.sort_by(key).to_pylist(), expected.sort_by(key).to_pylist()
    return [
        (mine[key], name, mine[name], theirs[name])
        for mine, theirs in zip(ours, expected, strict=True)
        for name in theirs
        if name not in TIMES and mine[name] != theirs[name]
    ]
