"""Logging, registering and loading fraud models: the XGBoost booster through the ``mlflow.xgboost`` flavour.

The booster flavour is the one the streaming job loads fast (a UBJSON file, no Spark, no pickles) and batch
scoring ships to executors as raw bytes. Every registered version carries tags that make it self-describing:
the feature set and version it reads, its model inputs, its training and test windows, how it was trained and
its test metrics. Aliases (``challenger``, ``champion``) point at versions; stages are not used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ConfigError, DataError
from lakestream.features.spec import FeatureSetSpec, feature_set_path, load_feature_set

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_ARTIFACT = "model"
TAG_FEATURE_SET = "lakestream.feature_set"
TAG_FEATURE_SET_VERSION = "lakestream.feature_set_version"
TAG_MODEL_INPUTS = "lakestream.model_inputs"


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version ready to score: booster, its raw bytes, inputs and feature set."""

    name: str
    version: str
    booster: xgb.Booster
    raw_bytes: bytes
    feature_names: tuple[str, ...]
    feature_spec: FeatureSetSpec
    tags: Mapping[str, str]


def log_booster(
    booster: xgb.Booster,
    *,
    input_example: pd.DataFrame,
    feature_names: Sequence[str],
) -> ModelInfo:
    """Log the booster in the active run (mlflow.xgboost flavour, UBJSON) with its signature and an input example."""
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    example = input_example[list(feature_names)].astype("float64").head(5)
    scores = np.asarray(booster.inplace_predict(example.to_numpy(dtype=np.float32), validate_features=False))
    return mlflow.xgboost.log_model(
        booster,
        name=MODEL_ARTIFACT,
        signature=infer_signature(example, scores),
        input_example=example,
        model_format="ubj",
    )


def register_challenger(
    client: MlflowClient,
    *,
    name: str,
    model_uri: str,
    run_id: str,
    tags: Mapping[str, Any],
    description: str,
) -> ModelVersion:
    """Register the logged model as a new version of `name`, tag it and point the challenger alias at it."""
    import mlflow

    version = mlflow.register_model(model_uri, name, tags={key: _tag(value) for key, value in tags.items()})
    client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    logger.info(
        "registered %s v%s from run %s; alias %s -> v%s", name, version.version, run_id, CHALLENGER, version.version
    )
    return version


def resolve_version(client: MlflowClient, name: str, reference: str) -> ModelVersion:
    """A model version from an alias (champion, challenger, ...) or a version number."""
    from mlflow.exceptions import MlflowException

    try:
        if reference.isdigit():
            return client.get_model_version(name, reference)
        return client.get_model_version_by_alias(name, reference)
    except MlflowException as exc:
        raise ConfigError(
            f"model {name!r} has no version or alias {reference!r} in the registry ({exc.error_code}); "
            "train and register a model first (jobs/train_model.py) or name an existing version"
        ) from None


def find_version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the alias (or the model) does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_model_version(client: MlflowClient, config: LakestreamConfig, version: ModelVersion) -> LoadedModel:
    """Download and load the booster of a version, and the feature set it was trained on."""
    import mlflow

    tags = dict(version.tags or {})
    if TAG_FEATURE_SET not in tags or TAG_MODEL_INPUTS not in tags:
        raise DataError(
            f"model {version.name} v{version.version} lacks the {TAG_FEATURE_SET} / {TAG_MODEL_INPUTS} tags; "
            "it was not registered by lakestream.training and cannot be scored safely"
        )
    booster = mlflow.xgboost.load_model(f"models:/{version.name}/{version.version}")
    spec = load_feature_set(feature_set_path(Path(config.home) / "conf" / "features", tags[TAG_FEATURE_SET]))
    if str(spec.version) != tags.get(TAG_FEATURE_SET_VERSION, str(spec.version)):
        raise DataError(
            f"model {version.name} v{version.version} was trained on {spec.name} version "
            f"{tags[TAG_FEATURE_SET_VERSION]} but conf/features/{spec.name}.yaml is version {spec.version}"
        )
    return LoadedModel(
        name=version.name,
        version=str(version.version),
        booster=booster,
        raw_bytes=bytes(booster.save_raw("ubj")),
        feature_names=tuple(json.loads(tags[TAG_MODEL_INPUTS])),
        feature_spec=spec,
        tags=tags,
    )


def _tag(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def describe_versions(client: MlflowClient, name: str) -> list[dict[str, str]]:
    """Every version of a registered model, newest first: aliases, feature set, windows, metrics, promotion."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(str(number), []).append(alias)
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(version.tags or {})
        rows.append(
            {
                "version": str(version.version),
                "aliases": ",".join(sorted(by_version.get(str(version.version), []))) or "-",
                "feature_set": tags.get(TAG_FEATURE_SET, "?"),
                "mode": tags.get("lakestream.mode", "?"),
                "trained": f"{tags.get('lakestream.train_start', '?')}..{tags.get('lakestream.train_end', '?')}",
                "test_ap": tags.get("lakestream.test_average_precision", "?"),
                "test_cp@100": tags.get("lakestream.test_card_precision_at_100", "?"),
                "promotion": tags.get("lakestream.promotion.outcome", "-"),
            }
        )
    return rows
