"""`make demo`: start the local stack and run the pipeline through it, with progress and a summary.

Every stage is a real `spark-submit` of a `jobs/` entry point (what Airflow runs), on the local stack:
simulate -> land -> bronze -> silver (+ quarantine) -> gold features -> profile report -> SQL by name ->
Kafka round trip through Structured Streaming. The default size keeps it to a few minutes on 2 cores;
`lakestream demo --full` runs the book's full dataset.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakestream.config.models import LakestreamConfig
from lakestream.errors import LakestreamError
from lakestream.platform.kafka_broker import start_broker
from lakestream.spark import build_spark_session, build_submit_command, submit_environment

logger = logging.getLogger(__name__)

DEMO_QUERIES = {
    "fraud rate per day (last 5 labelled days)": """
        SELECT t.tx_date, count(*) AS transactions, count(l.transaction_id) AS frauds,
               round(count(l.transaction_id) / count(*), 4) AS fraud_rate
        FROM silver.transactions t
        LEFT JOIN (SELECT DISTINCT transaction_id FROM silver.fraud_labels WHERE tx_fraud = 1) l
          ON t.transaction_id = l.transaction_id
        GROUP BY t.tx_date ORDER BY t.tx_date DESC LIMIT 5""",
    "top risky terminals": """
        SELECT t.terminal_id, count(*) AS transactions, count(l.transaction_id) AS frauds
        FROM silver.transactions t
        JOIN (SELECT DISTINCT transaction_id FROM silver.fraud_labels WHERE tx_fraud = 1) l
          ON t.transaction_id = l.transaction_id
        GROUP BY t.terminal_id ORDER BY frauds DESC, t.terminal_id LIMIT 5""",
    "scores and decisions of the batch-scored days": """
        SELECT tx_date, decision, count(*) AS transactions, round(avg(score), 4) AS mean_score,
               max(model_version) AS model_version
        FROM gold.scores GROUP BY tx_date, decision ORDER BY tx_date, decision LIMIT 12""",
    "quarantine reasons": """
        SELECT kind, rule, count(*) AS records
        FROM quarantine.records LATERAL VIEW explode(rules) broken AS rule
        GROUP BY kind, rule ORDER BY records DESC""",
    "bronze = silver + quarantine + duplicates (audit)": """
        SELECT stage, kind, sum(input_rows) AS input, sum(silver_rows) AS silver,
               sum(quarantined_rows) AS quarantined, sum(duplicate_rows) AS duplicates
        FROM quality.ingest_audit GROUP BY stage, kind ORDER BY stage, kind""",
}


@dataclass(frozen=True)
class DemoSize:
    """How much data the demo simulates."""

    customers: int
    terminals: int
    days: int
    start: dt.date = dt.date(2018, 4, 1)

    @property
    def end(self) -> dt.date:
        """Last simulated day."""
        return self.start + dt.timedelta(days=self.days - 1)


QUICK = DemoSize(customers=1000, terminals=2000, days=60)
FULL = DemoSize(customers=5000, terminals=10000, days=183)


def _run_job(config: LakestreamConfig, script: str, *args: str) -> dict[str, Any]:
    command = build_submit_command(config, config.home / script, args)
    result = subprocess.run(command, env=submit_environment(config), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LakestreamError(
            f"{script} failed with exit code {result.returncode}:\n{result.stderr[-3000:]}\n"
            f"re-run it alone with `lakestream submit {script} {' '.join(args)}` to investigate"
        )
    last = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(last[-1]) if last else {}


def run_demo(config: LakestreamConfig, *, full: bool = False, say: Callable[[str], None] = print) -> int:
    """Run every demo stage in order; print progress and a closing summary."""
    size = FULL if full else QUICK
    started = time.monotonic()
    summary: list[tuple[str, str]] = []
    clock = [time.monotonic()]

    def stage(title: str) -> None:
        clock[0] = time.monotonic()
        say(f"\n==> {title}")

    def done(name: str, text: str) -> None:
        summary.append((name, f"{text} ({time.monotonic() - clock[0]:.0f}s)"))
        say(f"    {text}")

    stage("1/11 local stack: Kafka broker (KRaft, 127.0.0.1)")
    status = start_broker(config)
    done("kafka broker", f"{status.address}, pid {status.pid}")

    stage(f"2/11 simulate {size.customers} customers x {size.terminals} terminals x {size.days} days and land them")
    sim = _run_job(
        config,
        "jobs/generate_transactions.py",
        *("--customers", str(size.customers), "--terminals", str(size.terminals), "--days", str(size.days)),
        *("--malformed-share", "0.001", "--duplicate-share", "0.001", "--late-share", "0.001"),
    )
    done(
        "simulated", f"{sim.get('transactions', '?')} transactions, {sim.get('frauds', '?')} frauds, anomalies injected"
    )

    stage("3/11 bronze: ingest the landed files (incremental, exactly once)")
    bronze = _run_job(config, "jobs/ingest_landed.py")
    done("bronze", _compact(bronze))

    stage("4/11 silver: clean, validate, deduplicate; bad records to quarantine")
    lateness = config.quality.allowed_lateness_days
    clean_tx = _run_job(
        config,
        "jobs/clean_transactions.py",
        *("--start-date", size.start.isoformat(), "--end-date", (size.end + dt.timedelta(days=lateness)).isoformat()),
    )
    label_end = size.end + dt.timedelta(days=config.simulation.label_delay_days + lateness)
    clean_labels = _run_job(
        config,
        "jobs/clean_fraud_labels.py",
        *("--start-date", size.start.isoformat(), "--end-date", label_end.isoformat()),
    )
    done("silver", f"transactions {_compact(clean_tx)}; labels {_compact(clean_labels)}")

    stage("5/11 gold: fraud_v1 features (the book's 14), point-in-time correct")
    features = _run_job(
        config,
        "jobs/build_features.py",
        "--feature-set",
        "fraud_v1",
        "--start",
        size.start.isoformat(),
        "--end",
        size.end.isoformat(),
    )
    done("gold features", f"{features.get('rows')} rows in {features.get('table')}")

    train_start = size.start + dt.timedelta(days=size.days // 2 - 5)
    test_start = train_start + dt.timedelta(days=14)
    stage(f"6/11 train XGBoost on Spark (train {train_start} + 7 days, 7-day delay, test 7 days), track in MLflow")
    trained = _run_job(
        config,
        "jobs/train_model.py",
        *("--feature-set", "fraud_v1", "--mode", "spark", "--train-start", train_start.isoformat()),
        *("--train-days", "7", "--delay-days", "7", "--test-days", "7", "--run-name", "demo"),
    )
    done("training", _compact(trained))

    stage("7/11 promote: challenger -> champion if it beats the champion on the latest window")
    promoted = _run_job(config, "jobs/promote_model.py")
    done("promotion", _compact(promoted) if promoted else "decision recorded on the model version")

    stage("8/11 batch scoring of the test days with the champion into gold.scores")
    scored = _run_job(
        config,
        "jobs/score_batch.py",
        *("--start", test_start.isoformat(), "--end", (test_start + dt.timedelta(days=6)).isoformat()),
    )
    done("batch scores", _compact(scored))

    stage("9/11 exploration: data profile report (Spark aggregates, logged to MLflow)")
    profile = _run_job(config, "jobs/profile_data.py", "--start", size.start.isoformat(), "--end", size.end.isoformat())
    done("profile report", str(profile.get("report")))

    stage("10/11 SQL over the lake by table name, and a Kafka round trip through Structured Streaming")
    spark = build_spark_session(config, "demo-sql", register_tables=True)
    try:
        for title, query in DEMO_QUERIES.items():
            say(f"-- {title}")
            spark.sql(query).show(truncate=False)
    finally:
        spark.stop()
    done("sql", "silver, quarantine and audit tables queried by name")
    smoke = _run_job(config, "jobs/smoke_pipeline.py", "--events", "1000")
    summary.append(("kafka + streaming", f"{smoke['events_landed']}/{smoke['events_written']} events round-tripped"))

    stage("11/11 real time: the scoring stream (Kafka -> online features -> champion -> Delta, alerts to Kafka)")
    summary.append(("stream", _demo_stream(config, start=test_start, say=say)))

    say(f"\n==> demo finished in {time.monotonic() - started:.0f}s")
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        say(f"  {name:<{width}}  {value}")
    say(
        "\nwhere to look:\n"
        '  lakestream sql "SHOW TABLES IN silver"           query the lake by name (see docs/sql.md)\n'
        f"  {profile.get('report')}\n"
        "                                                   the data profile (open in a browser)\n"
        "  lakestream mlflow start                          MLflow UI on "
        f"http://{config.mlflow.server.host}:{config.mlflow.server.port}\n"
        "  lakestream kafka status                          the broker and its topics\n"
        "  lakestream stream start | status | stop          the real-time scoring stream (gold.stream_scores)\n"
        "  make stop                                        stop everything; make clean removes all state"
    )
    return 0


STREAM_QUERIES = {
    "stream: decisions and latency per model version": """
        SELECT model_version, decision, count(*) AS transactions, round(avg(score), 4) AS mean_score
        FROM gold.stream_scores GROUP BY model_version, decision ORDER BY model_version, decision""",
    "stream: dead-letter reasons": """
        SELECT reason, count(*) AS records, min(detail) AS example
        FROM quarantine.stream_dead_letter GROUP BY reason ORDER BY records DESC""",
    "stream vs batch: the same transactions scored by the same champion": """
        SELECT count(*) AS transactions, max(abs(s.score - b.score)) AS max_score_difference,
               sum(CASE WHEN s.decision <> b.decision THEN 1 ELSE 0 END) AS different_decisions
        FROM gold.stream_scores s JOIN gold.scores b USING (transaction_id)
        WHERE s.model_version = b.model_version""",
    "stream: micro-batches": """
        SELECT count(*) AS batches, sum(scored) AS scored, sum(alerts) AS alerts,
               percentile(latency_p50_ms, 0.5) AS median_p50_ms, max(latency_p99_ms) AS worst_p99_ms
        FROM gold.stream_metrics""",
}


def _demo_stream(config: LakestreamConfig, *, start: dt.date, say: Callable[[str], None]) -> str:
    """Start the stream (warm state from silver), replay a week through Kafka plus bad records, show the tables."""
    from lakestream.io.kafka import build_consumer, build_producer
    from lakestream.streaming.service import latest_metrics, scored_rows, start_stream_service, stop_stream_service

    begin = dt.datetime.combine(start, dt.time())
    end = begin + dt.timedelta(days=7)
    status = start_stream_service(config, ["--bootstrap-until", begin.isoformat(sep=" ")])
    say(f"    stream running (pid {status.pid}, log {status.log_file})")
    try:
        sent = _run_job(
            config, "jobs/replay_stream_events.py", "--start", begin.isoformat(sep=" "), "--end", end.isoformat(sep=" ")
        )
        producer = build_producer(config.kafka)
        for value in (b"{not json", b"\x00\xff poison", b'{"transaction_id": 1, "tx_amount": -5}'):
            producer.send(config.kafka.topics.transactions.name, value=value)
        producer.flush()
        producer.close()
        say(
            f"    replayed {sent.get('transactions')} transactions and {sent.get('fraud_labels')} chargebacks, "
            "plus 3 bad records"
        )
        deadline = time.monotonic() + 900
        scored = 0
        while time.monotonic() < deadline:
            rows = scored_rows(config)
            if rows >= sent.get("transactions", 0):
                scored = rows
                break
            latest = latest_metrics(config)
            progress = f"last batch {latest['batch_id']}" if latest else "first batch running (it loads the state)"
            say(f"    ... {rows} scored so far ({progress})")
            time.sleep(5)
    finally:
        stop_stream_service(config)
    spark = build_spark_session(config, "demo-stream-sql", register_tables=True)
    try:
        for title, query in STREAM_QUERIES.items():
            say(f"-- {title}")
            spark.sql(query).show(truncate=False)
    finally:
        spark.stop()
    alerts_topic = config.kafka.topics.fraud_alerts.name
    say(f"-- stream: the first alerts on the {alerts_topic} topic (key = transaction id)")
    consumer = build_consumer(config.kafka, alerts_topic, consumer_timeout_ms=5000)
    try:
        for _, message in zip(range(5), consumer, strict=False):
            say(f"    {message.key.decode()}: {message.value.decode()}")
    finally:
        consumer.close()
    return f"{scored} transactions scored once each, alerts on topic {alerts_topic}"


def _compact(summary: dict[str, Any], prefix: str = "") -> str:
    """The numbers of a job's JSON summary on one line (one level of nesting flattened)."""
    parts = []
    for key, value in summary.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            parts.append(f"{prefix}{key}={value}")
        elif isinstance(value, dict) and not prefix:
            parts.append(_compact(value, prefix=f"{key}."))
    return ", ".join(p for p in parts if p)[:300] or "ok"
