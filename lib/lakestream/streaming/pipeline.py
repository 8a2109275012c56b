"""The scoring stream: Kafka -> validation -> online features -> champion model -> Delta (+ alerts to Kafka).

One query reads both topics and parses each record once. Valid transactions and chargebacks go through one
stateful operator (online_features), keyed by (entity, bucket of entity ids); records that fail validation
(unparseable, oversized, rule violations) pass through it unchanged, with their raw bytes and reason. Each
micro-batch is then written by ``BatchWriter``: features joined per transaction, scored with the current model,
appended to gold.stream_scores with Delta's idempotent-write options (txnAppId = query name, txnVersion = batch
id), so a batch re-run after a crash writes nothing twice; rejected records, duplicates and late events go to
quarantine.stream_dead_letter (idempotent the same way), alerts to Kafka, one metrics row to gold.stream_metrics.

Alerts are at-least-once: a batch re-run after a crash between the alert write and the batch commit sends its
alerts again; the Kafka key is the transaction id, so a consumer de-duplicates on it. The driver writer sends a
batch's alerts before it commits the batch's scores and waits for their acknowledgements after the commit: an alert
can reach the topic a few tens of milliseconds before its scores row is in the table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F  # noqa: N812

from lakestream.errors import ConfigError, DataError
from lakestream.features.batch import add_derived_features, add_row_features
from lakestream.io.delta import OnceAppender, is_delta_table, read_delta
from lakestream.io.kafka import spark_kafka_options
from lakestream.io.schemas import TIMESTAMP_FORMAT, fraud_label_event_schema, transaction_event_schema
from lakestream.quality import rules
from lakestream.streaming.online_features import (
    CACHE_MAX_BYTES,
    DUPLICATE,
    LABEL,
    OK,
    PASS_THROUGH_COLUMNS,
    PASS_THROUGH_DDL,
    REJECTED,
    REJECTED_ENTITY,
    TX,
    OnlineFeatureProcessor,
    OnlinePlan,
    SharedCopies,
    copies_scope,
)
from lakestream.streaming.replay import transaction_fields

if TYPE_CHECKING:
    import pyarrow as pa
    from kafka import KafkaProducer
    from pyspark.sql import Column, DataFrame, GroupedData, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.types import StructType

    from lakestream.config.models import LakestreamConfig, StreamingConfig
    from lakestream.features.spec import FeatureSetSpec
    from lakestream.registry.models import LoadedModel
    from lakestream.streaming.collected import OutputSchemas

logger = logging.getLogger(__name__)

OVERSIZED_MESSAGE = "oversized_message"
LATE_EVENT = "late_event"
DUPLICATE_TRANSACTION = rules.DUPLICATE_TRANSACTION_ID
DUPLICATE_DETAIL = "transaction id already scored"
LATE_DETAIL = (
    "event time older than its partition's newest scored event minus the allowed lateness (or than the newest of"
    " any partition minus the lateness and streaming.max_partition_skew_seconds)"
)
BOOTSTRAP_FOLDER = "bootstrap"  # under the query's checkpoint: the warm-start rows until the first commit


def stream_label_event_schema() -> StructType:
    """A chargeback on the labels topic: the batch label message plus the terminal of the transaction.

    The stream routes a chargeback to its terminal's state, so the message must name the terminal (card
    networks' chargeback records carry the merchant terminal); the landed files do not need it.
    """
    from pyspark.sql.types import LongType, StructField, StructType

    return StructType([*fraud_label_event_schema().fields, StructField("terminal_id", LongType())])


# --- tables -----------------------------------------------------------------------------------------------


def scores_path(config: LakestreamConfig) -> Path:
    """gold.<streaming.scores_table>."""
    return config.table_path("gold", config.streaming.scores_table)


def metrics_path(config: LakestreamConfig) -> Path:
    """gold.<streaming.metrics_table>."""
    return config.table_path("gold", config.streaming.metrics_table)


def dead_letter_path(config: LakestreamConfig) -> Path:
    """quarantine.<streaming.dead_letter_table>."""
    return config.table_path("quarantine", config.streaming.dead_letter_table)


# --- source and validation -------------------------------------------------------------------------------


def kafka_source(spark: SparkSession, config: LakestreamConfig) -> DataFrame:
    """The transactions topic (rate-limited) and the fraud-labels topic (never limited), as one stream.

    Chargebacks are few and a transaction's terminal risk needs every chargeback reported before it, so the
    labels source reads all that is available at each trigger while transactions advance by the rate limit.
    """
    topics = config.kafka.topics
    limit = config.streaming.max_offsets_per_trigger or config.kafka.max_offsets_per_trigger

    def source(topic: str, *, limited: bool) -> DataFrame:
        reader = (
            spark.readStream.format("kafka")
            .options(**spark_kafka_options(config.kafka))
            .option("subscribe", topic)
            .option("startingOffsets", config.streaming.starting_offsets)
            .option("failOnDataLoss", "false")
        )
        if limited and limit:
            reader = reader.option("maxOffsetsPerTrigger", str(limit))
        return reader.load()

    return source(topics.transactions.name, limited=True).unionByName(source(topics.fraud_labels.name, limited=False))


def validate(raw: DataFrame, config: LakestreamConfig) -> DataFrame:
    """Kafka rows -> typed fields of both message kinds + `kind` and `reason`/`detail` (null when valid)."""
    topics = config.kafka.topics
    tx_schema, label_schema = transaction_event_schema(), stream_label_event_schema()
    value = F.col("raw").cast("string")
    as_map = F.from_json(value, "map<string,string>")
    is_tx = F.col("topic") == F.lit(topics.transactions.name)
    frame = raw.select(
        F.col("topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("value").alias("raw"),
        F.when(is_tx, F.lit(TX)).otherwise(F.lit(LABEL)).alias("kind"),
    )
    # parsed once per record (without the barrier, every check would re-parse the JSON: 45 from_json per record)
    frame = _computed_once(
        frame,
        _raw=as_map,
        _tx=F.when(is_tx, F.from_json(value, tx_schema)),  # each value parsed as its own kind only
        _label=F.when(~is_tx, F.from_json(value, label_schema)),
    )
    fields: dict[str, Column] = {}
    for name in dict.fromkeys([f.name for f in tx_schema.fields] + [f.name for f in label_schema.fields]):
        typed = F.when(is_tx, F.col(f"_tx.{name}")) if name in tx_schema.fieldNames() else F.lit(None)
        if name in label_schema.fieldNames():
            typed = F.when(is_tx, typed).otherwise(F.col(f"_label.{name}"))
        if name in {"tx_datetime", "reported_at"}:
            typed = F.try_to_timestamp(typed, F.lit(TIMESTAMP_FORMAT))
        fields[name] = typed
    frame = frame.withColumns(fields)
    checks = _checks(config, is_tx, tx_schema, label_schema)
    # the conditions are evaluated once: the index of the first failing check names the reason and the detail
    failed = F.coalesce(*[F.when(condition, F.lit(i)) for i, (_, condition, _) in enumerate(checks)])
    frame = _computed_once(frame, _failed=failed)
    reason = F.coalesce(*[F.when(F.col("_failed") == i, F.lit(code)) for i, (code, _, _) in enumerate(checks)])
    detail = F.coalesce(*[F.when(F.col("_failed") == i, text) for i, (_, _, text) in enumerate(checks)])
    return frame.withColumn("reason", reason).withColumn("detail", detail).drop("_tx", "_label", "_failed")


def _computed_once(frame: DataFrame, **columns: Column) -> DataFrame:
    """frame + columns evaluated once per row.

    inline() of a one-element array is a Generate, which the optimizer neither inlines through nor pushes filters
    below when they read its output. Plain aliases get inlined into every expression that reads them (collapsed
    projections, filters pushed down), so an expensive column would be re-evaluated once per reader.
    """
    return frame.select("*", F.inline(F.array(F.struct(*[c.alias(name) for name, c in columns.items()]))))


def _checks(
    config: LakestreamConfig, is_tx: Column, tx_schema: StructType, label_schema: StructType
) -> list[tuple[str, Column, Column]]:
    """(reason, failing condition, detail) in priority order; the first failing check names the reason."""
    quality, limit = config.quality, config.streaming.max_message_bytes
    raw_field = F.col("_raw")
    checks: list[tuple[str, Column, Column]] = [
        (
            OVERSIZED_MESSAGE,
            F.length("raw") > limit,
            F.concat(F.lit("value of "), F.length("raw"), F.lit(f" bytes > {limit}")),
        ),
        (rules.MALFORMED_JSON, raw_field.isNull(), F.lit("the value is not a JSON object")),
    ]
    required_tx = quality.transactions.required_fields
    required_label = (*quality.fraud_labels.required_fields, "terminal_id")
    for kind_is_tx, required, schema in ((True, required_tx, tx_schema), (False, required_label, label_schema)):
        kind = is_tx if kind_is_tx else ~is_tx
        for name in required:
            checks.append(
                (
                    rules.MISSING_REQUIRED_FIELD,
                    kind & raw_field[name].isNull(),
                    F.lit(f"required field {name} is missing or null"),
                )
            )
        for struct_field in schema.fields:
            name = struct_field.name
            bad = kind & raw_field[name].isNotNull() & F.col(name).isNull()
            code = rules.INVALID_TIMESTAMP if name in {"tx_datetime", "reported_at"} else rules.WRONG_TYPE
            checks.append((code, bad, F.concat(F.lit(f"{name} '"), raw_field[name], F.lit("' cannot be read"))))
    tx_rules = quality.transactions
    for name, bounds, code in (
        ("transaction_id", tx_rules.transaction_id, rules.TRANSACTION_ID_OUT_OF_RANGE),
        ("customer_id", tx_rules.customer_id, rules.CUSTOMER_ID_OUT_OF_RANGE),
        ("terminal_id", tx_rules.terminal_id, rules.TERMINAL_ID_OUT_OF_RANGE),
    ):
        outside = F.lit(False)
        if bounds.min is not None:
            outside = outside | (F.col(name) < bounds.min)
        if bounds.max is not None:
            outside = outside | (F.col(name) > bounds.max)
        checks.append((code, outside, F.concat(F.lit(f"{name} "), F.col(name).cast("string"), F.lit(" out of range"))))
    amount = F.col("tx_amount")
    checks += [
        (
            rules.AMOUNT_OUT_OF_RANGE,
            is_tx & (F.isnan(amount) | (amount <= 0) | (amount > tx_rules.max_amount)),
            F.concat(F.lit("tx_amount "), amount.cast("string"), F.lit(f" not in (0, {tx_rules.max_amount}]")),
        ),
        (
            rules.TIMESTAMP_OUT_OF_BOUNDS,
            F.to_date("tx_datetime").between(F.lit(quality.min_event_date), F.lit(quality.max_event_date))
            == F.lit(False),
            F.concat(F.lit("tx_datetime "), F.col("tx_datetime").cast("string"), F.lit(" outside the sane range")),
        ),
        (
            rules.INVALID_FRAUD_FLAG,
            ~is_tx & ~F.col("tx_fraud").isin(0, 1),
            F.concat(F.lit("tx_fraud "), F.col("tx_fraud").cast("string"), F.lit(" is not 0 or 1")),
        ),
        (
            rules.REPORTED_BEFORE_TRANSACTION,
            ~is_tx & (F.col("reported_at") < F.col("tx_datetime")),
            F.lit("reported_at is before tx_datetime"),
        ),
    ]
    return [(code, F.coalesce(condition, F.lit(False)), detail) for code, condition, detail in checks]


def dead_letter_rows(frame: DataFrame, *, query: str) -> DataFrame:
    """Rows with a reason -> the dead-letter table's columns."""
    return frame.select(
        "topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "raw",
        "reason",
        "detail",
        F.col("transaction_id").cast("long").alias("transaction_id"),
        F.col("tx_datetime").alias("event_time"),  # when it could be read: monitoring places the record in time
        F.lit(query).alias("query"),
        F.current_timestamp().alias("dead_lettered_at"),
    )


def operator_input(events: DataFrame, plan: OnlinePlan, spec: FeatureSetSpec) -> DataFrame:
    """Events -> one row per (transaction, entity), per (chargeback, label entity) and per rejected record.

    One scan of the source: each event becomes an array of its entity rows (null where its kind does not go to
    an entity), exploded. A union of one select per entity would read and parse the Kafka batch once per entity.
    A record with a `reason` (failed validation) becomes one row of REJECTED_ENTITY keyed by its Kafka offset,
    carrying its topic, raw bytes, reason and detail; events without those columns are all valid.
    """
    pass_through = {name: F.lit(None).cast(kind) for name, kind in _pass_through_types().items()}
    events = events.withColumns({k: v for k, v in pass_through.items() if k not in events.columns})
    ts = F.unix_seconds(F.col("tx_datetime"))
    delay = plan.label_delay_seconds
    known = ((F.col("tx_fraud") == 1) & (F.unix_seconds(F.col("reported_at")) <= ts + F.lit(delay))).cast("int")
    valid = F.col("reason").isNull()
    is_tx = F.col("kind") == TX
    rows = add_row_features(events, spec)

    def entry(entity: str, *, kind: str) -> Column:
        values = (
            [F.col(c).cast("double").alias(c) for c in plan.value_columns]
            if kind == TX
            else [F.lit(None).cast("double").alias(c) for c in plan.value_columns]
        )
        fields = F.struct(
            F.lit(entity).alias("entity"),
            F.col(entity).cast("long").alias("entity_id"),
            (F.lit(0) if kind == TX else known).alias("known"),
            *values,
        )
        return F.when(valid & (is_tx if kind == TX else ~is_tx), fields)

    rejected = F.when(
        ~valid,
        F.struct(
            F.lit(REJECTED_ENTITY).alias("entity"),
            F.col("kafka_offset").cast("long").alias("entity_id"),
            F.lit(0).alias("known"),
            *[F.lit(None).cast("double").alias(c) for c in plan.value_columns],
        ),
    )
    entries = [entry(e, kind=TX) for e in plan.entities] + [entry(e, kind=LABEL) for e in plan.label_entities]
    entries.append(rejected)
    exploded = rows.select(
        F.col("transaction_id"),
        ts.alias("ts"),
        F.col("kafka_partition"),
        F.col("kafka_offset"),
        F.unix_millis(F.col("kafka_timestamp")).alias("kafka_timestamp"),
        F.col("kind"),
        *PASS_THROUGH_COLUMNS,
        F.explode(F.array(*entries)).alias("_entry"),
    ).where(F.col("_entry").isNotNull())
    columns = [c.split(" ")[0].strip("`") for c in plan.input_schema_ddl().split(", ")]
    return exploded.select("*", "_entry.*").select(*columns)


def _pass_through_types() -> dict[str, str]:
    """Name -> SQL type of the columns a rejected record carries through the operator."""
    return dict(column.split(" ") for column in PASS_THROUGH_DDL.split(", "))


def online_features(
    rows: DataFrame,
    plan: OnlinePlan,
    initial_state: DataFrame | None = None,
    *,
    cache_bytes: int = CACHE_MAX_BYTES,
    copies_scope: str | None = None,
) -> DataFrame:
    """The stateful operator: per (entity, bucket of entity ids), append-only state with TTL, RocksDB state store;
    each Python worker keeps up to `cache_bytes` of the decoded state between micro-batches (0: none), and with
    `copies_scope` leaves it for the machine's other workers in that folder of shared copies."""

    def by_bucket(frame: DataFrame) -> GroupedData:
        return frame.withColumn("bucket", F.pmod(F.col("entity_id"), F.lit(plan.buckets))).groupBy("entity", "bucket")

    initial = by_bucket(initial_state) if initial_state is not None else None
    return by_bucket(rows).transformWithStateInPandas(
        statefulProcessor=OnlineFeatureProcessor(plan, cache_bytes=cache_bytes, copies_scope=copies_scope),
        outputStructType=plan.output_schema(),
        outputMode="Append",
        timeMode="ProcessingTime",
        initialState=initial,
    )


def bootstrap_rows(
    spark: SparkSession, config: LakestreamConfig, spec: FeatureSetSpec, plan: OnlinePlan, *, until: dt.datetime
) -> DataFrame:
    """Operator input rows for the look-back before `until`, from silver: the online store's warm start."""
    tx_path = config.table_path("silver", "transactions")
    labels_path = config.table_path("silver", "fraud_labels")
    if not is_delta_table(tx_path):
        raise DataError(f"cannot bootstrap the stream state: no silver transactions at {tx_path}")
    since = until - dt.timedelta(seconds=plan.retention_seconds)
    transactions = (
        read_delta(spark, tx_path)
        .where((F.col("tx_datetime") >= F.lit(since)) & (F.col("tx_datetime") < F.lit(until)))
        .select(*spec.source.columns)
    )
    coordinates = {
        "kafka_partition": F.lit(-1),
        "kafka_offset": F.lit(-1).cast("long"),
        "kafka_timestamp": F.lit(None).cast("timestamp"),
    }
    valid = transactions.withColumn("kind", F.lit(TX)).withColumns(coordinates)
    valid = valid.withColumn("tx_fraud", F.lit(None).cast("int")).withColumn(
        "reported_at", F.lit(None).cast("timestamp")
    )
    if is_delta_table(labels_path) and plan.label_entities:
        labels = (
            read_delta(spark, labels_path)
            .select("transaction_id", "tx_fraud", "reported_at")
            .join(transactions.drop("tx_amount"), on="transaction_id")
            .withColumn("kind", F.lit(LABEL))
            .withColumn("tx_amount", F.lit(None).cast("double"))
            .withColumns(coordinates)
        )
        valid = valid.unionByName(labels)
    return operator_input(valid, plan, spec)


def has_committed_batch(checkpoint: Path) -> bool:
    """True once the query of `checkpoint` has committed a micro-batch (its state holds the bootstrap from then on).

    Spark creates the checkpoint's ``commits`` folder when the query starts, empty: a run killed during its first
    micro-batch leaves the folder without a commit, and the restart must load the bootstrap rows again.
    """
    commits = checkpoint / "commits"
    return commits.is_dir() and any(entry.name.isdigit() for entry in commits.iterdir())


STATE_LAYOUT_FILE = "lakestream-state.json"  # in the checkpoint: how its state is keyed
LEGACY_STATE_BUCKETS = 16  # the default of every release that made checkpoints without STATE_LAYOUT_FILE


def checkpoint_state_buckets(checkpoint: Path, streaming: StreamingConfig) -> int:
    """The buckets per entity of the checkpoint's state, recorded in it (STATE_LAYOUT_FILE) by its first run.

    Entity ids hash into buckets, and a bucket's state holds its entities' history: with another count, ids land in
    buckets without their history and get wrong features, silently. So a checkpoint with committed batches keeps its
    count, and a setting (``streaming.state_buckets``, set in configuration) that differs is refused. A checkpoint
    made before the record existed has the count configured then: the setting if there is one, else 16 (the
    default of those releases). A checkpoint without a committed batch holds no state yet and takes the setting.
    """
    record = checkpoint / STATE_LAYOUT_FILE
    configured, explicit = streaming.state_buckets, "state_buckets" in streaming.model_fields_set
    if has_committed_batch(checkpoint):
        if record.is_file():
            recorded = int(json.loads(record.read_text())["state_buckets"])
            if explicit and configured != recorded:
                raise ConfigError(
                    f"the checkpoint {checkpoint} keeps its state in {recorded} buckets per entity, but "
                    f"streaming.state_buckets is {configured}: entity ids would land in buckets without their history. "
                    f"Set streaming.state_buckets: {recorded} (or remove the setting), or start a new checkpoint "
                    "(another streaming.query_name, or remove this one) with a new bootstrap"
                )
            return recorded
        buckets = configured if explicit else LEGACY_STATE_BUCKETS
        logger.info("checkpoint %s predates %s: its state has %d buckets per entity", checkpoint, record.name, buckets)
    else:
        buckets = configured
    checkpoint.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"state_buckets": buckets}) + "\n")
    return buckets


def drop_bootstrap_rows(checkpoint: Path) -> None:
    """Remove the materialized bootstrap rows once a batch has committed: the state holds them, no plan reads them."""
    folder = checkpoint / BOOTSTRAP_FOLDER
    if folder.is_dir():
        shutil.rmtree(folder)
        logger.info("removed the bootstrap rows of the first run (%s): the checkpoint's state holds them", folder)


def materialized(initial: DataFrame, checkpoint: Path) -> DataFrame:
    """The bootstrap rows written once as Parquet under the checkpoint, and read back as the initial state.

    The initial state stays in the query's plan for its whole run, and every micro-batch plans it again: over
    silver's Delta tables that meant snapshot updates and data skipping on three scans per batch (0.7-1.4 s of
    each batch's queryPlanning, measured), although only the first batch reads the rows. A plain Parquet scan
    plans in milliseconds. A start that fails before its first commit writes the folder again; the first start
    after a commit removes it (drop_bootstrap_rows).
    """
    path = checkpoint / BOOTSTRAP_FOLDER
    started = time.perf_counter()
    initial.write.mode("overwrite").parquet(str(path))
    logger.info("bootstrap rows written to %s in %.1fs", path, time.perf_counter() - started)
    return initial.sparkSession.read.parquet(str(path))


# --- the model ------------------------------------------------------------------------------------------


@dataclass
class ModelWatcher:
    """The model behind an alias, re-checked every `refresh_seconds`; keeps the last good one on failure."""

    config: LakestreamConfig
    alias: str
    refresh_seconds: float
    model: LoadedModel | None = None
    registry_ok: bool = True
    checked_at: float = 0.0
    swaps: int = 0

    def current(self) -> LoadedModel:
        """The model to score this batch with (loading a newly promoted version when the alias moved)."""
        if self.model is None or time.monotonic() - self.checked_at >= self.refresh_seconds:
            self.refresh()
        if self.model is None:
            raise ConfigError(
                f"no model has the alias {self.alias!r} in {self.config.mlflow.registered_model!r}; "
                "train and promote a model first (jobs/train_model.py, jobs/promote_model.py)"
            )
        return self.model

    def refresh(self) -> None:
        """Check the alias; swap models when it points at another version."""
        from mlflow import MlflowClient

        from lakestream.registry.models import find_version_by_alias, load_model_version
        from lakestream.registry.tracking import configure_mlflow

        self.checked_at = time.monotonic()
        try:
            configure_mlflow(self.config)
            client = MlflowClient()
            version = find_version_by_alias(client, self.config.mlflow.registered_model, self.alias)
            if version is None or (self.model is not None and str(version.version) == self.model.version):
                self.registry_ok = True
                return
            loaded = load_model_version(client, self.config, version)
        except Exception as exc:  # noqa: BLE001 - any registry failure: keep scoring with the last good model
            self.registry_ok = False
            kept = f"keeping {self.model.name} v{self.model.version}" if self.model else "no model loaded yet"
            logger.warning("model registry unreachable or model unloadable (%s); %s", exc, kept)
            return
        self.registry_ok = True
        if self.model is not None and loaded.feature_spec != self.model.feature_spec:
            logger.error(
                "%s v%s uses feature set %s but the stream computes %s; not swapping (restart the stream)",
                loaded.name,
                loaded.version,
                loaded.feature_spec.name,
                self.model.feature_spec.name,
            )
            return
        previous = self.model.version if self.model else None
        self.model = loaded
        if previous is not None:
            self.swaps += 1
            logger.info("hot-swapped model %s: v%s -> v%s", loaded.name, previous, loaded.version)
        else:
            logger.info("scoring with %s v%s (%s)", loaded.name, loaded.version, self.alias)


# --- the micro-batch writer -----------------------------------------------------------------------------


@dataclass
class BatchWriter:
    """foreachBatch of the scoring query: features per transaction, score, write Delta and Kafka, measure."""

    config: LakestreamConfig
    spec: FeatureSetSpec
    plan: OnlinePlan
    models: ModelWatcher
    high_water: dict[int, int] | None = None  # Kafka partition -> newest event second scored (lateness reference)
    state_rows: int | None = None  # from the latest query progress (if the store counts them), set by the driver loop
    state_bytes: int | None = None  # the same progress's state size (lakestream.streaming.runner.state_bytes)
    batches: int = 0
    steps: dict[str, int] = field(default_factory=dict)  # ms per step of the current batch
    producer: KafkaProducer | None = None  # alerts from the driver (built on the first batch with alerts)
    schemas: OutputSchemas | None = None  # the driver writer's output types (from the Spark path's plans)
    appenders: dict[Path, OnceAppender] = field(default_factory=dict)  # the driver writer's tables, kept open

    def __call__(self, out: DataFrame, batch_id: int) -> None:
        """Process one micro-batch (re-runs of a batch id write nothing twice)."""
        started = dt.datetime.now(dt.UTC)
        model = self.models.current()
        self.steps = {}
        if self.config.streaming.output_writer == "driver":
            with self._step("features"):  # runs the stateful operator once; the rest of the batch is on the driver
                rows = out.toArrow()
            if rows.num_rows:
                self._write_collected(out.sparkSession, rows, batch_id, model, started)
            return
        with self._step("features"):  # runs the stateful operator once; the steps below read its rows
            checkpointed = out.localCheckpoint(eager=True)
        try:
            if not checkpointed.isEmpty():
                self._write(checkpointed, batch_id, model, started)
        finally:
            release_checkpoint(checkpointed)

    def _write(self, out: DataFrame, batch_id: int, model: LoadedModel, started: dt.datetime) -> None:
        """Spark's writer: the batch's DataFrames, appended by Spark jobs over cached rows."""
        plan_started = time.perf_counter()  # building the batch's DataFrames (eager analysis on the driver)
        if self.high_water is None:
            self.high_water = _committed_high_water(out.sparkSession, self.config, before_batch=batch_id)
        transactions, scored, rejected = self._frames(out, batch_id, model)
        stats = self._commit_with_spark(
            out, transactions, scored, rejected, batch_id=batch_id, plan_started=plan_started
        )
        self._finish(stats, batch_id, model, started)

    def _frames(self, out: DataFrame, batch_id: int, model: LoadedModel) -> tuple[DataFrame, DataFrame, DataFrame]:
        """The operator rows -> (transactions with their `_late` flag, scored rows, dead letters) as DataFrames."""
        config = self.config
        transactions = combine_entities(out.where(F.col("status") == OK), self.plan).withColumn(
            "_late",
            _late(
                self.high_water or {},
                config.streaming.allowed_lateness_seconds,
                skew=config.streaming.max_partition_skew_seconds,
            ),
        )
        on_time = transactions.where(~F.col("_late")).drop("_late")
        scored = score_transactions(on_time, spec=self.spec, model=model, config=config, batch_id=batch_id)
        rejected = rejected_rows(
            out,
            transactions,
            primary=self.plan.entities[0],
            query=config.streaming.query_name,
            topic=config.kafka.topics.transactions.name,
        )
        return transactions, scored, rejected

    def _write_collected(
        self, spark: SparkSession, rows: pa.Table, batch_id: int, model: LoadedModel, started: dt.datetime
    ) -> None:
        """The driver writer: the collected operator rows scored and split in Arrow (lakestream.streaming.collected),
        the scores and dead letters committed from the driver, the alerts sent by the driver's producer."""
        from lakestream.streaming import collected as arrow

        config, query = self.config, self.config.streaming.query_name
        if self.high_water is None:
            self.high_water = _committed_high_water(spark, config, before_batch=batch_id)
        if self.schemas is None:  # the Spark path's output types, planned once on empty rows
            self.schemas = self._output_schemas(spark, model)
        with self._step("score"):
            now = dt.datetime.now(dt.UTC)
            transactions = arrow.combine(rows, self.plan, ok=OK)
            late = arrow.late_mask(
                transactions,
                self.high_water,
                config.streaming.allowed_lateness_seconds,
                skew=config.streaming.max_partition_skew_seconds,
            )
            scored = arrow.scores(
                transactions.filter(~late),
                spec=self.spec,
                model=model,
                config=config,
                batch_id=batch_id,
                schema=self.schemas.scores,
                processed_at=now,
            )
            letters = arrow.dead_letters(
                rows,
                transactions.filter(late),
                statuses=(REJECTED, DUPLICATE),
                primary=self.plan.entities[0],
                query=query,
                topic=config.kafka.topics.transactions.name,
                reasons=(DUPLICATE_TRANSACTION, LATE_EVENT),
                details=(DUPLICATE_DETAIL, LATE_DETAIL),
                schema=self.schemas.dead_letters,
                at=now,
            )
        stats = _collected_stats(scored, letters)
        with self._step("alerts"):  # on their way to the broker while the batch commits
            sent = self._send_collected_alerts(scored) if stats["alerts"] else None
        with self._step("commit"):
            self._append_once(scores_path(config), scored, query, batch_id, partition_by=["tx_date"])
            if letters.num_rows:
                self._append_once(dead_letter_path(config), letters, f"{query}-rejected", batch_id)
        with self._step("acks"):  # every alert acknowledged before the batch ends (at-least-once)
            if sent is not None:
                sent.confirm()
        self._finish(stats, batch_id, model, started)

    def _output_schemas(self, spark: SparkSession, model: LoadedModel) -> OutputSchemas:
        """The Arrow schemas of the scores and dead letters that Spark's writer path gives (no job runs)."""
        from pyspark.sql.pandas.types import to_arrow_schema

        from lakestream.streaming.collected import OutputSchemas

        empty = spark.createDataFrame([], self.plan.output_schema())
        _, scored, rejected = self._frames(empty, 0, model)
        return OutputSchemas(
            scores=to_arrow_schema(scored.schema, timezone="UTC"),
            dead_letters=to_arrow_schema(rejected.schema, timezone="UTC"),
        )

    def _finish(self, stats: dict[str, Any], batch_id: int, model: LoadedModel, started: dt.datetime) -> None:
        """The batch's latencies, its metrics row and its log line; the lateness reference moves on."""
        config = self.config
        finished = dt.datetime.now(dt.UTC)
        latency = _latencies(stats["appended"], finished)
        for partition, newest in stats["max_ts"].items():
            self.high_water[partition] = max(newest, self.high_water.get(partition, newest))
        metrics = {
            "batch_id": batch_id,
            "started_at": started.replace(tzinfo=None),
            "finished_at": finished.replace(tzinfo=None),
            "duration_ms": int((finished - started).total_seconds() * 1000),
            "input_transactions": stats["input"],
            "scored": stats["scored"],
            "duplicates": stats["duplicates"],
            "late": stats["late"],
            "invalid": stats["invalid"],
            "alerts": stats["alerts"],
            "latency_p50_ms": latency["p50"],
            "latency_p95_ms": latency["p95"],
            "latency_p99_ms": latency["p99"],
            "state_rows": self.state_rows,
            "state_bytes": self.state_bytes,
            "model_name": model.name,
            "model_version": model.version,
            "registry_ok": self.models.registry_ok,
            "feature_set": self.spec.name,
        }
        with self._step("metrics"):  # one row: written from the driver without a Spark job, idempotent as _append
            self._append_once(
                metrics_path(config), metrics_rows([metrics]), f"{config.streaming.query_name}-metrics", batch_id
            )
        self.batches += 1
        logger.info(
            "batch %d: %d scored (%d duplicates, %d late, %d invalid, %d alerts) with %s v%s in %d ms; latency p50 %s"
            " ms p99 %s ms (ms per step: %s)",
            batch_id,
            stats["scored"],
            stats["duplicates"],
            stats["late"],
            stats["invalid"],
            stats["alerts"],
            model.name,
            model.version,
            metrics["duration_ms"],
            latency["p50"],
            latency["p99"],
            ", ".join(f"{name} {ms}" for name, ms in self.steps.items()),
        )

    def _commit_with_spark(
        self,
        out: DataFrame,
        transactions: DataFrame,
        scored: DataFrame,
        rejected: DataFrame,
        *,
        batch_id: int,
        plan_started: float,
    ) -> dict[str, Any]:
        """Spark's writer: scores and dead letters appended by Spark jobs over cached rows, counted by small jobs."""
        app_id = self.config.streaming.query_name
        transactions, scored = transactions.persist(), scored.persist()  # read by the appends and the counts
        self.steps["plan"] = round((time.perf_counter() - plan_started) * 1000)
        try:
            with self._step("scores"):
                _append(scored, scores_path(self.config), app_id, batch_id, partition_by=["tx_date"])
            with self._step("stats"):  # small jobs over cached rows; they decide the step below
                stats = _batch_stats(scored, transactions, out, self.plan.entities[0])
            with self._step("rejected"):
                if stats["duplicates"] or stats["late"] or stats["invalid"]:
                    _append(rejected, dead_letter_path(self.config), f"{app_id}-rejected", batch_id)
            with self._step("alerts"):
                if stats["alerts"]:
                    send_alerts(scored, self.config)
        finally:
            scored.unpersist()
            transactions.unpersist()
        return stats

    def _append_once(
        self, path: Path, rows: pa.Table, app_id: str, batch_id: int, *, partition_by: Sequence[str] = ()
    ) -> None:
        """Append from the driver, once per (app_id, batch id), through the table's appender kept across batches."""
        appender = self.appenders.get(path)
        if appender is None:
            appender = self.appenders[path] = OnceAppender(path)
        appender.append(rows, app_id, batch_id, partition_by=partition_by)

    def _send_collected_alerts(self, rows: pa.Table) -> SentAlerts:
        """The alerts among the rows the driver writer collected, sent by a producer kept across batches (without
        lingering: a batch's alerts leave at once)."""
        from lakestream.io.kafka import build_producer

        if self.producer is None:
            self.producer = build_producer(self.config.kafka, linger_ms=0)
        return send_collected_alerts(self.producer, self.config.kafka.topics.fraud_alerts.name, rows)

    def close(self) -> None:
        """Release the alert producer (after the query stopped)."""
        if self.producer is not None:
            self.producer.close()
            self.producer = None

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Time one step of the batch (logged with the batch, to see where the time goes)."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round((time.perf_counter() - begin) * 1000)


def metrics_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of gold.stream_metrics as Arrow."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    return pa.Table.from_pylist(rows, schema=to_arrow_schema(metrics_schema(), timezone="UTC"))


def metrics_schema() -> StructType:
    """gold.stream_metrics: one row per micro-batch."""
    from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType, TimestampType

    longs = (
        "duration_ms",
        "input_transactions",
        "scored",
        "duplicates",
        "late",
        "invalid",
        "alerts",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "state_rows",
        "state_bytes",
    )
    return StructType(
        [
            StructField("batch_id", LongType(), nullable=False),
            StructField("started_at", TimestampType()),
            StructField("finished_at", TimestampType()),
            *[StructField(name, LongType()) for name in longs],
            StructField("model_name", StringType()),
            StructField("model_version", StringType()),
            StructField("registry_ok", BooleanType()),
            StructField("feature_set", StringType()),
        ]
    )


def release_checkpoint(frame: DataFrame) -> None:
    """Drop the blocks of a DataFrame made by localCheckpoint (a micro-batch's operator rows) now, not when the
    driver's garbage collector lets Spark's cleaner find them.

    Why a checkpoint rather than persist(): the DataFrame foreachBatch receives carries the whole streaming plan
    (the Kafka scans, the validation's checks, the stateful operator); every DataFrame built on it is analysed and
    every job planned over that tree again, persisted or not. A checkpoint's plan is one scan of its blocks.
    """
    frame._jdf.queryExecution().logical().rdd().unpersist(False)  # py4j: the checkpoint's RDD


def combine_entities(rows: DataFrame, plan: OnlinePlan) -> DataFrame:
    """Operator output (one row per transaction and entity) -> one row per transaction with every feature."""
    entity_ids = [F.max(F.when(F.col("entity") == e, F.col("entity_id"))).alias(e) for e in plan.entities]
    shared = ["ts", "kafka_partition", "kafka_offset", "kafka_timestamp", *plan.value_columns]
    return rows.groupBy("transaction_id").agg(
        *entity_ids,
        *[F.first(c).alias(c) for c in shared],
        *[F.max(c).alias(c) for c in plan.feature_names],
    )


def score_transactions(
    transactions: DataFrame, *, spec: FeatureSetSpec, model: LoadedModel, config: LakestreamConfig, batch_id: int
) -> DataFrame:
    """Combined rows -> the scores table's rows: features (row, window, derived), score, decision, lineage."""
    from lakestream.scoring.batch import assign_decisions, score_with_booster

    counts = [name for g in spec.windows for _, a, name in g.expanded() if a.agg == "count"]
    frame = transactions.withColumn("tx_datetime", F.timestamp_seconds("ts")).withColumns(
        {name: F.col(name).cast("long") for name in counts}
    )
    frame = add_derived_features(add_row_features(frame, spec), spec)
    inputs = [F.col(name).cast("double").alias(f"_in_{name}") for name in model.feature_names]
    scored = score_with_booster(
        frame.select("*", *inputs),
        model_bytes=model.raw_bytes,
        features=[f"_in_{name}" for name in model.feature_names],
        cache_key=f"{model.name}/{model.version}",
    )
    scored = assign_decisions(scored, scoring=config.training.scoring)
    return scored.select(
        "transaction_id",
        "tx_datetime",
        F.to_date("tx_datetime").alias("tx_date"),
        *spec.source.columns[2:],  # customer_id, terminal_id, tx_amount
        "score",
        "decision",
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(spec.name).alias("feature_set"),
        F.lit(spec.version).alias("feature_set_version"),
        *[c for c in spec.feature_names() if c not in spec.source.columns],
        F.lit(config.kafka.topics.transactions.name).alias("kafka_topic"),
        "kafka_partition",
        "kafka_offset",
        F.timestamp_millis("kafka_timestamp").alias("kafka_timestamp"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.current_timestamp().alias("processed_at"),
    )


def _primary_duplicates(out: DataFrame, primary: str) -> DataFrame:
    """Operator rows of transactions already scored, one per transaction (the primary entity's)."""
    return out.where((F.col("status") == DUPLICATE) & (F.col("entity") == primary))


def _is_alert() -> Column:
    """The rows that go to the alerts topic: every decision but approve."""
    return F.col("decision") != "approve"


def rejected_rows(out: DataFrame, transactions: DataFrame, *, primary: str, query: str, topic: str) -> DataFrame:
    """Records that failed validation, duplicates (the primary entity's rows) and late transactions -> dead letters."""
    coordinates = ["transaction_id", "ts", "kafka_partition", "kafka_offset", "kafka_timestamp"]
    invalid = out.where(F.col("status") == REJECTED).select(*coordinates, "topic", "raw", "reason", "detail")
    duplicates = _primary_duplicates(out, primary).select(
        *coordinates,
        F.lit(topic).alias("topic"),
        F.lit(None).cast("binary").alias("raw"),
        F.lit(DUPLICATE_TRANSACTION).alias("reason"),
        F.lit(DUPLICATE_DETAIL).alias("detail"),
    )
    late = transactions.where(F.col("_late")).select(
        *coordinates,
        F.lit(topic).alias("topic"),
        F.lit(None).cast("binary").alias("raw"),
        F.lit(LATE_EVENT).alias("reason"),
        F.lit(LATE_DETAIL).alias("detail"),
    )
    rejected = (
        invalid.unionByName(duplicates)
        .unionByName(late)
        .select(
            "topic",
            "kafka_partition",
            "kafka_offset",
            F.timestamp_millis("kafka_timestamp").alias("kafka_timestamp"),
            "raw",
            "reason",
            "detail",
            "transaction_id",
            F.timestamp_seconds("ts").alias("tx_datetime"),
        )
    )
    return dead_letter_rows(rejected, query=query)


def send_alerts(scored: DataFrame, config: LakestreamConfig) -> None:
    """review/block rows -> the fraud-alerts topic, keyed by transaction id (at-least-once)."""
    payload = F.to_json(
        F.struct(
            *transaction_fields(),
            "score",
            "decision",
            "model_version",
            F.date_format("processed_at", "yyyy-MM-dd HH:mm:ss.SSS").alias("processed_at"),
        )
    )
    (
        scored.where(_is_alert())
        .select(F.col("transaction_id").cast("string").alias("key"), payload.alias("value"))
        .write.format("kafka")
        .options(**spark_kafka_options(config.kafka))
        .option("topic", config.kafka.topics.fraud_alerts.name)
        .save()
    )


def alert_messages(rows: pa.Table) -> list[tuple[bytes, bytes]]:
    """(key, value) of the review/block rows among collected scored rows: send_alerts' records, built in Python.

    The same JSON fields (the session time zone is UTC); numbers may be spelled differently (1e-05 for
    1.0E-5) but parse to the same values. Null fields are left out, as Spark's to_json does.
    """
    import pyarrow.compute as pc

    fields = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
    flagged = rows.filter(pc.not_equal(rows.column("decision"), "approve"))
    messages = []
    for row in flagged.select([*fields, "score", "decision", "model_version", "processed_at"]).to_pylist():
        row["tx_datetime"] = _utc(row["tx_datetime"]).strftime("%Y-%m-%d %H:%M:%S")
        row["processed_at"] = _utc(row["processed_at"]).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        value = json.dumps({k: v for k, v in row.items() if v is not None}, separators=(",", ":"))
        messages.append((str(row["transaction_id"]).encode(), value.encode()))
    return messages


@dataclass
class SentAlerts:
    """Alerts handed to a producer, on their way to the broker; `confirm` waits for them."""

    producer: KafkaProducer
    futures: list[Any]

    def confirm(self) -> None:
        """Wait until every alert is acknowledged; raises the error of a send that failed (at-least-once)."""
        self.producer.flush()
        for future in self.futures:
            future.get(timeout=0)


def send_collected_alerts(producer: KafkaProducer, topic: str, rows: pa.Table) -> SentAlerts:
    """alert_messages(rows) -> topic, sent in the background by the producer's I/O thread; `confirm()` the result
    before the batch ends (at-least-once, as send_alerts)."""
    return SentAlerts(producer, [producer.send(topic, key=key, value=value) for key, value in alert_messages(rows)])


def _utc(moment: dt.datetime) -> dt.datetime:
    """A timestamp from Arrow in UTC (tz-aware columns convert; naive ones are UTC already)."""
    return moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment


# Latency quantiles from quantiles of the Kafka append times: finished - t is largest where t is smallest.
_LATENCY_QUANTILES = {"p50": 0.5, "p95": 0.05, "p99": 0.01}


def _batch_stats(scored: DataFrame, transactions: DataFrame, out: DataFrame, primary: str) -> dict[str, Any]:
    """The batch's counts from small jobs over cached rows: scored rows, their transactions, the operator's rows
    (Spark's writer; the driver writer takes them from the rows it collected, _collected_stats).

    `input` counts transactions (scored, late and duplicated); `invalid` counts records of either topic that
    failed validation.
    """
    row = scored.agg(
        F.count(F.lit(1)).alias("scored"),
        F.count(F.when(_is_alert(), 1)).alias("alerts"),
        F.percentile_approx(F.unix_millis("kafka_timestamp"), list(_LATENCY_QUANTILES.values()), 1000).alias("t"),
    ).first()
    partitions = (
        transactions.groupBy("kafka_partition")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("_late").cast("int")).alias("late"), F.max("ts").alias("ts"))
        .collect()
    )
    statuses = out.agg(
        F.count(F.when((F.col("status") == DUPLICATE) & (F.col("entity") == primary), 1)).alias("duplicates"),
        F.count(F.when(F.col("status") == REJECTED, 1)).alias("invalid"),
    ).first()
    duplicates = int(statuses["duplicates"])
    return {
        "scored": int(row["scored"]),
        "alerts": int(row["alerts"]),
        "appended": _appended_quantiles(row["t"]),
        "late": sum(int(r["late"] or 0) for r in partitions),
        "duplicates": duplicates,
        "invalid": int(statuses["invalid"]),
        "input": sum(int(r["n"]) for r in partitions) + duplicates,
        "max_ts": {r["kafka_partition"]: int(r["ts"]) for r in partitions},
    }


def _appended_quantiles(times: list[int] | None) -> dict[str, int | None]:
    """Kafka append-time quantiles by name (None on a batch without scores)."""
    return dict(zip(_LATENCY_QUANTILES, times or [None] * len(_LATENCY_QUANTILES), strict=True))


def _arrow_scored_stats(rows: pa.Table) -> dict[str, Any]:
    """The scored rows' count, alerts and Kafka append-time quantiles (ms) from their Arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if rows.num_rows == 0:
        return {"scored": 0, "alerts": 0, "t": None}
    stamps = rows.column("kafka_timestamp")
    millis = pc.cast(pc.cast(stamps, pa.timestamp("ms", stamps.type.tz), safe=False), pa.int64())
    quantiles = pc.quantile(millis, q=list(_LATENCY_QUANTILES.values()), interpolation="lower")
    alerts = pc.sum(pc.not_equal(rows.column("decision"), "approve")).as_py()
    return {"scored": rows.num_rows, "alerts": int(alerts or 0), "t": [int(v) for v in quantiles.to_pylist()]}


def _collected_stats(scored_rows: pa.Table, dead_letters: pa.Table) -> dict[str, Any]:
    """_batch_stats' counts from the rows the driver writer collected: the batch's scores and its dead letters.

    Dead letters are the records that failed validation (either topic), the duplicates (one per transaction) and the
    late transactions, each with its reason; `input` counts the transactions scored, late or duplicated.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    row = _arrow_scored_stats(scored_rows)
    reasons = dead_letters.column("reason")
    duplicates = int(pc.sum(pc.equal(reasons, DUPLICATE_TRANSACTION)).as_py() or 0)
    is_late = pc.equal(reasons, LATE_EVENT)
    late = int(pc.sum(is_late).as_py() or 0)
    max_ts: dict[int, int] = {}
    for rows, time_column in ((scored_rows, "tx_datetime"), (dead_letters.filter(is_late), "event_time")):
        if rows.num_rows == 0:
            continue
        seconds = pc.cast(pc.cast(rows.column(time_column), pa.timestamp("s", "UTC"), safe=False), pa.int64())
        newest = pa.table({"p": rows.column("kafka_partition"), "s": seconds}).group_by("p").aggregate([("s", "max")])
        for partition, second in zip(newest.column("p").to_pylist(), newest.column("s_max").to_pylist(), strict=True):
            max_ts[partition] = max(second, max_ts.get(partition, second))
    return {
        "scored": row["scored"],
        "alerts": row["alerts"],
        "appended": _appended_quantiles(row["t"]),
        "late": late,
        "duplicates": duplicates,
        "invalid": dead_letters.num_rows - duplicates - late,
        "input": row["scored"] + late + duplicates,
        "max_ts": max_ts,
    }


def _latencies(appended: dict[str, int | None], finished: dt.datetime) -> dict[str, int | None]:
    """Milliseconds from the Kafka append to the batch's end, per quantile (None on a batch without scores)."""
    finished_ms = int(finished.timestamp() * 1000)
    return {name: None if at is None else finished_ms - int(at) for name, at in appended.items()}


def _committed_high_water(spark: SparkSession, config: LakestreamConfig, *, before_batch: int) -> dict[int, int]:
    """Kafka partition -> newest event second scored by the batches before this one (after a restart).

    Batches before, not all: a batch re-run after a crash may find its own rows already committed, and must
    take the same late/on-time decisions as its first run.
    """
    path = scores_path(config)
    if not is_delta_table(path):
        return {}
    newest = (
        read_delta(spark, path)
        .where(F.col("batch_id") < before_batch)
        .groupBy("kafka_partition")
        .agg(F.max(F.unix_seconds("tx_datetime")))
    )
    return {int(r[0]): int(r[1]) for r in newest.collect()}


def _late(high_water: dict[int, int], lateness: int, *, skew: int | None = None) -> Column:
    """An event is late when older than its Kafka partition's newest scored event minus the allowed lateness, or
    (with a skew) older than the newest scored event of any partition minus the lateness and the skew.

    Per partition, because a micro-batch reads the same share of every partition's backlog, not the same
    event-time range: a global reference would call on-time events of a lagging partition late. The skew bounds
    how far a partition may lag: the state drops what only events lagging further would read (OnlinePlan).
    """
    late = F.lit(False)
    for partition, newest in high_water.items():
        late = late | ((F.col("kafka_partition") == partition) & (F.col("ts") < F.lit(newest - lateness)))
    if skew is not None and high_water:
        late = late | (F.col("ts") < F.lit(max(high_water.values()) - lateness - skew))
    return late


def _append(frame: DataFrame, path: Path, app_id: str, batch_id: int, *, partition_by: Sequence[str] = ()) -> None:
    """Idempotent append with Spark's Delta writer: a (txnAppId, txnVersion) already committed is skipped, as
    OnceAppender (the driver writer) skips it."""
    writer = (
        frame.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(batch_id))
        .option("mergeSchema", "true")
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(str(path))


# --- starting the queries -------------------------------------------------------------------------------


@dataclass
class StreamHandles:
    """The running query and its writer (for progress and metrics)."""

    scoring: StreamingQuery
    writer: BatchWriter
    copies: SharedCopies | None = None  # the query's folder of the workers' shared state copies

    def clear_copies(self) -> int:
        """Remove the state copies the query's workers left on this machine once the query has stopped; how many."""
        if self.copies is None or any(query.isActive for query in self.queries):
            return 0
        removed = self.copies.clear()
        logger.info("removed %d shared state copies of the stopped query (%s)", removed, self.copies.root)
        return removed

    @property
    def queries(self) -> list[StreamingQuery]:
        """The stream's queries (one: validation, features, scoring and dead letters share its micro-batches)."""
        return [self.scoring]


def start_stream(
    spark: SparkSession,
    config: LakestreamConfig,
    *,
    available_now: bool = False,
    bootstrap_until: dt.datetime | None = None,
) -> StreamHandles:
    """Start the scoring and dead-letter queries (restarting from their checkpoints when they exist)."""
    streaming = config.streaming
    models = ModelWatcher(config, streaming.model_alias, streaming.model_refresh_seconds)
    model = models.current()
    spec = model.feature_spec
    if streaming.feature_set and streaming.feature_set != spec.name:
        raise ConfigError(
            f"streaming.feature_set is {streaming.feature_set} but the {streaming.model_alias} model uses "
            f"{spec.name}; promote a {streaming.feature_set} model or unset streaming.feature_set"
        )
    checkpoint = config.checkpoint_path(streaming.query_name)
    plan = OnlinePlan.from_spec(
        spec,
        allowed_lateness_seconds=streaming.allowed_lateness_seconds,
        buckets=checkpoint_state_buckets(checkpoint, streaming),
        partition_skew_seconds=streaming.max_partition_skew_seconds,
    )
    spark.conf.set("spark.sql.shuffle.partitions", str(streaming.shuffle_partitions))
    # no empty micro-batches: state TTL is enforced in data batches, and availableNow runs end when drained
    spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
    initial = None
    restored = has_committed_batch(checkpoint)
    if restored:
        drop_bootstrap_rows(checkpoint)
    if bootstrap_until is not None:
        if restored:
            logger.info("checkpoint %s has committed batches: state restored from it, bootstrap skipped", checkpoint)
        else:
            logger.info("bootstrapping the online state from silver up to %s", bootstrap_until)
            initial = materialized(bootstrap_rows(spark, config, spec, plan, until=bootstrap_until), checkpoint)
    copies = None
    if streaming.state_cache_mb > 0:
        # a run at a time per checkpoint: what is in the query's folder was left by an earlier run (killed, or on
        # a failing file system); stale copies of other queries go too
        copies = SharedCopies.on_this_machine(copies_scope(streaming.query_name, checkpoint))
        removed = copies.clear() + copies.sweep()
        if removed:
            logger.info("removed %d shared state copies left by earlier runs (%s)", removed, copies.base)
    parsed = validate(kafka_source(spark, config), config)
    features = online_features(
        operator_input(parsed, plan, spec),
        plan,
        initial,
        cache_bytes=streaming.state_cache_mb << 20,
        copies_scope=None if copies is None else copies.root.name,
    )
    writer = BatchWriter(config, spec, plan, models)

    def trigger(stream_writer: Any) -> Any:
        if available_now:
            return stream_writer.trigger(availableNow=True)
        return stream_writer.trigger(processingTime=streaming.trigger_interval)

    scoring = trigger(
        features.writeStream.queryName(streaming.query_name)
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(writer)
    ).start()
    logger.info(
        "stream started: %s (features %s v%d, model %s v%s, dead letters to %s); checkpoint %s",
        streaming.query_name,
        spec.name,
        spec.version,
        model.name,
        model.version,
        dead_letter_path(config),
        checkpoint,
    )
    return StreamHandles(scoring, writer, copies)
