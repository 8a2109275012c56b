"""`make demo`: the whole system on one machine, from a clean state, with progress and a summary of figures.

It runs in its own environment (``conf/demo.yaml``, state under ``var/demo``; every run starts from a clean
state) on the local stack the project starts itself:

1. the stack: Kafka broker (KRaft), MLflow server, Airflow standalone (scheduler, UI), the dashboard;
2. simulation of the book's generator (1,000 customers x 125 days by default; ``--full``: the book's size) with
   bad records, duplicates, late events and, from a given day, a new fraud pattern (card testing at night);
3. the batch half **through Airflow**: a range run of ``lakestream_daily`` (ingest -> clean with quarantine ->
   fraud_v2 features -> scoring -> data profile) and a run of ``lakestream_training`` (short Optuna tuning,
   train, evaluate, gate, promote the first champion), both recorded in Airflow;
4. the scoring stream (state warmed from silver) while the days around the drift are replayed through Kafka
   with malformed records;
5. ``lakestream_monitoring`` on the drift's first day flags it; on the following weeks it asks for a retraining,
   which the scheduler runs (``lakestream_retraining``, triggered by the asset event); the new champion passes the
   gate and the running stream hot-swaps to it; later days are scored by it and their label-delayed performance
   is measured;
6. a summary: figures of every stage, where to look (SQL, MLflow, Airflow, dashboard, report). The services keep
   running for a look around; ``make stop`` stops them, ``make clean`` removes all state.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakestream.config.models import LakestreamConfig
from lakestream.errors import LakestreamError

DEMO_ENV = "demo"
SQL_QUERIES = {
    "quarantine reasons of the batch path": """
        SELECT kind, rule, count(*) AS records
        FROM quarantine.records LATERAL VIEW explode(rules) broken AS rule
        GROUP BY kind, rule ORDER BY records DESC LIMIT 8""",
    "stream decisions per model version": """
        SELECT model_version, decision, count(*) AS transactions, round(avg(score), 4) AS mean_score
        FROM gold.stream_scores GROUP BY model_version, decision ORDER BY model_version, decision""",
    "stream dead letters": """
        SELECT reason, count(*) AS records FROM quarantine.stream_dead_letter GROUP BY reason ORDER BY records DESC""",
    "monitoring alerts per rule": """
        SELECT rule, model_version, count(*) AS windows, min(since) AS since, round(max(excess), 4) AS worst_excess
        FROM monitoring.alerts GROUP BY rule, model_version ORDER BY since""",
}


@dataclass(frozen=True)
class DemoSize:
    """How much data the demo simulates, and when the drift starts (day index)."""

    customers: int
    terminals: int
    days: int
    drift_day: int
    drift_terminals_per_day: int
    drift_transactions_per_terminal: int
    start: dt.date = dt.date(2018, 4, 1)

    def day(self, index: int) -> dt.date:
        """The calendar day of a day index."""
        return self.start + dt.timedelta(days=index)

    @property
    def end(self) -> dt.date:
        """Last simulated day."""
        return self.day(self.days - 1)


# fraud_v2's longest window is 60 days + the 7-day label delay: the first champion trains after that warm-up,
# the drift starts a few days later, and the simulation runs long enough for the retraining and its labels.
QUICK = DemoSize(1000, 2000, 125, 92, 4, 40)
FULL = DemoSize(5000, 10000, 183, 150, 4, 40)


class Stage:
    """Progress lines and the summary of the demo's stages."""

    def __init__(self, say: Callable[[str], None], total: int) -> None:
        self.say, self.total, self.index = say, total, 0
        self.started = time.monotonic()
        self.clock = time.monotonic()
        self.summary: list[tuple[str, str]] = []

    def begin(self, title: str) -> None:
        """Announce the next stage."""
        self.index += 1
        self.clock = time.monotonic()
        self.say(f"\n==> {self.index}/{self.total} {title}")

    def note(self, text: str) -> None:
        """A progress line."""
        self.say(f"    {text}")

    def done(self, name: str, text: str) -> None:
        """Close the stage with its figures (kept for the summary)."""
        self.summary.append((name, f"{text} ({time.monotonic() - self.clock:.0f}s)"))
        self.say(f"    {text}")


def demo_config(*, overrides: dict[str, Any] | None = None) -> LakestreamConfig:
    """The demo's configuration (conf/demo.yaml over base.yaml, then the environment)."""
    from lakestream.config import load_config

    return load_config(DEMO_ENV, overrides=overrides)


def run_demo(config: LakestreamConfig, *, full: bool = False, say: Callable[[str], None] = print) -> int:
    """Run every stage in order; print progress and a closing summary. 0 on success."""
    from lakestream.monitoring.dashboard import dashboard_url, start_dashboard
    from lakestream.orchestration.airflow_server import run_dag_now, start_airflow, unpause_dag
    from lakestream.platform.kafka_broker import start_broker
    from lakestream.registry.tracking import start_mlflow_server

    size = FULL if full else QUICK
    stage = Stage(say, 7)
    _reset_state(config, say)

    stage.begin("local stack: Kafka broker, MLflow server, Airflow standalone, dashboard")
    broker = start_broker(config)
    mlflow = start_mlflow_server(config)
    airflow = start_airflow(config)
    unpause_dag(config, "lakestream_retraining")  # the scheduler runs it when monitoring asks (asset event)
    dashboard = start_dashboard(config)
    stage.done(
        "stack",
        f"Kafka {broker.address}, MLflow {mlflow.address}, Airflow {airflow.address}, dashboard {dashboard.address}",
    )

    stage.begin(
        f"simulate {size.customers:,} customers x {size.terminals:,} terminals x {size.days} days "
        f"({size.start}..{size.end}); a new fraud pattern from {size.day(size.drift_day)}"
    )
    sim = _run_job(
        config,
        "jobs/generate_transactions.py",
        *("--customers", str(size.customers), "--terminals", str(size.terminals), "--days", str(size.days)),
        *("--malformed-share", "0.001", "--duplicate-share", "0.001", "--late-share", "0.001"),
        *("--drift-from-day", str(size.drift_day), "--drift-kind", "new_fraud_pattern"),
        *("--drift-terminals-per-day", str(size.drift_terminals_per_day)),
        *("--drift-transactions-per-terminal", str(size.drift_transactions_per_terminal)),
    )
    stage.done("simulated", f"{sim.get('transactions'):,} transactions, {sim.get('frauds'):,} frauds, landed as files")

    stage.begin("batch pipeline through Airflow: lakestream_daily over every day, then lakestream_training")
    stage.note("lakestream_daily: ingest -> clean (quarantine) -> fraud_v2 features -> score -> profile")
    run_dag_now(
        config,
        "lakestream_daily",
        size.day(size.days).isoformat(),
        conf={"start": size.start.isoformat(), "end": size.end.isoformat()},
        progress=stage.note,
    )
    audit = _audit_counts(config)
    stage.note(
        f"bronze {audit['input']:,} lines -> silver {audit['silver']:,}, quarantine {audit['quarantined']:,}, "
        f"duplicates {audit['duplicates']:,}"
    )
    first_as_of = size.day(size.drift_day - 2)
    trials = config.training.tuning.n_trials
    stage.note(f"lakestream_training as of {first_as_of}: {trials} Optuna trials, train, evaluate, gate, promote")
    run_dag_now(
        config,
        "lakestream_training",
        first_as_of.isoformat(),
        conf={"as_of": first_as_of.isoformat(), "trials": trials},
        progress=stage.note,
    )
    champion = _champion(config)
    stage.done(
        "batch (Airflow)",
        f"daily: {audit['silver']:,} silver transactions, {audit['quarantined']:,} quarantined; training: champion "
        f"v{champion['version']} ({champion['feature_set']}, test AP {champion['test_ap']}, "
        f"AUC {champion['test_auc']})",
    )
    _print_book_comparison(config, champion, say)

    warm = size.day(size.drift_day - 4)
    phase_one_end = size.day(size.drift_day + 19)
    phase_two_end = size.day(size.drift_day + 24)
    stage.begin(f"real time: the scoring stream, state warmed from silver until {warm}; replay {warm}..{phase_one_end}")
    scored_one = _stream_phase_one(config, warm=warm, end=phase_one_end, stage=stage)
    stage.done("stream", scored_one)

    drift = size.day(size.drift_day)
    stage.begin("monitoring through Airflow: the drift's first day, then the weeks after it")
    run_dag_now(
        config,
        "lakestream_monitoring",
        f"{drift + dt.timedelta(days=1)}T00:15:00+00:00",
        conf={"day": drift.isoformat()},
        progress=stage.note,
    )
    first_alerts = _alerts(config, window=drift)
    for message in first_alerts[:4]:
        stage.note(f"ALERT {message}")
    known = {run["run_id"] for run in _retraining_runs(config)}
    run_dag_now(
        config,
        "lakestream_monitoring",
        f"{phase_one_end + dt.timedelta(days=1)}T00:15:00+00:00",
        conf={"start": (drift + dt.timedelta(days=1)).isoformat(), "end": phase_one_end.isoformat()},
        progress=stage.note,
    )
    decision = _latest_decision(config)
    stage.note(f"retraining decision: {decision['reason']}")
    stage.done(
        "monitoring",
        f"{len(first_alerts)} alert(s) on {drift}, the drift's first day (detection delay: 0 days of event "
        f"time); retraining requested as of {decision['as_of']}",
    )

    stage.begin("closed loop: the scheduler runs lakestream_retraining; the stream hot-swaps to the new champion")
    retrained = _wait_for_retraining(config, known=known, stage=stage)
    scored_two = _stream_phase_two(config, start=phase_one_end + dt.timedelta(days=1), end=phase_two_end, stage=stage)
    perf_start, perf_end = phase_two_end + dt.timedelta(days=3), phase_two_end + dt.timedelta(days=7)
    run_dag_now(
        config,
        "lakestream_monitoring",
        f"{perf_end + dt.timedelta(days=1)}T00:15:00+00:00",
        conf={"start": perf_start.isoformat(), "end": perf_end.isoformat()},
        progress=stage.note,
    )
    recovery = _performance_recovery(
        config, drift=drift, swap=phase_one_end, end=phase_two_end, old=champion["version"], new=retrained
    )
    stage.done(
        "closed loop",
        f"retrained v{retrained} promoted; {scored_two}; AP {recovery['ap_old']:.3f} -> {recovery['ap_new']:.3f}, "
        f"CP@{recovery['k']} {recovery['cp_old']:.3f} -> {recovery['cp_new']:.3f}",
    )

    throughput = _stream_figures(config)
    stage.summary.append(("stream figures", throughput))

    stage.begin("the lake by table name (Spark SQL)")
    _show_queries(config, say)
    stage.done("sql", "queried quarantine, stream, dead-letter and monitoring tables by name")

    say(f"\n==> demo finished in {time.monotonic() - stage.started:.0f}s")
    width = max(len(name) for name, _ in stage.summary)
    for name, value in stage.summary:
        say(f"  {name:<{width}}  {value}")
    report = config.paths.reports_dir / "monitoring" / "latest.html"
    say(
        "\nwhere to look (the services keep running; `make stop` stops them, `make clean` removes all state):\n"
        f"  Airflow UI      http://{airflow.address}   (DAG runs: daily, training, monitoring, retraining)\n"
        f"  MLflow UI       http://{mlflow.address}    (experiments lakestream, lakestream-monitoring; the registry)\n"
        f"  dashboard       {dashboard_url(config)}    (alert feed, decisions per minute, drift, performance)\n"
        f"  report          {report}\n"
        f'  SQL             LAKESTREAM_ENV=demo .venv/bin/lakestream sql "SELECT * FROM monitoring.alerts LIMIT 5"\n'
        "  docs            README.md, docs/sql.md (tables and queries)"
    )
    return 0


# ------------------------------------------------------------------------------------------------- helpers


def _reset_state(config: LakestreamConfig, say: Callable[[str], None]) -> None:
    """Stop the demo's services and remove its state: every demo run starts clean and ends the same way."""
    from lakestream.monitoring.dashboard import stop_dashboard
    from lakestream.orchestration.airflow_server import stop_airflow
    from lakestream.platform.kafka_broker import stop_broker
    from lakestream.registry.tracking import stop_mlflow_server
    from lakestream.streaming.service import stop_stream_service

    for stop in (stop_airflow, stop_dashboard, stop_stream_service, stop_mlflow_server, stop_broker):
        stop(config)
    state = config.paths.state_dir
    if state.exists():
        say(f"demo: starting from a clean state (removing {state})")
        shutil.rmtree(state)


def _run_job(config: LakestreamConfig, script: str, *args: str) -> dict[str, Any]:
    """spark-submit a job as a user would; its JSON summary, or LakestreamError with the end of its log."""
    from lakestream.spark import build_submit_command, submit_environment

    command = build_submit_command(config, config.home / script, args)
    result = subprocess.run(command, env=submit_environment(config), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LakestreamError(
            f"{script} failed with exit code {result.returncode}:\n{result.stderr[-3000:]}\n"
            f"re-run it alone with `LAKESTREAM_ENV=demo lakestream submit {script} {' '.join(args)}`"
        )
    last = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(last[-1]) if last else {}


def _read(config: LakestreamConfig, database: str, table: str, columns: list[str] | None = None) -> Any:
    from lakestream.monitoring.dashboard import read_table

    return read_table(config.table_path(database, table), columns)


def _audit_counts(config: LakestreamConfig) -> dict[str, int]:
    audit = _read(config, "quality", "ingest_audit")
    silver = audit[(audit["stage"] == "silver") & (audit["kind"] == "transactions")]
    bronze = audit[(audit["stage"] == "bronze") & (audit["kind"] == "transactions")]
    return {
        "input": int(bronze["input_rows"].sum()),
        "silver": int(silver["silver_rows"].sum()),
        "quarantined": int(silver["quarantined_rows"].sum()),
        "duplicates": int(silver["duplicate_rows"].sum()),
    }


def _champion(config: LakestreamConfig) -> dict[str, str]:
    from mlflow import MlflowClient

    from lakestream.registry.models import CHAMPION, resolve_version
    from lakestream.registry.tracking import configure_mlflow

    configure_mlflow(config)
    version = resolve_version(MlflowClient(), config.mlflow.registered_model, CHAMPION)
    tags = version.tags or {}
    return {
        "version": str(version.version),
        "feature_set": tags.get("lakestream.feature_set", "?"),
        "test_ap": tags.get("lakestream.test_average_precision", "?"),
        "test_auc": tags.get("lakestream.test_auc_roc", "?"),
        "test_cp": tags.get(f"lakestream.test_card_precision_at_{config.training.evaluation.top_k}", "?"),
    }


def _print_book_comparison(config: LakestreamConfig, champion: dict[str, str], say: Callable[[str], None]) -> None:
    """The book's table next to ours on the book's dataset (benchmarks) and the demo champion's own test window."""
    rows: list[tuple[str, tuple[Any, Any, Any]]] = []
    path = config.home / "benchmarks" / "results" / "model_quality.json"
    keys = ("auc_roc", "average_precision", "card_precision_at_100")
    if path.exists():
        results = json.loads(path.read_text())
        book = results.get("book", {})
        ours = results.get("single_split_fraud_v1", {}).get("xgboost_exact_book_settings")
        tuned = results.get("prequential_fraud_v2_tuned", {}).get("prequential_test")
        if "xgboost_chapter3" in book:
            rows.append(("book: XGBoost, chapter 3 (single split)", tuple(book["xgboost_chapter3"][k] for k in keys)))
        if ours:
            rows.append(("ours: same settings, book dataset", tuple(ours[k] for k in keys)))
        if "best_in_book_prequential" in book:
            rows.append(("book: best in the whole book", tuple(book["best_in_book_prequential"][k] for k in keys)))
        if tuned:
            rows.append(("ours: tuned fraud_v2, prequential (mean)", tuple(tuned[f"{k}_mean"] for k in keys)))
    say("    model quality, AUC / AP / CP@100 (benchmarks/model_quality.py on the book's dataset):")
    k = config.training.evaluation.top_k
    for label, values in rows:
        say(f"      {label:<44} " + " / ".join(f"{float(v):.3f}" for v in values))
    say(
        f"      {'this demo champion, its 3-day test window':<44} {champion['test_auc']} / {champion['test_ap']} / "
        f"{champion['test_cp']} (CP@{k}; a smaller simulation, not comparable)"
    )


def _stream_phase_one(config: LakestreamConfig, *, warm: dt.date, end: dt.date, stage: Stage) -> str:
    from lakestream.io.kafka import build_producer
    from lakestream.streaming.service import start_stream_service

    status = start_stream_service(config, ["--bootstrap-until", f"{warm} 00:00:00"])
    stage.note(f"stream running (pid {status.pid}, log {status.log_file})")
    sent = _run_job(
        config,
        "jobs/replay_stream_events.py",
        "--start",
        f"{warm} 00:00:00",
        "--end",
        f"{end + dt.timedelta(days=1)} 00:00:00",
    )
    producer = build_producer(config.kafka)
    for value in (b"{not json", b"\x00\xff poison", b'{"transaction_id": 1, "tx_amount": -5}'):
        producer.send(config.kafka.topics.transactions.name, value=value)
    producer.flush()
    producer.close()
    stage.note(
        f"replayed {sent.get('transactions'):,} transactions, {sent.get('fraud_labels'):,} chargebacks, 3 bad records"
    )
    _wait_scored(config, sent.get("transactions", 0), stage)
    return f"{sent.get('transactions'):,} transactions scored once each by v{_champion(config)['version']}"


def _wait_scored(config: LakestreamConfig, expected: int, stage: Stage, *, timeout_s: float = 1800.0) -> None:
    from lakestream.streaming.service import latest_metrics, scored_rows

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = scored_rows(config)
        if rows >= expected:
            return
        latest = latest_metrics(config)
        progress = f"batch {latest['batch_id']}" if latest else "first batch running (it loads the state)"
        stage.note(f"... {rows:,} of {expected:,} scored ({progress})")
        time.sleep(10)
    raise LakestreamError(f"the stream scored {scored_rows(config)} of {expected} in {timeout_s:.0f}s; see its log")


def _stream_phase_two(config: LakestreamConfig, *, start: dt.date, end: dt.date, stage: Stage) -> str:
    from lakestream.streaming.service import scored_rows

    before = scored_rows(config)
    sent = _run_job(
        config,
        "jobs/replay_stream_events.py",
        "--start",
        f"{start} 00:00:00",
        "--end",
        f"{end + dt.timedelta(days=1)} 00:00:00",
    )
    _wait_scored(config, before + sent.get("transactions", 0), stage)
    scores = _read(config, "gold", config.streaming.scores_table, ["tx_date", "model_version"])
    later = scores[scores["tx_date"] >= start]
    versions = ", ".join(f"v{v}: {n:,}" for v, n in later["model_version"].value_counts().sort_index().items())
    return f"{start}..{end} scored by {versions}"


def _stream_figures(config: LakestreamConfig) -> str:
    """Micro-batches, transactions/s while busy, latency (Kafka append to commit) and dead letters of the stream."""
    metrics = _read(config, "gold", config.streaming.metrics_table)
    letters = _read(config, "quarantine", config.streaming.dead_letter_table, ["reason"])
    busy = metrics[metrics["scored"] > 0]
    rate = busy["scored"].sum() / max(busy["duration_ms"].sum() / 1000, 1e-9)
    return (
        f"{len(metrics)} micro-batches, {int(busy['scored'].sum()):,} scored at {rate:,.0f} transactions/s while "
        f"busy; median batch p50 latency {busy['latency_p50_ms'].median() / 1000:.1f}s, worst p99 "
        f"{busy['latency_p99_ms'].max() / 1000:.1f}s (a replay: events queue before the stream reads them); "
        f"{0 if letters is None else len(letters)} dead letters"
    )


def _alerts(config: LakestreamConfig, *, window: dt.date) -> list[str]:
    alerts = _read(config, "monitoring", config.monitoring.alerts_table, ["window_start", "message"])
    if alerts is None:
        return []
    day = alerts[alerts["window_start"].dt.date == window]
    return list(day["message"])


def _latest_decision(config: LakestreamConfig) -> dict[str, Any]:
    decisions = _read(config, "monitoring", config.monitoring.decisions_table)
    row = decisions.sort_values("decided_at").iloc[-1]
    return {"needed": bool(row["needed"]), "reason": row["reason"], "as_of": row["as_of"]}


def _retraining_runs(config: LakestreamConfig) -> list[dict]:
    from lakestream.orchestration.airflow_server import dag_runs

    return dag_runs(config, "lakestream_retraining")


def _wait_for_retraining(config: LakestreamConfig, *, known: set[str], stage: Stage) -> str:
    from lakestream.orchestration.airflow_server import wait_for_new_run

    stage.note("waiting for the scheduler's lakestream_retraining run (asset event from monitoring)")
    run = wait_for_new_run(config, "lakestream_retraining", known=known)
    champion = _champion(config)
    stage.note(f"retraining run {run['run_id']}: {run['state']}; champion is now v{champion['version']}")
    return champion["version"]


def _performance_recovery(
    config: LakestreamConfig, *, drift: dt.date, swap: dt.date, end: dt.date, old: str, new: str
) -> dict[str, Any]:
    metrics = _read(config, "monitoring", config.monitoring.metrics_table)
    perf = metrics[(metrics["family"] == "performance") & metrics["value"].notna()]
    days = perf["window_start"].dt.date

    def mean(metric: str, version: str, first: dt.date, last: dt.date) -> float:
        rows = perf[(perf["metric"] == metric) & (perf["model_version"] == version) & (days >= first) & (days <= last)]
        return float(rows["value"].mean()) if len(rows) else float("nan")

    drifted = (drift, swap - dt.timedelta(days=config.training.split.delay_days))
    after = (swap + dt.timedelta(days=1), end)
    return {
        "k": config.monitoring.card_precision_k or config.training.evaluation.top_k,
        "ap_old": mean("average_precision", old, *drifted),
        "ap_new": mean("average_precision", new, *after),
        "cp_old": mean("card_precision", old, *drifted),
        "cp_new": mean("card_precision", new, *after),
    }


def _show_queries(config: LakestreamConfig, say: Callable[[str], None]) -> None:
    from lakestream.spark import build_spark_session

    spark = build_spark_session(config, "demo-sql", register_tables=True)
    try:
        for title, query in SQL_QUERIES.items():
            say(f"-- {title}")
            spark.sql(query).show(truncate=False)
    finally:
        spark.stop()
