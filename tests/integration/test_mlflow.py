"""MLflow on the SQLite store: log a run, register a model, set and resolve an alias, load it back."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from lakestream.config import LakestreamConfig
from lakestream.registry.tracking import configure_mlflow


@pytest.fixture
def tracking(config: LakestreamConfig) -> LakestreamConfig:
    configure_mlflow(config, experiment="it-mlflow")
    return config


def test_log_register_alias_and_load(tracking: LakestreamConfig) -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = LogisticRegression().fit(x, y)
    with mlflow.start_run(run_name="it-register") as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("train_accuracy", float(model.score(x, y)))
        info = mlflow.sklearn.log_model(model, name="model", input_example=x[:2], registered_model_name="it-model")
    client = MlflowClient()
    version = info.registered_model_version
    client.set_registered_model_alias("it-model", "champion", version)

    resolved = client.get_model_version_by_alias("it-model", "champion")
    assert str(resolved.version) == str(version)
    assert resolved.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.metrics["train_accuracy"] == 1.0

    loaded = mlflow.pyfunc.load_model("models:/it-model@champion")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert tracking.tracking_uri.startswith("sqlite:///")
    assert tracking.mlflow_db_path.exists()
