"""Benchmark: the scoring stream end to end on this machine, and Kafka alone as its ceiling.

- ``kafka``: Kafka's own producer and consumer performance tools (kafka-tools, same broker) at 100 B and 1 KB
  records: the most this broker takes and serves on 2 cores, whatever the client.
- ``throughput``: the book's default dataset (silver of the benchmark lake built by benchmarks/model_quality.py);
  the online state is bootstrapped from silver up to 2018-05-08 (37 days of history), then ``--days`` of
  transactions and chargebacks are replayed into Kafka and the stream drains them (availableNow, micro-batches of
  ``--batch`` offsets) with stateful features and champion scoring. Reported: events/s from the first micro-batch's
  start to the last one's commit (``sustained``, the bootstrap batch included), after the first batch, and over the
  whole run including start-up. The defaults replay the rest of the dataset (140 days, 1.34M transactions) in batches
  of 200k offsets: a batch's fixed cost (trigger, state store commit, Python workers) is then paid every ~6 s,
  and the bootstrap batch weighs less than in a short replay (2026-12-06, 140 days: 17,379 events/s sustained with
  100k offsets, 20,427 with 200k, 20,857 with 300k).
- ``latency``: the stream runs continuously (trigger as fast as possible) while a paced producer sends live
  transactions at fixed rates (from a process of its own, in 10 ms bursts; the CPU it takes is reported as
  ``producer_cores``, and ``cpu_cores`` has the cores the other processes took while the measured events were
  sent: this benchmark's Python process, Spark's JVM, its Python workers and the Kafka broker); per row,
  latency = batch commit time - Kafka append time of the transaction, and for alerts, the alert's Kafka append
  time - the transaction's. The producer paces at the same rate for at least
  ``--latency-warmup-seconds`` before the measured ``--latency-seconds``, and on until the stream has caught up
  with its input (its last 3 micro-batches each with a median latency under 2 batch durations + 0.5 s), at most
  ``--latency-max-warmup-seconds`` (``caught_up_after_warmup`` says which ended it: false means the rate is above
  what the stream sustains next to the producer, and the latencies grow with the run). The first micro-batches after
  the warm start are slower (JIT, state store caches, Python workers starting). At 5,000/s the stream runs close to
  its capacity on this machine with the producer and the broker sharing its 2 cores: each batch takes about what
  its input took to arrive, whatever its size, so batch sizes wander (14k-26k transactions within one minute) and
  the percentiles depend on where they wandered. The warm-up's own percentiles are reported next to them.
- ``writers``: the first rate's latency run again with the scores and dead letters committed by Spark's Delta
  writer (``streaming.output_writer: spark``) next to the default driver-side commit, and their ratios.

Every run uses its own topics, checkpoints and latency tables; they stay for inspection until the next run
starts, which removes them (Kafka's perf topics are deleted as soon as they are measured).
Writes benchmarks/results/streaming.json.

    flock /tmp/lakestream-spark.lock .venv/bin/python benchmarks/streaming.py [--days 140] [--rates 1000,5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCH_LAKE = ROOT / "var" / "bench" / "training" / "lake"
STATE = ROOT / "var" / "bench" / "streaming"
WARM_UNTIL = dt.datetime(2018, 5, 8)
DEAD_LETTER = "bench_stream_dead_letter"
WARMUP_EVENTS = 200  # latency runs: events sent before the measured ones (their batch loads the bootstrap)
logger = logging.getLogger("benchmarks.streaming")


def kafka_tools(config, record_size: int, records: int) -> dict:
    """Producer then consumer performance of the broker with Kafka's own tools."""
    from lakestream.config.models import TopicConfig
    from lakestream.io.kafka import delete_topics, ensure_topics

    topic = f"perf-{record_size}-{int(time.time())}"  # a fresh topic: the consumer reads only this run's records
    ensure_topics(config.kafka, [TopicConfig(name=topic, partitions=2)])
    try:
        return _perf_tools(config, topic, record_size, records)
    finally:
        delete_topics(config.kafka, [topic])  # 2 GB of logs at 1 KB records


def _perf_tools(config, topic: str, record_size: int, records: int) -> dict:
    """ProducerPerformance, then ConsumerPerformance over the same records: records/s of each."""
    jars = str(ROOT / ".jars" / "kafka" / "*")
    base = ["java", "-Xmx512m", "-cp", jars]
    log4j = f"-Dlog4j2.configurationFile={ROOT / 'conf' / 'kafka' / 'log4j2.properties'}"
    produce = subprocess.run(
        [
            *base[:2],
            log4j,
            *base[2:],
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--command-property",
            f"bootstrap.servers={config.kafka.bootstrap_servers}",
            "acks=1",
            "linger.ms=5",
            "batch.size=262144",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    last = [line for line in produce.stdout.splitlines() if "records sent" in line][-1]
    produced = float(re.search(r"([\d.]+) records/sec", last).group(1))
    consume = subprocess.run(
        [
            *base[:2],
            log4j,
            *base[2:],
            "org.apache.kafka.tools.ConsumerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--bootstrap-server",
            config.kafka.bootstrap_servers,
            "--timeout",
            "60000",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    lines = consume.stdout.splitlines()
    header_at = next(i for i, line in enumerate(lines) if "nMsg.sec" in line)
    header = [name.strip() for name in lines[header_at].split(",")]
    row = next((line for line in lines[header_at + 1 :] if line[:1].isdigit() and "," in line), None)
    if row is None:
        raise RuntimeError(f"ConsumerPerformance printed no result row:\n{consume.stdout}\n{consume.stderr}")
    values = [value.strip() for value in row.split(",")]
    consumed = float(values[header.index("nMsg.sec")])
    return {
        "record_bytes": record_size,
        "records": records,
        "producer_records_per_s": produced,
        "consumer_records_per_s": consumed,
        "producer_summary": last.strip(),
    }


def ensure_champion(spark, config) -> str:
    """A single-node fraud_v1 champion trained on the book's training week (registered once per state dir)."""
    from mlflow import MlflowClient

    from lakestream.registry.models import CHAMPION, find_version_by_alias
    from lakestream.registry.tracking import configure_mlflow
    from lakestream.training.splits import build_time_split
    from lakestream.training.trainer import TrainingRequest, train_model

    configure_mlflow(config)
    client = MlflowClient()
    found = find_version_by_alias(client, config.mlflow.registered_model, CHAMPION)
    if found is not None:
        return str(found.version)
    request = TrainingRequest(
        feature_set="fraud_v1", mode="single_node", split=build_time_split(train_start=dt.date(2018, 7, 25))
    )
    result = train_model(spark, config, request)
    client.set_registered_model_alias(config.mlflow.registered_model, CHAMPION, result.registered_version)
    return str(result.registered_version)


def forget_earlier_runs(config) -> None:
    """Drop what earlier runs of this benchmark left: every run has its own topics, checkpoint and latency tables.

    A run's leftovers stay until the next run starts (to inspect them); before this, each run added 100-300 MB of
    Kafka logs, RocksDB checkpoints and Delta tables under var/bench for good.
    """
    import shutil

    from lakestream.io.kafka import delete_topics, list_topics
    from lakestream.streaming.pipeline import dead_letter_path

    run_topic = re.compile(r"(-bench_(tp|lat)_\d+(_\d+)?|^perf-\d+(-\d+)?)$")
    delete_topics(config.kafka, [name for name in list_topics(config.kafka) if run_topic.search(name)])
    gold = config.table_path("gold", "bench_lat_scores").parent
    candidates = [
        *config.paths.checkpoint_root.glob("bench_*"),
        *gold.glob("bench_lat_scores_*"),
        *gold.glob("bench_lat_metrics_*"),
        dead_letter_path(with_tables(config, dead_letter_table=DEAD_LETTER)),
    ]
    leftovers = [path for path in candidates if path.exists()]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    logger.info("removed %d checkpoints and tables of earlier runs", len(leftovers))


def with_tables(config, **settings):
    """config with these streaming settings (same topics)."""
    return config.model_copy(update={"streaming": config.streaming.model_copy(update=settings)})


def with_streaming(config, **settings):
    """config with these streaming settings and its own topics (runs never read each other's events)."""
    from lakestream.io.kafka import ensure_topics

    topics = config.kafka.topics.with_suffix(settings["query_name"])
    kafka = config.kafka.model_copy(update={"topics": topics})
    ensure_topics(kafka, topics.all())
    return with_tables(config, **settings).model_copy(update={"kafka": kafka})


def throughput(spark, config, *, days: int, batch: int) -> dict:
    """Replay `days` after the warm-up and drain them; events/s sustained and overall."""
    import shutil

    from lakestream.io.delta import read_delta
    from lakestream.streaming.pipeline import metrics_path, scores_path
    from lakestream.streaming.replay import replay_span
    from lakestream.streaming.runner import run_stream

    config = with_streaming(
        config,
        query_name=f"bench_tp_{int(time.time())}",
        scores_table="bench_stream_scores",
        metrics_table="bench_stream_metrics",
        dead_letter_table=DEAD_LETTER,
        max_offsets_per_trigger=batch,
    )
    for path in (scores_path(config), metrics_path(config)):
        shutil.rmtree(path, ignore_errors=True)
    give_chargebacks_a_scenario(spark, config)
    sent = replay_span(spark, config, start=WARM_UNTIL, end=WARM_UNTIL + dt.timedelta(days=days))
    started = time.perf_counter()
    run_stream(spark, config, available_now=True, bootstrap_until=WARM_UNTIL)
    wall = time.perf_counter() - started
    metrics = read_delta(spark, metrics_path(config)).toPandas().sort_values("batch_id")
    scored = int(read_delta(spark, scores_path(config)).count())
    span = (metrics["finished_at"].max() - metrics["started_at"].min()).total_seconds()
    parity = parity_on_default_dataset(spark, config, start=WARM_UNTIL, end=WARM_UNTIL + dt.timedelta(days=days))
    logger.info("parity with batch: %s", parity)
    # batch 0 also loads the bootstrap (37 days of history into the state): steady state is the batches after it
    steady = metrics[metrics["batch_id"] > 0]
    steady_span = (steady["finished_at"].max() - steady["started_at"].min()).total_seconds() if len(steady) else None
    return {
        "days": days,
        "transactions": sent["transactions"],
        "chargebacks": sent["fraud_labels"],
        "scored": scored,
        "max_offsets_per_trigger": batch,
        "batches": len(metrics),
        "events_per_s_sustained": round((sent["transactions"] + sent["fraud_labels"]) / span, 1),
        "transactions_per_s_sustained": round(scored / span, 1),
        "events_per_s_including_startup": round((sent["transactions"] + sent["fraud_labels"]) / wall, 1),
        "transactions_per_s_after_first_batch": round(float(steady["input_transactions"].sum()) / steady_span, 1)
        if steady_span
        else None,
        "first_batch_seconds_with_bootstrap": round(float(metrics["duration_ms"].iloc[0]) / 1000, 2),
        "batch_seconds_median": round(float(metrics["duration_ms"].median()) / 1000, 2),
        "parity_with_batch": parity,
        "state_bytes_final": int(metrics["state_bytes"].dropna().iloc[-1])
        if metrics["state_bytes"].notna().any()
        else None,
    }


def parity_on_default_dataset(spark, config, *, start: dt.datetime, end: dt.datetime) -> dict:
    """Stream vs batch features and scores over the replayed span (lakestream.streaming.parity).

    The benchmark lake's silver was written straight from the simulator, so it holds a few rows the silver rules
    reject (amount 0.00 after rounding); the stream dead-letters them, batch features count them. Transactions of
    the customers and terminals of those rows are left out of the comparison, and counted.
    """
    from mlflow import MlflowClient
    from pyspark.sql import functions as F  # noqa: N812

    from lakestream.io.delta import read_delta
    from lakestream.registry.models import CHAMPION, load_model_version, resolve_version
    from lakestream.streaming.parity import compare_with_batch, parity_holds
    from lakestream.streaming.pipeline import DUPLICATE_TRANSACTION, LATE_EVENT, dead_letter_path

    client = MlflowClient()
    model = load_model_version(client, config, resolve_version(client, config.mlflow.registered_model, CHAMPION))
    silver = read_delta(spark, config.table_path("silver", "transactions")).where(
        (F.col("tx_datetime") >= F.lit(start)) & (F.col("tx_datetime") < F.lit(end))
    )
    rejected = (
        read_delta(spark, dead_letter_path(config))
        .where(F.col("query") == config.streaming.query_name)
        .where(~F.col("reason").isin(DUPLICATE_TRANSACTION, LATE_EVENT))  # failed validation
        .select("transaction_id")
        .join(silver, "transaction_id")
    )
    customers = rejected.select("customer_id").distinct()
    terminals = rejected.select("terminal_id").distinct()
    exclude = (
        silver.join(customers, "customer_id", "left_semi")
        .select("transaction_id")
        .union(silver.join(terminals, "terminal_id", "left_semi").select("transaction_id"))
        .distinct()
    )
    result = compare_with_batch(spark, config, model, start=start, end=end, exclude=exclude)
    result["left_out_rejected_rows"] = rejected.count()
    result["left_out_transactions"] = exclude.count()
    result["parity"] = parity_holds(result)
    return result


def give_chargebacks_a_scenario(spark, config) -> None:
    """The benchmark lake's chargebacks have no fraud scenario (its cached simulator output drops it), and the
    labels topic's contract requires one: set scenario 1 where it is missing (no feature reads it)."""
    from delta.tables import DeltaTable

    labels = DeltaTable.forPath(spark, str(config.table_path("silver", "fraud_labels")))
    labels.update("tx_fraud_scenario IS NULL", {"tx_fraud_scenario": "1"})


def latency(spark, config, *, rates: list[int], seconds: float, warmup: tuple[float, float]) -> list[dict]:
    """Live paced input at each rate while the stream runs; latency percentiles to commit and to alert."""
    from lakestream.io.delta import read_delta

    silver = read_delta(spark, config.table_path("silver", "transactions"))
    results = []
    for rate in rates:
        result = latency_at(spark, config, silver, rate=rate, seconds=seconds, warmup=warmup)
        logger.info("latency at %d/s: %s", rate, result)
        results.append(result)
    return results


def writer_comparison(
    spark, config, *, rate: int, seconds: float, warmup: tuple[float, float], driver: dict | None
) -> dict:
    """The same paced run with Spark's Delta writer for the scores, next to the driver-side commit (the default).

    `driver` is that rate's run of this benchmark with the driver writer when there was one (else measured here).
    """
    from lakestream.io.delta import read_delta

    silver = read_delta(spark, config.table_path("silver", "transactions"))

    def measured_with(writer: str) -> dict:
        run = with_tables(config, output_writer=writer)
        result = latency_at(spark, run, silver, rate=rate, seconds=seconds, warmup=warmup)
        logger.info("latency at %d/s with the %s writer: %s", rate, writer, result)
        return result

    runs = {"driver": driver or measured_with("driver"), "spark": measured_with("spark")}
    ratios = {
        f"{kind}_p{q}_spark_over_driver": round(
            runs["spark"][f"{kind}_latency_ms"][f"p{q}"] / runs["driver"][f"{kind}_latency_ms"][f"p{q}"], 2
        )
        for kind in ("commit", "alert")
        for q in (50, 99)
        if f"{kind}_latency_ms" in runs["spark"] and f"{kind}_latency_ms" in runs["driver"]
    }
    return {"rate_per_s": rate, **runs, **ratios}


def latency_at(spark, config, silver, *, rate: int, seconds: float, warmup: tuple[float, float]) -> dict:
    """One paced run: the producer sends `rate` transactions/s for at least `warmup` [0] seconds and until the stream
    has caught up (``caught_up``; at most `warmup` [1] seconds), then for the measured `seconds`, while the stream
    runs."""
    from kafka import KafkaConsumer

    from lakestream.io.delta import read_delta
    from lakestream.io.kafka import build_producer, python_client_options
    from lakestream.streaming.pipeline import metrics_path, scores_path
    from lakestream.streaming.runner import run_stream, stop_file
    from lakestream.streaming.service import scored_rows

    stamp = int(time.time())
    run = with_streaming(
        config,
        query_name=f"bench_lat_{rate}_{stamp}",
        scores_table=f"bench_lat_scores_{rate}_{stamp}",
        metrics_table=f"bench_lat_metrics_{rate}_{stamp}",
        dead_letter_table=DEAD_LETTER,
        max_offsets_per_trigger=None,
        starting_offsets="latest",
    )
    warmup_seconds, max_warmup_seconds = warmup[0], max(warmup)
    count, most_warmup = int(rate * seconds), int(rate * (max_warmup_seconds + 2))  # + the 1 s between checks
    rows = (
        silver.where(silver.tx_datetime >= WARM_UNTIL)
        .orderBy("tx_datetime", "transaction_id")
        .limit(WARMUP_EVENTS + most_warmup + count)
    )
    payloads = [
        (
            str(int(r.transaction_id)).encode(),
            json.dumps(
                {
                    "transaction_id": int(r.transaction_id),
                    "tx_datetime": str(r.tx_datetime)[:19],
                    "customer_id": int(r.customer_id),
                    "terminal_id": int(r.terminal_id),
                    "tx_amount": float(r.tx_amount),
                }
            ).encode(),
        )
        for r in rows.toPandas().itertuples()
    ]
    alerts_seen: dict[int, int] = {}
    consumer = KafkaConsumer(
        run.kafka.topics.fraud_alerts.name,
        **python_client_options(run.kafka),
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )

    stream_done = threading.Event()

    def consume_alerts() -> None:
        deadline = time.time() + seconds + 900
        while time.time() < deadline and not stream_done.is_set():
            for message in consumer:  # until a second without alerts
                alerts_seen[int(message.key)] = message.timestamp
        consumer.close()

    warmup, paced = payloads[:WARMUP_EVENTS], payloads[WARMUP_EVENTS:]
    warmup_ids = {int(key) for key, _ in warmup}
    boundary = {"measured_from": None, "steady": False}  # index of paced's first measured event, set by produce()

    def produce() -> None:
        # a few events first: the stream's first micro-batch also loads the bootstrap state (tens of seconds);
        # latency is measured on the paced events sent once that batch has committed, after the paced warm-up
        started = time.monotonic() + 300
        while time.monotonic() < started and run.streaming.query_name not in {q.name for q in spark.streams.active}:
            time.sleep(1)
        time.sleep(10)  # the query resolves its "latest" starting offsets first: events before that are not read
        producer = build_producer(run.kafka, linger_ms=1)
        for key, payload in warmup:
            producer.send(run.kafka.topics.transactions.name, value=payload, key=key)
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and scored_rows(run) < len(warmup) - 5:
            time.sleep(1)
        time.sleep(5)
        # the paced events leave from a process of their own through librdkafka (RecordProducer: ~0.05 of a core at
        # 5,000/s, kafka-python's producer 0.43-0.48 alone and 0.76 sent from this process, where its threads also
        # took the driver's GIL): the load generator should leave the 2 cores to what is measured
        context = multiprocessing.get_context("spawn")
        control, child_end = context.Pipe()
        child = context.Process(
            target=paced_sender,
            args=(run.kafka, run.kafka.topics.transactions.name, paced, rate, child_end),
            name="paced-producer",
            daemon=True,
        )
        child.start()
        child_end.close()  # the child holds its end: a child that dies ends recv() with EOFError, not a hang
        cpu_from = None
        try:
            _, begin = control.recv()
            while boundary["measured_from"] is None and child.is_alive():
                time.sleep(1)
                elapsed = time.monotonic() - begin
                if elapsed >= warmup_seconds:
                    boundary["steady"] = caught_up(run)
                    if boundary["steady"] or elapsed >= max_warmup_seconds:
                        # the first event not sent yet: the child sends each 10 ms burst at its start
                        boundary["measured_from"] = min(int(elapsed * rate) + burst(rate) + 1, len(paced) - count)
                        control.send(("stop_at", boundary["measured_from"] + count))
                        cpu_from = meter.sample()
                        logger.info("latency at %d/s: measuring after %.0f s of warm-up (caught up: %s)", rate,
                                    elapsed, boundary["steady"])  # fmt: skip
            if control.poll(seconds + max_warmup_seconds + 120):  # True at the child's report, or its end
                _, sent, producer_seconds, cpu_seconds = control.recv()
                if cpu_from is not None:  # the measured events' span, without the producer (counted by itself)
                    boundary["cpu_cores"] = CpuMeter.cores(cpu_from, meter.sample())
                boundary["producer_cores"] = round(cpu_seconds / max(producer_seconds, 1e-9), 2)
                logger.info("latency at %d/s: the producer sent %d events in %.1f s, %.2f cores", rate, sent,
                            producer_seconds, boundary["producer_cores"])  # fmt: skip
        except (EOFError, BrokenPipeError):  # the child ended before its report: its traceback is on stderr
            child.join(timeout=10)
            logger.error("latency at %d/s: the paced producer ended early (exit code %s)", rate, child.exitcode)
        finally:  # the stream stops whatever happened to the producer
            child.join(timeout=60)
            time.sleep(20)
            stop_file(run).touch()

    meter = CpuMeter(spark, config)
    # daemons: a failed stream must not leave the process waiting on its producer
    threads = [threading.Thread(target=produce, daemon=True), threading.Thread(target=consume_alerts, daemon=True)]
    for thread in threads:
        thread.start()
    run_stream(spark, run, bootstrap_until=WARM_UNTIL)
    threads[0].join()
    stream_done.set()  # the consumer drains the alerts topic, then closes before the broker stops
    threads[1].join(timeout=60)
    scores = read_delta(spark, scores_path(run)).select("transaction_id", "kafka_timestamp", "batch_id").toPandas()
    scores = scores[~scores["transaction_id"].isin(warmup_ids)]
    metrics = read_delta(spark, metrics_path(run)).select("batch_id", "finished_at").toPandas()
    start = boundary["measured_from"]
    if start is None:
        raise RuntimeError(f"latency at {rate}/s: the producer stopped before the measured events were sent")
    in_warmup = scores["transaction_id"].isin({int(key) for key, _ in paced[:start]})
    measured = scores["transaction_id"].isin({int(key) for key, _ in paced[start : start + count]})
    result = {
        "rate_per_s": rate,
        "paced_warmup_s": round(start / rate, 1),
        "caught_up_after_warmup": boundary["steady"],
        "sent": count,
        "producer_cores": boundary.get("producer_cores"),
        "cpu_cores": boundary.get("cpu_cores"),
    }
    result.update(_latencies(scores[measured], metrics, alerts_seen))
    result["warmup"] = _latencies(scores[in_warmup], metrics, alerts_seen)
    return result


def burst(rate: int) -> int:
    """Events per burst of the paced producer: 10 ms of them at `rate` per second."""
    return max(rate // 100, 1)


def paced_sender(kafka, topic: str, payloads: list, rate: int, control) -> None:
    """A child process: send `payloads` (key, value) at `rate` per second in 10 ms bursts until told where to stop
    (``("stop_at", n)`` on `control`); then report the events sent, the seconds and the process's CPU seconds."""
    from lakestream.io.kafka import RecordProducer

    producer = RecordProducer(kafka, linger_ms=5)
    step = burst(rate)
    limit = len(payloads)
    cpu, begin = time.process_time(), time.monotonic()
    control.send(("begin", begin))
    sent = 0
    while sent < limit:
        delay = begin + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        while control.poll():
            limit = min(limit, control.recv()[1])
        end = min(sent + step, limit)
        for key, value in payloads[sent:end]:
            producer.send(topic, value=value, key=key)
        sent = end
    producer.flush()
    control.send(("done", sent, time.monotonic() - begin, time.process_time() - cpu))
    producer.close()


class CpuMeter:
    """CPU seconds of the processes sharing this machine's cores during a latency run: this benchmark's Python
    process (the driver's foreachBatch, which scores and commits on the driver, and the alert consumer), Spark's JVM
    (driver and executor in local mode), the Python workers under it (the stateful operator) and the Kafka broker.
    A worker that exits between two samples loses its CPU from the count (Spark reuses them)."""

    def __init__(self, spark, config) -> None:
        import psutil

        from lakestream.platform.kafka_broker import broker_status

        self._psutil = psutil
        self.jvm = psutil.Process(int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()))
        broker = broker_status(config).pid
        self.parts = {"benchmark_python": psutil.Process(), "spark_jvm": self.jvm}
        if broker is not None:
            self.parts["kafka_broker"] = psutil.Process(broker)

    def sample(self) -> tuple[float, dict[str, float], dict[int, float]]:
        """(monotonic time, CPU seconds per part, CPU seconds per Python worker pid)."""
        parts = {name: self._seconds(process) for name, process in self.parts.items()}
        workers = {}
        for child in self.jvm.children(recursive=True):
            try:
                workers[child.pid] = self._seconds(child)
            except self._psutil.NoSuchProcess:
                continue
        return time.monotonic(), parts, workers

    @staticmethod
    def _seconds(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    @staticmethod
    def cores(first: tuple, last: tuple) -> dict[str, float]:
        """Cores each part took between two samples (the Python workers summed), and their total."""
        seconds = max(last[0] - first[0], 1e-9)
        used = {name: last[1][name] - first[1].get(name, 0.0) for name in last[1]}
        used["python_workers"] = sum(cpu - first[2].get(pid, 0.0) for pid, cpu in last[2].items())
        cores = {name: round(value / seconds, 2) for name, value in used.items()}
        cores["total"] = round(sum(used.values()) / seconds, 2)
        return cores


def caught_up(run, batches: int = 3) -> bool:
    """Whether the stream keeps up with its input: in each of its last `batches` committed micro-batches the median
    event waited at most about one batch before its own batch started (p50 to the commit <= 2 x the batch's
    duration + 0.5 s). A stream still draining a backlog has events that waited several batches."""
    from lakestream.io.delta import read_delta_arrow
    from lakestream.streaming.pipeline import metrics_path

    table = read_delta_arrow(metrics_path(run), columns=["batch_id", "duration_ms", "latency_p50_ms"])
    if table is None or table.num_rows < batches + 1:  # the first batch (bootstrap) does not count
        return False
    last = table.to_pandas().sort_values("batch_id").tail(batches)
    return bool((last["latency_p50_ms"] <= 2 * last["duration_ms"] + 500).all())


def _latencies(scores, metrics, alerts_seen: dict[int, int]) -> dict:
    """Scored rows, alerts and the p50/p95/p99 latency to the commit and to the alert of `scores`' transactions."""
    import numpy as np
    import pandas as pd

    joined = scores.merge(metrics, on="batch_id")
    commit_ms = (joined["finished_at"] - joined["kafka_timestamp"]).dt.total_seconds() * 1000
    sent_ms = dict(zip(scores.transaction_id, scores.kafka_timestamp.astype("int64") // 1_000_000, strict=True))
    alert_ms = pd.Series([alerts_seen[t] - sent_ms[t] for t in alerts_seen if t in sent_ms], dtype=float)
    result: dict = {"scored": len(scores), "alerts": len(alert_ms)}
    for name, values in (("commit", commit_ms), ("alert", alert_ms)):
        if len(values):
            result[f"{name}_latency_ms"] = {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=140, help="days replayed for the throughput run (default 140, 1.34M transactions)"
    )
    parser.add_argument(
        "--batch", type=int, default=200_000, help="max offsets per micro-batch of the throughput run (default 200000)"
    )
    parser.add_argument("--rates", default="1000,5000", help="input rates of the latency runs, events/s")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="measured seconds per rate (default 60)")
    parser.add_argument(
        "--latency-warmup-seconds",
        type=float,
        default=30.0,
        help="least paced seconds at the same rate before the measured ones, reported apart (default 30)",
    )
    parser.add_argument(
        "--latency-max-warmup-seconds",
        type=float,
        default=150.0,
        help="longest warm-up: measure from then even if the stream has not caught up (default 150)",
    )
    parser.add_argument("--kafka-records", type=int, default=2_000_000)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: kafka,throughput,latency,writers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT / "lib"))
    os.environ.setdefault("LAKESTREAM_ENV", "local")
    from lakestream.config import load_config
    from lakestream.platform.kafka_broker import start_broker, stop_broker
    from lakestream.spark import build_spark_session

    if not (BENCH_LAKE / "silver" / "transactions" / "_delta_log").is_dir():
        print(f"error: no benchmark lake at {BENCH_LAKE}; run benchmarks/model_quality.py first", file=sys.stderr)
        return 2
    config = load_config(
        overrides={
            "paths.state_dir": str(STATE),
            "paths.lake_root": str(BENCH_LAKE),
            "kafka.broker.port": 19092,
            "kafka.broker.controller_port": 19093,
            "kafka.bootstrap_servers": "127.0.0.1:19092",
            "mlflow.registered_model": "bench-stream",
        }
    )
    skip = set(filter(None, args.skip.split(",")))
    warmup = (args.latency_warmup_seconds, args.latency_max_warmup_seconds)
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    start_broker(config)
    try:
        forget_earlier_runs(config)
        if "kafka" not in skip:
            result["kafka_alone"] = [kafka_tools(config, size, args.kafka_records) for size in (100, 1000)]
            logger.info("kafka alone: %s", result["kafka_alone"])
        spark = build_spark_session(config, "bench-streaming")
        try:
            result["model_version"] = ensure_champion(spark, config)
            if "throughput" not in skip:
                result["throughput"] = throughput(spark, config, days=args.days, batch=args.batch)
                logger.info("throughput: %s", result["throughput"])
            if "latency" not in skip:
                rates = [int(r) for r in args.rates.split(",") if r]
                result["latency"] = latency(spark, config, rates=rates, seconds=args.latency_seconds, warmup=warmup)
            if "writers" not in skip:  # scores committed from the driver vs by Spark's Delta writer, one run
                rate = int(args.rates.split(",")[0])
                runs = result.get("latency", []) if config.streaming.output_writer == "driver" else []
                driver = next((r for r in runs if r["rate_per_s"] == rate), None)
                result["writers"] = writer_comparison(
                    spark,
                    config,
                    rate=rate,
                    seconds=args.latency_seconds,
                    warmup=warmup,
                    driver=driver,
                )
        finally:
            spark.stop()
    finally:
        stop_broker(config)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "streaming.json"
    parts = ("kafka_alone", "throughput", "latency", "writers")
    measured = {part: result["measured_at"] for part in parts if part in result}
    if skip and target.exists():  # keep the parts measured by an earlier run, with when they were
        earlier = json.loads(target.read_text())
        before = earlier.get("parts_measured_at") or {p: earlier.get("measured_at") for p in parts if p in earlier}
        measured = {**before, **measured}
        result = {**earlier, **result}
    result["parts_measured_at"] = measured
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
