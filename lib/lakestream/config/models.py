"""Typed configuration models: frozen, strict about unknown keys, paths resolved against the project home."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class StrictModel(BaseModel):
    """Base of every config section: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PathsConfig(StrictModel):
    """Where state lives; relative paths are resolved against the project home when loaded.

    Only ``state_dir`` is required: the lake, checkpoints and reports default to folders under it, so
    moving one key moves every table, checkpoint and report (the tests rely on that).
    """

    state_dir: Path = Path("var")
    lake_root: Path
    checkpoint_root: Path
    reports_dir: Path
    landing_root: Path  # where the "payment gateway" drops files: <landing_root>/<kind>/date=YYYY-MM-DD/

    @model_validator(mode="before")
    @classmethod
    def _default_under_state_dir(cls, data: Any) -> Any:
        if isinstance(data, dict):
            state = Path(data.get("state_dir") or "var")
            data = {
                "lake_root": state / "lake",
                "checkpoint_root": state / "checkpoints",
                "reports_dir": state / "reports",
                "landing_root": state / "landing",
                **{key: value for key, value in data.items() if value is not None},
            }
        return data


class SparkConfig(StrictModel):
    """How every SparkSession and spark-submit is built."""

    master: str = "local[2]"
    app_name_prefix: str = "lakestream"
    deploy_mode: Literal["client", "cluster"] = "client"
    jars_dir: Path = Path(".jars/spark")
    driver_memory: str = "4g"
    executor_memory: str = "2g"
    shuffle_partitions: int = Field(default=8, ge=1)
    ui_enabled: bool = False
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # Extra spark.* settings, passed through untouched (e.g. spark.executor.cores on a cluster).
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("conf")
    @classmethod
    def _keys_are_spark_settings(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key in value if not key.startswith("spark.")]
        if bad:
            raise ValueError(f"spark.conf keys must start with 'spark.', got {bad}")
        return value


class TopicConfig(StrictModel):
    """One Kafka topic the project owns; created from configuration by `lakestream kafka topics`."""

    name: str
    partitions: int = Field(default=2, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)


class TopicsConfig(StrictModel):
    """The topics of the fraud use case."""

    transactions: TopicConfig = TopicConfig(name="transactions", partitions=2)
    fraud_labels: TopicConfig = TopicConfig(name="fraud-labels", partitions=1)
    fraud_alerts: TopicConfig = TopicConfig(name="fraud-alerts", partitions=1)

    def all(self) -> list[TopicConfig]:
        """Every configured topic, in declaration order."""
        return [self.transactions, self.fraud_labels, self.fraud_alerts]


class KafkaSecurityConfig(StrictModel):
    """Client security settings for a secured cluster; secrets come from the environment via ${VAR}."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSecurityConfig:
        if self.protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(
                f"protocol {self.protocol} needs sasl_mechanism, sasl_username and sasl_password "
                "(set the password through an environment variable, e.g. ${KAFKA_PASSWORD})"
            )
        return self


class BrokerConfig(StrictModel):
    """The project's own single-node KRaft broker (`lakestream kafka start`)."""

    managed: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    data_dir: Path | None = None  # default: <state_dir>/kafka
    jars_dir: Path = Path(".jars/kafka")
    heap: str = "512m"
    start_timeout_s: float = Field(default=90.0, gt=0)

    @model_validator(mode="after")
    def _ports_differ(self) -> BrokerConfig:
        if self.port == self.controller_port:
            raise ValueError(f"broker port and controller_port must differ, both are {self.port}")
        return self


class KafkaConfig(StrictModel):
    """Where Kafka is and which topics the project uses."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: TopicsConfig = TopicsConfig()
    security: KafkaSecurityConfig = KafkaSecurityConfig()
    broker: BrokerConfig = BrokerConfig()
    max_offsets_per_trigger: int = Field(default=50_000, ge=1)

    def client_options(self) -> dict[str, str]:
        """Kafka client settings (librdkafka/Java names) derived from the security section."""
        options = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security.protocol}
        sec = self.security
        if sec.sasl_mechanism and sec.sasl_username and sec.sasl_password:
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if sec.sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            options["sasl.mechanism"] = sec.sasl_mechanism
            options["sasl.jaas.config"] = (
                f'{module} required username="{sec.sasl_username}" password="{sec.sasl_password.get_secret_value()}";'
            )
        if sec.ssl_cafile is not None:
            options["ssl.truststore.type"] = "PEM"
            options["ssl.truststore.location"] = str(sec.ssl_cafile)
        return options


class MlflowServerConfig(StrictModel):
    """The optional local `mlflow server` for the UI."""

    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)


class MlflowConfig(StrictModel):
    """Tracking store and model registry; SQLite under the state folder unless a URI is given."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    artifact_root: Path | None = None  # default: <state_dir>/mlflow/artifacts
    experiment: str = "lakestream"
    registered_model: str = "fraud-detector"
    server: MlflowServerConfig = MlflowServerConfig()


class SimulationConfig(StrictModel):
    """Defaults of the transaction simulator; the defaults reproduce the book's dataset."""

    n_customers: int = Field(default=5000, ge=1)
    n_terminals: int = Field(default=10000, ge=1)
    nb_days: int = Field(default=183, ge=1)
    start_date: date = date(2018, 4, 1)
    radius: float = Field(default=5.0, gt=0)
    seed_offset: int = Field(default=0, ge=0)
    label_delay_days: int = Field(default=7, ge=0)
    customers_per_task: int = Field(default=250, ge=1)


class LakestreamConfig(StrictModel):
    """The whole, resolved configuration of one environment."""

    env: str = "local"
    home: Path
    paths: PathsConfig = Field(default_factory=lambda: PathsConfig.model_validate({}))
    spark: SparkConfig = SparkConfig()
    kafka: KafkaConfig = KafkaConfig()
    mlflow: MlflowConfig = MlflowConfig()
    simulation: SimulationConfig = SimulationConfig()

    @property
    def kafka_data_dir(self) -> Path:
        """Where the managed broker keeps its logs and metadata."""
        return self.kafka.broker.data_dir or self.paths.state_dir / "kafka"

    @property
    def mlflow_artifact_root(self) -> Path:
        """Where MLflow stores run artifacts and model files by default."""
        return self.mlflow.artifact_root or self.paths.state_dir / "mlflow" / "artifacts"

    @property
    def mlflow_db_path(self) -> Path:
        """The SQLite file behind the default tracking store."""
        return self.paths.state_dir / "mlflow" / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force (configured, or the local SQLite store)."""
        return self.mlflow.tracking_uri or f"sqlite:///{self.mlflow_db_path}"

    @property
    def registry_uri(self) -> str:
        """The MLflow registry URI in force (defaults to the tracking URI)."""
        return self.mlflow.registry_uri or self.tracking_uri

    def table_path(self, database: str, table: str) -> Path:
        """Location of a Delta table: <lake_root>/<database>/<table>."""
        return self.paths.lake_root / database / table

    def checkpoint_path(self, query: str) -> Path:
        """Checkpoint folder of one streaming query."""
        return self.paths.checkpoint_root / query
