"""Helpers of the streaming tests: an isolated stream configuration (own topics, tables, model) on a lake."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from mlflow import MlflowClient

from lakestream.registry.models import CHAMPION
from lakestream.training.splits import build_time_split
from lakestream.training.trainer import TrainingRequest, train_model

if TYPE_CHECKING:
    from conftest import TrainingLake
    from pyspark.sql import SparkSession

    from lakestream.config import LakestreamConfig


def stream_config(base: LakestreamConfig, name: str, **streaming: object) -> LakestreamConfig:
    """base with its own topics, query name, tables and registered model (tests share one broker and registry)."""
    suffix = f"{name}-{uuid.uuid4().hex[:6]}"
    kafka = base.kafka.model_copy(update={"topics": base.kafka.topics.with_suffix(suffix)})
    settings = {
        "query_name": f"score_{name}",
        "scores_table": f"stream_scores_{name}",
        "metrics_table": f"stream_metrics_{name}",
        "dead_letter_table": f"stream_dead_letter_{name}",
        **streaming,
    }
    return base.model_copy(
        update={
            "kafka": kafka,
            "streaming": base.streaming.model_copy(update=settings),
            "mlflow": base.mlflow.model_copy(update={"registered_model": f"it-stream-{name}"}),
        }
    )


def train_champion(spark: SparkSession, config: LakestreamConfig, *, seed: int = 0) -> str:
    """Train a small single-node fraud_v1 model and make it the champion; returns its version."""
    split = build_time_split(train_start=dt.date(2018, 5, 1))
    request = TrainingRequest(feature_set="fraud_v1", mode="single_node", split=split)
    if seed:
        config = config.model_copy(
            update={
                "training": config.training.model_copy(
                    update={
                        "xgboost": config.training.xgboost.model_copy(
                            update={"num_boost_round": config.training.xgboost.num_boost_round + seed}
                        )
                    }
                )
            }
        )
    result = train_model(spark, config, request)
    MlflowClient().set_registered_model_alias(config.mlflow.registered_model, CHAMPION, result.registered_version)
    return str(result.registered_version)


def child_environment(training_lake: TrainingLake, config: LakestreamConfig) -> dict[str, str]:
    """Environment of a stream process (or CLI) that sees this lake, these topics, this model and query."""
    topics = config.kafka.topics
    streaming = config.streaming
    return training_lake.environ(
        **{
            "kafka.bootstrap_servers": config.kafka.bootstrap_servers,
            "kafka.topics.transactions.name": topics.transactions.name,
            "kafka.topics.fraud_labels.name": topics.fraud_labels.name,
            "kafka.topics.fraud_alerts.name": topics.fraud_alerts.name,
            "mlflow.registered_model": config.mlflow.registered_model,
            "streaming.query_name": streaming.query_name,
            "streaming.scores_table": streaming.scores_table,
            "streaming.metrics_table": streaming.metrics_table,
            "streaming.dead_letter_table": streaming.dead_letter_table,
            "streaming.max_offsets_per_trigger": streaming.max_offsets_per_trigger,
        }
    )
