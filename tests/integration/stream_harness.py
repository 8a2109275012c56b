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
    from pyspark.sql import SparkSession

    from lakestream.config import LakestreamConfig


def stream_config(base: LakestreamConfig, name: str, **streaming: object) -> LakestreamConfig:
    """base with its own topics, query name, tables and registered model (tests share one broker and registry)."""
    suffix = f"{name}-{uuid.uuid4().hex[:6]}"
    topics = base.kafka.topics
    kafka = base.kafka.model_copy(
        update={
            "topics": topics.model_copy(
                update={
                    "transactions": topics.transactions.model_copy(update={"name": f"tx-{suffix}"}),
                    "fraud_labels": topics.fraud_labels.model_copy(update={"name": f"labels-{suffix}"}),
                    "fraud_alerts": topics.fraud_alerts.model_copy(update={"name": f"alerts-{suffix}"}),
                }
            )
        }
    )
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
