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
    # Local masters: Hadoop's local file system with permissions set through java.nio instead of one `chmod`
    # child process per file and folder (no native Hadoop library here); built by `make setup` with javac.
    nio_local_fs: bool = True
    local_fs_jar: Path = Path(".jars/localfs/lakestream-localfs.jar")
    driver_memory: str = "4g"
    executor_memory: str = "2g"
    shuffle_partitions: int = Field(default=8, ge=1)
    ui_enabled: bool = False
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # Extra JVM options of the driver and executors, after the ones Lakestream sets (spark.JVM_OPTIONS).
    java_options: str = ""
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

    def with_suffix(self, suffix: str) -> TopicsConfig:
        """The same topics renamed `<name>-<suffix>`: an isolated set on a shared broker (tests, benchmarks)."""
        return self.model_copy(
            update={
                field: topic.model_copy(update={"name": f"{topic.name}-{suffix}"})
                for field, topic in (
                    ("transactions", self.transactions),
                    ("fraud_labels", self.fraud_labels),
                    ("fraud_alerts", self.fraud_alerts),
                )
            }
        )


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
    """The project's own KRaft broker(s) (`lakestream kafka start`): one combined broker + controller node, plus
    one broker-only node per `extra_ports` entry (a local multi-broker cluster; list every port in
    kafka.bootstrap_servers)."""

    managed: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    extra_ports: list[int] = Field(default_factory=list)  # broker-only nodes 2, 3, ... on these ports
    data_dir: Path | None = None  # default: <state_dir>/kafka
    jars_dir: Path = Path(".jars/kafka")
    heap: str = "512m"
    start_timeout_s: float = Field(default=90.0, gt=0)

    @model_validator(mode="after")
    def _ports_differ(self) -> BrokerConfig:
        ports = [self.port, self.controller_port, *self.extra_ports]
        if len(set(ports)) != len(ports):
            raise ValueError(f"broker ports must all differ: port, controller_port and extra_ports are {ports}")
        return self

    @property
    def nodes(self) -> int:
        """How many broker nodes run (1 + the extra ones)."""
        return 1 + len(self.extra_ports)


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


class IdRangeConfig(StrictModel):
    """Inclusive bounds of a known id (None = unbounded on that side)."""

    min: int | None = 0
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> IdRangeConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"id range min {self.min} is above max {self.max}")
        return self


class TransactionRulesConfig(StrictModel):
    """Data-quality rules of landed transaction events (fields of io.schemas.transaction_event_schema)."""

    required_fields: tuple[str, ...] = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")
    max_amount: float = Field(default=10_000.0, gt=0)  # valid amounts: 0 < tx_amount <= max_amount
    transaction_id: IdRangeConfig = IdRangeConfig()
    customer_id: IdRangeConfig = IdRangeConfig(max=9_999_999)
    terminal_id: IdRangeConfig = IdRangeConfig(max=9_999_999)


class FraudLabelRulesConfig(StrictModel):
    """Data-quality rules of landed fraud-label events (fields of io.schemas.fraud_label_event_schema)."""

    required_fields: tuple[str, ...] = (
        "transaction_id",
        "tx_datetime",
        "reported_at",
        "tx_fraud",
        "tx_fraud_scenario",
    )
    fraud_scenarios: tuple[int, ...] = (0, 1, 2, 3, 4)


class QualityConfig(StrictModel):
    """Bronze ingestion of landed files and the silver data-quality rules (see lakestream.quality)."""

    max_files_per_trigger: int = Field(default=1000, ge=1)  # bronze: landed files per micro-batch
    allowed_lateness_days: int = Field(default=3, ge=0)  # silver day D reads landing days D-1 .. D+this
    future_tolerance_minutes: int = Field(default=60, ge=0, le=24 * 60)  # event time after its landing day
    min_event_date: date = date(2000, 1, 1)
    max_event_date: date = date(2099, 12, 31)
    unknown_fields: Literal["drop", "quarantine"] = "drop"
    transactions: TransactionRulesConfig = TransactionRulesConfig()
    fraud_labels: FraudLabelRulesConfig = FraudLabelRulesConfig()

    @model_validator(mode="after")
    def _dates_ordered(self) -> QualityConfig:
        if self.min_event_date >= self.max_event_date:
            raise ValueError(
                f"min_event_date {self.min_event_date} must be before max_event_date {self.max_event_date}"
            )
        return self


class SearchDimension(StrictModel):
    """One hyperparameter of the tuning search space (Optuna suggest_* semantics)."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[float | int | str, ...] = ()

    @model_validator(mode="after")
    def _bounds_or_choices(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search dimension needs choices: [...]")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} search dimension needs low <= high, got low={self.low} high={self.high}")
        return self


class SplitConfig(StrictModel):
    """The time split of fraud-protocol.md section 3: train window, label-delay gap, test window (days)."""

    train_start: date = date(2018, 7, 25)
    train_days: int = Field(default=7, ge=1)
    delay_days: int = Field(default=7, ge=0)
    test_days: int = Field(default=7, ge=1)


class PrequentialConfig(StrictModel):
    """Prequential folds (book chapter 5): fold k shifts the split back by k * step_days."""

    n_folds: int = Field(default=4, ge=1)
    step_days: int = Field(default=7, ge=1)
    # Latest train start of the validation / test folds; None = derived from the split as the book does
    # (validation: train_start - delay - test_days; test: train_start + (n_folds - 1) * step_days).
    validation_train_start: date | None = None
    test_train_start: date | None = None


class ImbalanceConfig(StrictModel):
    """How the ~0.8 % fraud rate is handled: nothing, XGBoost's scale_pos_weight, or a per-row weight column."""

    strategy: Literal["none", "scale_pos_weight", "sample_weight"] = "none"
    # "auto" = negatives / positives of the training set, "sqrt" = its square root, or a number.
    pos_weight: Literal["auto", "sqrt"] | float = "auto"


class XgboostConfig(StrictModel):
    """Booster parameters and rounds shared by the distributed and the single-node trainers."""

    params: dict[str, float | int | str] = Field(default_factory=lambda: {"objective": "binary:logistic"})
    num_boost_round: int = Field(default=100, ge=1)
    early_stopping_rounds: int | None = Field(default=None, ge=1)
    validation_days: int = Field(default=1, ge=1)  # last days of the train window held out for early stopping
    num_workers: int = Field(default=2, ge=1)  # xgboost.spark workers (one Spark task each)
    # Who serves xgboost.spark's three barrier syncs: a rendezvous on the driver, or Spark's BarrierTaskContext
    # (which polls once a second: about 1 s per sync). See lakestream.training.rendezvous.
    barrier_rendezvous: Literal["driver", "spark"] = "driver"
    nthread: int = Field(default=2, ge=1)  # single-node threads: the cores the driver really has
    # hist fits on features rounded down to at most max_bin quantile edges of the training rows, so the cut points
    # do not depend on the order of the rows or the number of workers: single-node and xgboost.spark fits of the
    # same rows give the same trees (without row or column subsampling). See lakestream.training.cuts.
    exact_cuts: bool = True


class TuningConfig(StrictModel):
    """Optuna search over the prequential validation folds; trials run as parallel Spark tasks."""

    n_trials: int = Field(default=40, ge=1)
    parallelism: int = Field(default=0, ge=0)  # trials per batch; 0 = the session's default parallelism
    seed: int = 42
    metric: Literal["average_precision", "card_precision"] = "average_precision"
    search_space: dict[str, SearchDimension] = Field(default_factory=dict)


class EvaluationConfig(StrictModel):
    """Metrics of fraud-protocol.md section 3 (the alert threshold is scoring.review_threshold)."""

    top_k: int = Field(default=100, ge=1)
    calibration_bins: int = Field(default=10, ge=2)
    max_collected_rows: int = Field(default=2_000_000, ge=1000)  # above: all frauds + a weighted genuine sample


class PromotionConfig(StrictModel):
    """The gate a challenger passes to become champion (same, most recent evaluation window)."""

    ap_margin: float = 0.0  # challenger AP must be >= champion AP + margin
    card_precision_margin: float = 0.0  # same for CP@k
    auc_tolerance: float = Field(default=0.01, ge=0)  # AUC may not drop more than this
    min_auc: float = Field(default=0.6, ge=0, le=1)  # floor for any champion (also the first one)
    min_alert_rate: float = Field(default=0.0, ge=0, le=1)  # share of transactions at or above the alert threshold
    max_alert_rate: float = Field(default=0.05, ge=0, le=1)
    eval_days: int = Field(default=7, ge=1)


class ScoringConfig(StrictModel):
    """Batch scoring into gold.scores: decision thresholds on the fraud probability."""

    review_threshold: float = Field(default=0.3, gt=0, lt=1)
    block_threshold: float = Field(default=0.8, gt=0, le=1)
    table: str = "scores"

    @model_validator(mode="after")
    def _ordered(self) -> ScoringConfig:
        if self.review_threshold > self.block_threshold:
            raise ValueError(
                f"review_threshold {self.review_threshold} is above block_threshold {self.block_threshold}"
            )
        return self


class FeatureStoreConfig(StrictModel):
    """The gold feature tables (lakestream.features.store, jobs/build_features.py)."""

    # a build of at most this many days into an existing table is collected to the driver and committed with
    # deltalake (no Delta snapshot, write stage or JVM commit: ~1 s of a daily build); 0 = always Spark's writer.
    # The daily DAG rebuilds quality.allowed_lateness_days + 1 days (4 by default).
    driver_write_max_days: int = Field(default=4, ge=0)


class TrainingConfig(StrictModel):
    """Model training, tuning, evaluation, promotion and batch scoring (see lakestream.training)."""

    feature_set: str = "fraud_v1"
    mode: Literal["spark", "single_node", "single_node_exact"] = "spark"
    split: SplitConfig = SplitConfig()
    prequential: PrequentialConfig = PrequentialConfig()
    imbalance: ImbalanceConfig = ImbalanceConfig()
    xgboost: XgboostConfig = XgboostConfig()
    tuning: TuningConfig = TuningConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    promotion: PromotionConfig = PromotionConfig()
    scoring: ScoringConfig = ScoringConfig()


class StreamingConfig(StrictModel):
    """The real-time scoring stream (lakestream.streaming): Kafka -> online features -> champion -> Delta, Kafka."""

    query_name: str = "score_transactions"  # checkpoint folder and Delta txnAppId prefix
    feature_set: str | None = None  # default: the champion's feature set (training.feature_set if none yet)
    model_alias: str = "champion"
    model_refresh_seconds: float = Field(default=30.0, gt=0)  # how often the alias is checked for a new version
    trigger_interval: str = "0 seconds"  # micro-batch trigger; "0 seconds" = as fast as possible
    max_offsets_per_trigger: int | None = None  # default: kafka.max_offsets_per_trigger
    starting_offsets: Literal["earliest", "latest"] = "earliest"  # only for a new checkpoint
    allowed_lateness_seconds: int = Field(default=3600, ge=0)  # older than (max event time - this) is late
    # how far a Kafka partition may lag the newest scored event of any partition: events older than that minus the
    # allowed lateness are late too, so state compaction may drop entities gone quiet for longer (bounded state)
    max_partition_skew_seconds: int = Field(default=86_400, ge=0)
    max_message_bytes: int = Field(default=65_536, gt=0)  # larger Kafka values are dead-lettered as oversized
    shuffle_partitions: int = Field(default=2, ge=1)  # partitions of the state store and of each batch
    # state keys per entity (ids hash into them); a checkpoint keeps the count it was made with (a setting that
    # differs is refused), see pipeline.checkpoint_state_buckets
    state_buckets: int = Field(default=8, ge=1)
    # decoded online state a Python worker keeps between micro-batches (StateCache), per worker, and leaves in shared
    # memory for the machine's other workers (SharedCopies, /dev/shm); 0: read it all back from the state store
    # every batch
    state_cache_mb: int = Field(default=512, ge=0)
    scores_table: str = "stream_scores"  # gold.<name>
    metrics_table: str = "stream_metrics"  # gold.<name>
    dead_letter_table: str = "stream_dead_letter"  # quarantine.<name>
    # who commits a micro-batch's scores and dead letters: the driver (collected as Arrow, committed with the
    # deltalake package: no Spark job or JVM commit, ~1 s less per batch here) or Spark's Delta writer (batches too
    # big to collect; both write the same txn action, so a table may switch)
    output_writer: Literal["driver", "spark"] = "driver"
    stop_poll_seconds: float = Field(default=2.0, gt=0)  # how often the driver checks for a stop request


class ClusterConfig(StrictModel):
    """The local Spark standalone cluster of `lakestream cluster start` (master and workers on loopback)."""

    host: str = "127.0.0.1"
    port: int = Field(default=7077, ge=1, le=65535)
    webui_port: int = Field(default=8090, ge=1, le=65535)  # 8080 is Airflow's
    workers: int = Field(default=2, ge=1)
    worker_cores: int = Field(default=1, ge=1)
    worker_memory: str = "3g"  # holds one executor of spark.executor_memory
    worker_webui_port: int = Field(default=0, ge=0, le=65535)  # worker i: this + i - 1; 0 = any free port


MonitoringFamily = Literal["feature_drift", "prediction_drift", "data_quality", "performance", "stream_health"]


class MonitoringRule(StrictModel):
    """One alerting rule over the monitoring metrics: a threshold, a minimum sample and consecutive breaches.

    A metric row breaches when its value (or, with ``relative_to_reference``, its value minus the row's
    reference, e.g. the model's own test AP) is above ``above`` or below ``below``; rows with fewer than
    ``min_samples`` samples are not judged. An alert is raised when the last ``consecutive`` windows of a
    series (rule, dimension, model version) all breach.
    """

    family: MonitoringFamily
    metric: str
    granularity: Literal["hour", "day"] = "day"
    above: float | None = None
    below: float | None = None
    relative_to_reference: bool = False
    dimensions: list[str] | None = None  # only these dimensions (feature names, reasons); None = every one
    # never these: e.g. calendar flags, whose share in one day or hour is set by the clock, not by drift
    exclude_dimensions: list[str] = Field(default_factory=list)
    min_samples: int = Field(default=0, ge=0)
    consecutive: int = Field(default=1, ge=1)
    retrain: bool = False  # an alert of this rule asks for a retraining
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _one_threshold(self) -> MonitoringRule:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"rule on {self.family}.{self.metric} needs exactly one of 'above' or 'below'")
        return self


class RetrainingConfig(StrictModel):
    """What monitoring does when a retraining rule fires (the closed loop)."""

    # auto: train, gate and promote with no human step; manual: train and register a challenger, an operator
    # approves the promotion; off: alerts only.
    mode: Literal["auto", "manual", "off"] = "auto"
    # A drift-triggered retraining waits until its train window holds this many days since the drift began
    # (their labels arrive after the label delay); before that a new model could not have learnt anything new.
    min_drift_days_in_training: int = Field(default=3, ge=1)
    cooldown_days: int = Field(default=7, ge=0)  # at most one request per this many event-time days
    max_model_staleness_days: int | None = Field(default=None, ge=1)  # also retrain when the champion is older


class DashboardConfig(StrictModel):
    """The monitoring dashboard (lakestream dashboard start)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    refresh_seconds: int = Field(default=5, ge=1)
    alert_feed_rows: int = Field(default=20, ge=1)


class MonitoringConfig(StrictModel):
    """Drift, data quality, label-delayed performance, rules and the retraining they trigger (lakestream.monitoring)."""

    source: Literal["stream", "batch"] = "stream"  # served scores: gold.stream_scores, or gold.scores + features
    granularities: list[Literal["hour", "day"]] = Field(default_factory=lambda: ["hour", "day"])
    bins: int = Field(default=10, ge=2, le=100)  # fixed bins from the training distribution (deciles)
    psi_epsilon: float = Field(default=1e-4, gt=0, lt=0.01)  # floor of a bin share in PSI / JS
    card_precision_k: int | None = Field(default=None, ge=1)  # default: training.evaluation.top_k
    # performance leaves out a card on days after its fraud was reported, for frauds reported within this memory
    compromised_card_memory_days: int = Field(default=21, ge=0)
    database: str = "monitoring"
    metrics_table: str = "metrics"
    alerts_table: str = "alerts"
    decisions_table: str = "retraining"
    experiment: str = "lakestream-monitoring"
    max_stream_silence_minutes: int = Field(default=30, ge=1)
    rules: dict[str, MonitoringRule] = Field(default_factory=dict)
    retraining: RetrainingConfig = RetrainingConfig()
    dashboard: DashboardConfig = DashboardConfig()


class LakestreamConfig(StrictModel):
    """The whole, resolved configuration of one environment."""

    env: str = "local"
    home: Path
    paths: PathsConfig = Field(default_factory=lambda: PathsConfig.model_validate({}))
    spark: SparkConfig = SparkConfig()
    kafka: KafkaConfig = KafkaConfig()
    mlflow: MlflowConfig = MlflowConfig()
    simulation: SimulationConfig = SimulationConfig()
    quality: QualityConfig = QualityConfig()
    feature_store: FeatureStoreConfig = FeatureStoreConfig()
    training: TrainingConfig = TrainingConfig()
    streaming: StreamingConfig = StreamingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    cluster: ClusterConfig = ClusterConfig()

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
