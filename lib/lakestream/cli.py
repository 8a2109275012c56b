"""`lakestream`: the front door to the local stack, the jobs and the lake.

Every subcommand has --help. Errors Lakestream raises on purpose are printed as one clear message
(what is wrong, what to do) with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lakestream.config import LakestreamConfig, load_config
from lakestream.errors import LakestreamError
from lakestream.logs import configure_logging

if TYPE_CHECKING:
    from lakestream.platform.process import ServiceStatus
    from lakestream.platform.spark_cluster import ClusterStatus

logger = logging.getLogger("lakestream")

Handler = Callable[[argparse.Namespace, LakestreamConfig], int]
Status = TypeVar("Status", "ServiceStatus", "ClusterStatus")  # what `lakestream <service> status` describes


def _cmd_setup_jars(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.platform.jars import (
        JarSet,
        build_local_fs_jar,
        check_java,
        check_maven,
        pyspark_jars_dir,
        resolve_jar_set,
    )

    print(f"java:  {check_java()}")
    print(f"maven: {check_maven().splitlines()[0]}")
    maven_dir = config.home / "conf" / "maven"
    sets = [
        JarSet("spark", maven_dir / "spark-jars.xml", config.spark.jars_dir, skip_artifacts_of=pyspark_jars_dir()),
        JarSet("kafka", maven_dir / "kafka-broker.xml", config.kafka.broker.jars_dir),
    ]
    for jar_set in sets:
        jars = resolve_jar_set(jar_set, force=args.force)
        print(f"{jar_set.name:>5} jars: {len(jars)} in {jar_set.target}")
    local_fs = build_local_fs_jar(config.spark.local_fs_jar, force=args.force)
    print(f"local fs jar: {local_fs or 'not built (no javac); Hadoop default local file system'}")
    return 0


def _cmd_config_show(args: argparse.Namespace, config: LakestreamConfig) -> int:
    import yaml

    data = json.loads(config.model_dump_json())
    data["resolved"] = {"tracking_uri": config.tracking_uri, "registry_uri": config.registry_uri}
    print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _cmd_kafka(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.io.kafka import ensure_topics, list_topics
    from lakestream.platform.kafka_broker import broker_status, start_broker, stop_broker

    if args.action == "start":
        status = start_broker(config)
        print(status.describe())
        print(f"topics: {', '.join(list_topics(config.kafka))}")
    elif args.action == "stop":
        print("kafka: stopped" if stop_broker(config) else "kafka: was not running")
    elif args.action == "status":
        status = broker_status(config)
        print(status.describe())
        if status.running:
            print(f"topics: {', '.join(list_topics(config.kafka))}")
        return 0 if status.running else 3
    elif args.action == "topics":
        created = ensure_topics(config.kafka)
        print(f"created: {', '.join(created) or 'none'}; topics: {', '.join(list_topics(config.kafka))}")
    return 0


def _service_action(
    action: str,
    name: str,
    *,
    start: Callable[[], Status],
    stop: Callable[[], bool],
    status: Callable[[], Status],
    started_note: Callable[[Status], str],
    status_note: str = "",
) -> int:
    """start | stop | status of a pid-file-managed service; status exits 3 when it is not running."""
    if action == "start":
        current = start()
        print(current.describe())
        print(started_note(current))
    elif action == "stop":
        print(f"{name}: stopped" if stop() else f"{name}: was not running")
    else:
        current = status()
        print(current.describe())
        if status_note:
            print(status_note)
        return 0 if current.running else 3
    return 0


def _cmd_mlflow(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.registry.tracking import mlflow_server_service, start_mlflow_server, stop_mlflow_server

    server = config.mlflow.server
    return _service_action(
        args.action,
        "mlflow",
        start=lambda: start_mlflow_server(config),
        stop=lambda: stop_mlflow_server(config),
        status=lambda: mlflow_server_service(config).status(),
        started_note=lambda _: f"MLflow UI: http://{server.host}:{server.port}",
        status_note=f"tracking store: {config.tracking_uri}",
    )


def _cmd_airflow(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.orchestration.airflow_server import airflow_home, airflow_service, start_airflow, stop_airflow

    return _service_action(
        args.action,
        "airflow",
        start=lambda: start_airflow(config, port=args.port),
        stop=lambda: stop_airflow(config, port=args.port),
        status=lambda: airflow_service(config, port=args.port).status(),
        started_note=lambda status: (
            f"Airflow UI: http://{status.address} (DAGs start paused; AIRFLOW_HOME={airflow_home(config)})"
        ),
    )


def _cmd_dashboard(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.monitoring.dashboard import dashboard_service, dashboard_url, start_dashboard, stop_dashboard

    return _service_action(
        args.action,
        "dashboard",
        start=lambda: start_dashboard(config),
        stop=lambda: stop_dashboard(config),
        status=lambda: dashboard_service(config).status(),
        started_note=lambda _: f"dashboard: {dashboard_url(config)}",
    )


def _cmd_cluster(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.platform.spark_cluster import cluster_status, start_cluster, stop_cluster

    return _service_action(
        args.action,
        "spark cluster",
        start=lambda: start_cluster(config),
        stop=lambda: stop_cluster(config),
        status=lambda: cluster_status(config),
        started_note=lambda status: f"use it with: lakestream submit --master {status.url} jobs/<job>.py ...",
    )


def _cmd_submit(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.spark import build_submit_command, submit_environment

    script = Path(args.script)
    job_args = list(args.job_args)
    if job_args[:1] == ["--"]:  # `submit job.py -- --flag`: the separator is ours, not the job's
        job_args = job_args[1:]
    if not script.exists():
        raise LakestreamError(f"no such job script: {script}; see jobs/ and streaming/ for the entry points")
    command = build_submit_command(config, script, job_args, master=args.master)
    logger.info("spark-submit %s %s", script, " ".join(job_args))
    if args.dry_run:
        print(" ".join(command))
        return 0
    return subprocess.run(command, env=submit_environment(config), check=False).returncode


def _cmd_replay(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.simulate.replay import replay_landed_events, topic_for

    sent = replay_landed_events(
        config,
        kind=args.kind,
        from_date=args.from_date,
        to_date=args.to_date,
        speed=None if args.as_fast_as_possible else args.speed,
        progress_every=args.progress_every,
    )
    print(f"replayed {sent} {args.kind} events to topic {topic_for(config, args.kind).name}")
    return 0


def _cmd_spark_args(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.spark import build_submit_command

    command = build_submit_command(config, Path("JOB.py"))
    print(" ".join(command[1:-1]))
    return 0


def _cmd_sql(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.spark import build_spark_session

    spark = build_spark_session(config, "sql", register_tables=True)
    try:
        result = spark.sql(args.query)
        if args.format == "table":
            result.show(args.limit, truncate=False)
        else:
            rows = [row.asDict(recursive=True) for row in result.limit(args.limit).collect()]
            print(json.dumps(rows, default=str, indent=1))
    finally:
        spark.stop()
    return 0


def _cmd_replay_quarantine(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.quality.kinds import get_event_kind
    from lakestream.quality.replay import replay_quarantine
    from lakestream.spark import build_spark_session

    spark = build_spark_session(config, "replay-quarantine")
    try:
        results = [
            replay_quarantine(
                spark, config, kind=get_event_kind(kind), rules=args.rule, start=args.start_date, end=args.end_date
            )
            for kind in args.kind or ("transactions", "fraud_labels")
        ]
    finally:
        spark.stop()
    for result in results:
        logger.info(
            "%s: %d replayed, %d promoted to silver, %d duplicates, %d still quarantined",
            result.kind,
            result.selected_rows,
            result.promoted_rows,
            result.duplicate_rows,
            result.still_quarantined_rows,
        )
    print(json.dumps({result.kind: result.to_dict() for result in results}))
    return 0


def _cmd_stream(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.streaming.service import start_stream_service, stop_stream_service, stream_status

    if args.action == "start":
        extra = ["--bootstrap-until", args.bootstrap_until] if args.bootstrap_until else []
        status = start_stream_service(config, extra)
        print(f"stream: running (pid {status.pid}); log {status.log_file}")
    elif args.action == "stop":
        print("stream: stopped" if stop_stream_service(config) else "stream: was not running")
    else:
        print(json.dumps(stream_status(config), indent=2))
    return 0


def _cmd_stop(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.monitoring.dashboard import stop_dashboard
    from lakestream.orchestration.airflow_server import stop_airflow
    from lakestream.platform.kafka_broker import stop_broker
    from lakestream.platform.spark_cluster import stop_cluster
    from lakestream.registry.tracking import stop_mlflow_server
    from lakestream.streaming.service import stop_stream_service

    # Airflow first: its tasks submit jobs to the services stopped after it.
    services = (
        ("airflow", stop_airflow),
        ("dashboard", stop_dashboard),
        ("spark cluster", stop_cluster),
        ("stream", stop_stream_service),
        ("mlflow", stop_mlflow_server),
        ("kafka", stop_broker),
    )
    for name, stop in services:
        print(f"{name}: {'stopped' if stop(config) else 'not running'}")
    return 0


def _cmd_demo(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from lakestream.demo import DEMO_ENV, demo_config, run_demo

    if config.env != DEMO_ENV:
        config = demo_config()  # the demo always runs in its own environment (conf/demo.yaml, var/demo)
    return run_demo(config, full=args.full)


def _cmd_models(args: argparse.Namespace, config: LakestreamConfig) -> int:
    from mlflow import MlflowClient

    from lakestream.registry.models import describe_versions
    from lakestream.registry.tracking import configure_mlflow

    configure_mlflow(config)
    rows = describe_versions(MlflowClient(), config.mlflow.registered_model)
    if args.format == "json":
        print(json.dumps(rows))
    elif not rows:
        print(f"no versions of {config.mlflow.registered_model} yet; train one with jobs/train_model.py")
    else:
        widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in rows[0]}
        print("  ".join(key.ljust(width) for key, width in widths.items()))
        for row in rows:
            print("  ".join(row[key].ljust(width) for key, width in widths.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="lakestream",
        description="Lakestream: batch + streaming ML on the lakehouse (Spark, Delta, Kafka, XGBoost, MLflow).",
    )
    parser.add_argument("--env", help="configuration environment (conf/<env>.yaml; default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setup = sub.add_parser("setup", help="resolve local prerequisites").add_subparsers(dest="what", required=True)
    jars = setup.add_parser(
        "jars", help="resolve the JVM jars (Delta, Kafka connector, Kafka broker) with Maven; compile the local FS jar"
    )
    jars.add_argument("--force", action="store_true", help="resolve again even if up to date")
    jars.set_defaults(handler=_cmd_setup_jars)

    config = sub.add_parser("config", help="inspect configuration").add_subparsers(dest="what", required=True)
    config.add_parser("show", help="print the resolved configuration").set_defaults(handler=_cmd_config_show)

    kafka = sub.add_parser("kafka", help="the local Kafka broker (KRaft, single node, loopback)")
    kafka.add_argument("action", choices=["start", "stop", "status", "topics"], help="topics: create missing topics")
    kafka.set_defaults(handler=_cmd_kafka)

    mlflow = sub.add_parser("mlflow", help="the local MLflow server (UI over the SQLite store)")
    mlflow.add_argument("action", choices=["start", "stop", "status"])
    mlflow.set_defaults(handler=_cmd_mlflow)

    airflow = sub.add_parser(
        "airflow",
        help="local Airflow standalone (UI, scheduler) over the project's dags/",
        description="Airflow standalone on SQLite under <state_dir>/airflow, the project's dags/ folder and the "
        "lakestream_spark connection at local[*] (export AIRFLOW_CONN_LAKESTREAM_SPARK to change it).",
    )
    airflow.add_argument("action", choices=["start", "stop", "status"])
    airflow.add_argument("--port", type=int, default=8080, help="UI / API port on 127.0.0.1 (default 8080)")
    airflow.set_defaults(handler=_cmd_airflow)

    dashboard = sub.add_parser(
        "dashboard",
        help="the monitoring dashboard (FastAPI over the Delta tables, no JVM) in the background",
        description="Live alert feed, scores per minute, models in service, drift, label-delayed performance and "
        "dead-letter / quarantine reasons, on http://127.0.0.1:8050 (monitoring.dashboard in configuration).",
    )
    dashboard.add_argument("action", choices=["start", "stop", "status"])
    dashboard.set_defaults(handler=_cmd_dashboard)

    cluster = sub.add_parser(
        "cluster",
        help="a Spark standalone cluster on loopback (master + workers as separate processes)",
        description="Master on spark://127.0.0.1:7077 (UI :8090) and `cluster.workers` workers started with the "
        "installed pyspark's spark-class; jobs use it with `lakestream submit --master spark://127.0.0.1:7077`.",
    )
    cluster.add_argument("action", choices=["start", "stop", "status"])
    cluster.set_defaults(handler=_cmd_cluster)

    submit = sub.add_parser(
        "submit",
        help="spark-submit a job with the project's jars and settings",
        description="Run a jobs/ or streaming/ entry point through spark-submit with the same jars and "
        "settings a session gets. Arguments after the script go to the job.",
    )
    submit.add_argument("script", help="e.g. jobs/smoke_pipeline.py")
    submit.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments for the job")
    submit.add_argument("--master", help="override spark.master (e.g. spark://127.0.0.1:7077)")
    submit.add_argument("--dry-run", action="store_true", help="print the spark-submit command only")
    submit.set_defaults(handler=_cmd_submit)

    replay = sub.add_parser(
        "replay",
        help="replay landed transaction or fraud-label files into their Kafka topic",
        description="Send the landed JSON lines of <landing_root>/<kind>/date=YYYY-MM-DD/ to the configured topic, "
        "day by day in landed order (event-time order unless anomalies were injected), malformed lines as is, "
        "keyed by transaction id. Message timestamps are the send time.",
    )
    replay.add_argument("--kind", required=True, choices=["transactions", "fraud_labels"])
    replay.add_argument("--from-date", type=date.fromisoformat, help="first landing day, YYYY-MM-DD (default: first)")
    replay.add_argument("--to-date", type=date.fromisoformat, help="last landing day, inclusive (default: last)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=float, default=3600.0, help="event time runs this many times faster than wall time (3600)"
    )
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing: send as fast as Kafka takes it")
    replay.add_argument("--progress-every", type=int, default=10_000, help="log progress every N events")
    replay.set_defaults(handler=_cmd_replay)

    spark_args = sub.add_parser("spark-args", help="print the spark-submit flags (--jars, --conf) for other launchers")
    spark_args.set_defaults(handler=_cmd_spark_args)

    sql = sub.add_parser("sql", help="run Spark SQL over the lake tables (database.table names)")
    sql.add_argument("query", help='e.g. "SELECT * FROM smoke.events LIMIT 5"')
    sql.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    sql.add_argument("--format", choices=["table", "json"], default="table")
    sql.set_defaults(handler=_cmd_sql)

    replay_q = sub.add_parser(
        "replay-quarantine",
        help="re-process quarantined rows after a rule or producer fix (rows that pass now move to silver)",
        description="Re-classify quarantined rows with the configuration in force now: rows that pass are inserted "
        "into silver (never twice) and leave quarantine, exact re-sends of silver rows are recorded as duplicates, "
        "the rest stay quarantined with the rules they break now. Replaying twice changes nothing. Prints a JSON "
        "summary per kind.",
    )
    replay_q.add_argument(
        "--kind",
        action="append",
        choices=["transactions", "fraud_labels"],
        help="kind to replay; repeat for several (default: transactions then fraud_labels)",
    )
    replay_q.add_argument(
        "--rule", action="append", default=[], help="only rows breaking this rule (e.g. amount_out_of_range)"
    )
    replay_q.add_argument("--start-date", type=date.fromisoformat, help="first process day, YYYY-MM-DD")
    replay_q.add_argument("--end-date", type=date.fromisoformat, help="last process day, inclusive")
    replay_q.set_defaults(handler=_cmd_replay_quarantine)

    models = sub.add_parser(
        "models",
        help="list the versions of the registered fraud model: aliases, feature set, metrics, promotion outcome",
        description="Train with jobs/train_model.py, gate with jobs/promote_model.py, score with jobs/score_batch.py "
        "(all through `lakestream submit`); this lists what the registry holds.",
    )
    models.add_argument("--format", choices=["table", "json"], default="table")
    models.set_defaults(handler=_cmd_models)

    stream = sub.add_parser(
        "stream",
        help="the real-time scoring stream in the background (start | stop after the current batch | status)",
        description="Runs streaming/score_transactions.py through spark-submit; `status` shows the newest "
        "gold.stream_metrics row. Foreground runs: `lakestream submit streaming/score_transactions.py`.",
    )
    stream.add_argument("action", choices=["start", "stop", "status"])
    stream.add_argument("--bootstrap-until", help="start: warm the state from silver up to this time (new checkpoint)")
    stream.set_defaults(handler=_cmd_stream)

    sub.add_parser("stop", help="stop every local service the project started").set_defaults(handler=_cmd_stop)
    demo = sub.add_parser(
        "demo",
        help="run the end-to-end demo on the local stack (environment `demo`, state in var/demo, ~20 min)",
        description="Starts Kafka, MLflow, Airflow and the dashboard, simulates transactions with a fraud wave, runs "
        "the batch pipeline and training through Airflow, scores a replay in the stream, and lets monitoring "
        "trigger a retraining that the stream hot-swaps to. Every run starts from a clean var/demo.",
    )
    demo.add_argument("--full", action="store_true", help="simulate the book's full dataset (slower)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lakestream` command."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        return int(args.handler(args, config))
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`lakestream stream status | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
