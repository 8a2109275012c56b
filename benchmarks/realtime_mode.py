"""Probe: Spark 4.2's real-time mode (``trigger(realTime=...)``) on this machine, the route to sub-second latency.

The scoring stream (benchmarks/streaming.py) is a micro-batch query: every batch plans, runs the stateful operator
and commits, so its latency is seconds. Real-time mode (Spark 4.1+) keeps long-running tasks per Kafka partition
and passes records through as they arrive; a "batch" only marks a checkpoint. In Spark 4.2 it accepts no stateful
operator (transformWithState in real-time mode comes with 4.3, JVM only) and no Python operator unless its
operator allowlist check is turned off (``spark.sql.streaming.realTimeMode.allowlistCheck=false``). This probe
measures what such a query can give here, with the project's broker and session settings:

- ``jvm``: Kafka -> a projection (the input's append time into a JSON value) -> Kafka: the floor;
- ``python``: Kafka -> ``mapInPandas`` keeping per-customer windows (count and mean amount over 1, 7 and 30 days,
  in the Python worker's memory for the task, so for one real-time batch) -> Kafka: the shape a Python
  online-feature stage would have.

Each case runs on fresh topics (2 partitions) read from the earliest offset; once a first record has come through
(the query's tasks run), a paced producer sends ``--seconds`` of transactions at the case's rate. Latency per record
= the output record's Kafka timestamp - the input record's (both set by their producers on this machine). Every
record sent must come out (``received``).
Writes benchmarks/results/realtime_mode.json.

    flock /tmp/lakestream-spark.lock .venv/bin/python benchmarks/realtime_mode.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import random
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STATE = ROOT / "var" / "bench" / "realtime_mode"
PORT = 19192  # not the streaming benchmark's broker: the two can run one after the other without clashing
# (operator, input events/s, real-time batch duration): the floor, then a Python stage with long and short batches
CASES = (
    ("jvm", 1000, "20 seconds"),
    ("jvm", 5000, "20 seconds"),
    ("python", 5000, "20 seconds"),
    ("python", 5000, "1 second"),
    ("jvm", 5000, "1 second"),
)
logger = logging.getLogger("benchmarks.realtime_mode")


def customer_windows(batches):
    """mapInPandas: per-customer count and mean amount over 1, 7 and 30 days, state in this worker's memory."""
    import collections

    import pandas as pd

    history: dict[int, collections.deque] = collections.defaultdict(collections.deque)
    for frame in batches:
        values = []
        for value, appended in zip(frame["value"], frame["appended_ms"], strict=True):
            event = json.loads(value)
            events = history[event["customer_id"]]
            events.append((event["t"], event["amount"]))
            while events[0][0] <= event["t"] - 30 * 86400:
                events.popleft()
            features = {}
            for days in (1, 7, 30):
                amounts = [amount for t, amount in events if t > event["t"] - days * 86400]
                features[days] = (len(amounts), sum(amounts) / len(amounts))
            values.append(json.dumps({"in_ms": int(appended), "features": features}).encode())
        yield pd.DataFrame({"key": frame["key"], "value": values})


def run_case(spark, config, *, operator: str, rate: int, batch: str, seconds: float) -> dict:
    """One query on fresh topics; returns the latency quantiles of every record sent."""
    import numpy as np
    from kafka import KafkaConsumer
    from kafka.admin import NewTopic
    from pyspark.sql import functions as F  # noqa: N812

    from lakestream.io.kafka import build_admin_client, build_producer, python_client_options

    name = f"rtm-{operator}-{rate}-{batch.replace(' ', '')}-{int(time.time())}"
    source_topic, sink_topic = f"{name}-in", f"{name}-out"
    admin = build_admin_client(config.kafka)
    admin.create_topics([NewTopic(source_topic, 2, 1), NewTopic(sink_topic, 2, 1)])
    servers = config.kafka.bootstrap_servers
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", servers)
        .option("subscribe", source_topic)
        .option("startingOffsets", "earliest")
        .load()
        .select("key", "value", F.unix_millis("timestamp").alias("appended_ms"))
    )
    if operator == "python":
        out = source.mapInPandas(customer_windows, "key binary, value binary")
    else:
        stamp = F.to_json(F.struct(F.col("appended_ms").alias("in_ms"))).cast("binary")
        out = source.select("key", stamp.alias("value"))
    query = (
        out.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", servers)
        .option("topic", sink_topic)
        .option("checkpointLocation", str(STATE / "checkpoints" / name))
        .outputMode("update")
        .trigger(realTime=batch)
        .start()
    )
    count = int(rate * seconds)
    latencies: list[int] = []
    warmed = threading.Event()
    consumer = KafkaConsumer(
        sink_topic, **python_client_options(config.kafka), auto_offset_reset="earliest", consumer_timeout_ms=1000
    )

    def consume() -> None:
        deadline = time.monotonic() + seconds + 300
        while len(latencies) < count and time.monotonic() < deadline:
            for message in consumer:
                if message.key.startswith(b"warm-up"):
                    warmed.set()
                else:
                    latencies.append(message.timestamp - json.loads(message.value)["in_ms"])

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = build_producer(config.kafka, linger_ms=1)
    rng = random.Random(7)
    event_time = 1_600_000_000

    def send(key: bytes) -> None:
        nonlocal event_time
        event_time += rng.randrange(1, 40)
        event = {"customer_id": rng.randrange(5000), "t": event_time, "amount": round(rng.uniform(1, 200), 2)}
        producer.send(source_topic, key=key, value=json.dumps(event).encode())

    # the query's tasks start after its first plan: one record, sent again every second until one comes out
    for attempt in range(120):
        send(f"warm-up {attempt}".encode())
        producer.flush()
        if warmed.wait(1.0):
            break
    begin = time.perf_counter()
    for i in range(count):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(str(i).encode())
    producer.flush()
    sent_seconds = time.perf_counter() - begin
    reader.join()
    consumer.close()
    producer.close()
    admin.close()
    failure = query.exception()
    query.stop()
    values = np.array(latencies, dtype=float)
    result = {
        "operator": operator,
        "rate_per_s": rate,
        "real_time_batch": batch,
        "sent": count,
        "sent_in_seconds": round(sent_seconds, 1),
        "received": len(values),
        "error": str(failure) if failure else None,
    }
    if len(values):
        result["latency_ms"] = {f"p{q}": round(float(np.percentile(values, q))) for q in (50, 95, 99)}
        result["latency_ms"]["max"] = round(float(values.max()))
    logger.info("%s", result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every case against the project's own broker and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="paced input per case (default 20)")
    parser.add_argument("--output", type=Path, default=RESULTS / "realtime_mode.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT / "lib"))
    os.environ.setdefault("LAKESTREAM_ENV", "local")
    from lakestream.config import load_config
    from lakestream.platform.kafka_broker import start_broker, stop_broker
    from lakestream.spark import build_spark_session

    shutil.rmtree(STATE, ignore_errors=True)
    config = load_config(
        overrides={
            "paths.state_dir": str(STATE),
            "kafka.broker.port": PORT,
            "kafka.broker.controller_port": PORT + 1,
            "kafka.bootstrap_servers": f"127.0.0.1:{PORT}",
        }
    )
    import pyspark

    result: dict = {
        "benchmark": "realtime_mode",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pyspark": pyspark.__version__},
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds_per_case": args.seconds,
        "cases": [],
    }
    start_broker(config, create_topics=False)
    try:
        spark = build_spark_session(
            config,
            "bench-realtime-mode",
            extra_conf={
                "spark.sql.streaming.realTimeMode.allowlistCheck": "false",  # mapInPandas is not on 4.2's list
                "spark.sql.streaming.realTimeMode.minBatchDuration": "1000",  # default 5 s
                "spark.sql.execution.arrow.maxRecordsPerBatch": "100",
            },
        )
        try:
            for operator, rate, batch in CASES:
                result["cases"].append(
                    run_case(spark, config, operator=operator, rate=rate, batch=batch, seconds=args.seconds)
                )
        finally:
            spark.stop()
    finally:
        stop_broker(config)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
