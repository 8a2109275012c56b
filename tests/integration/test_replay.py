"""Replay of landed files into the real Kafka broker, consumed back: counts, order, keys, malformed lines."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lakestream import cli
from lakestream.config import LakestreamConfig
from lakestream.config.models import TopicConfig
from lakestream.io.kafka import RecordProducer, build_consumer, ensure_topics
from lakestream.simulate.generator import SimulationParams
from lakestream.simulate.landing import LANDED_FILE_NAME, AnomalyOptions, land_simulation
from lakestream.simulate.replay import (
    EventTimePacer,
    iter_landed_lines,
    read_event_key_and_time,
    replay_landed_events,
    replay_lines,
)

if TYPE_CHECKING:
    from kafka.consumer.fetcher import ConsumerRecord
    from pyspark.sql import SparkSession

TINY = SimulationParams(n_customers=40, n_terminals=100, nb_days=5)
LABEL_DELAY_DAYS = 2


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def with_private_topics(config: LakestreamConfig, landing_root: Path) -> LakestreamConfig:
    """Config whose landing root is `landing_root` and whose topics are fresh single-partition ones."""
    suffix = uuid.uuid4().hex[:8]
    topics = config.kafka.topics.model_copy(
        update={
            "transactions": TopicConfig(name=f"replay-transactions-{suffix}", partitions=1),
            "fraud_labels": TopicConfig(name=f"replay-labels-{suffix}", partitions=1),
        }
    )
    return config.model_copy(
        update={
            "paths": config.paths.model_copy(update={"landing_root": landing_root}),
            "kafka": config.kafka.model_copy(update={"topics": topics}),
        }
    )


def consume(config: LakestreamConfig, topic: str, expected: int) -> list[ConsumerRecord]:
    """Every record of a topic from the start, waiting until `expected` arrived (or 20 s of silence)."""
    consumer = build_consumer(config.kafka, topic, consumer_timeout_ms=20_000, group_id=None)
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def landed_lines(landing_root: Path, kind: str) -> list[str]:
    """All raw lines of a landed kind, day folders in date order."""
    return [
        line
        for day in sorted((landing_root / kind).glob("date=*"))
        for line in (day / LANDED_FILE_NAME).read_text(encoding="utf-8").splitlines()
    ]


@pytest.fixture(scope="module")
def landing_root(spark: SparkSession, config: LakestreamConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny simulation landed with 20% malformed transaction lines, and its fraud labels."""
    root = tmp_path_factory.mktemp("replay") / "landing"
    landing_config = config.model_copy(update={"paths": config.paths.model_copy(update={"landing_root": root})})
    land_simulation(
        spark,
        landing_config,
        TINY,
        outputs=("transactions", "fraud_labels"),
        anomalies=AnomalyOptions(seed=5, malformed_share=0.2),
        label_delay_days=LABEL_DELAY_DAYS,
    )
    return root


@pytest.fixture
def replay_config(kafka_broker: LakestreamConfig, landing_root: Path) -> LakestreamConfig:
    """The broker's configuration, pointed at the landed files and at fresh topics."""
    return with_private_topics(kafka_broker, landing_root)


@pytest.mark.kafka
def test_transactions_replay_in_event_time_order_with_malformed_lines_as_is(
    replay_config: LakestreamConfig, landing_root: Path
) -> None:
    lines = landed_lines(landing_root, "transactions")
    sent = replay_landed_events(replay_config, kind="transactions", speed=None, progress_every=50)
    records = consume(replay_config, replay_config.kafka.topics.transactions.name, len(lines))

    assert sent == len(lines) == len(records)
    assert [record.value.decode("utf-8") for record in records] == lines
    broken = 0
    event_times = []
    for record in records:
        try:
            event = json.loads(record.value)
        except ValueError:
            broken += 1
            assert record.key is None
            continue
        assert record.key == str(event["transaction_id"]).encode()
        if not event["tx_datetime"].startswith("2099"):
            event_times.append(event["tx_datetime"])
    assert broken > 0, "the fixture should have landed truncated JSON lines"
    assert event_times == sorted(event_times)


@pytest.mark.kafka
def test_labels_replay_in_reported_order_for_a_date_range(replay_config: LakestreamConfig, landing_root: Path) -> None:
    first_report = date.fromisoformat(TINY.start_date) + timedelta(days=LABEL_DELAY_DAYS)
    days = [first_report + timedelta(days=1), first_report + timedelta(days=2)]
    expected = [
        line
        for day in days
        for line in (landing_root / "fraud_labels" / f"date={day}" / LANDED_FILE_NAME).read_text().splitlines()
    ]
    sent = replay_landed_events(replay_config, kind="fraud_labels", from_date=days[0], to_date=days[1], speed=None)
    records = consume(replay_config, replay_config.kafka.topics.fraud_labels.name, len(expected))

    assert sent == len(expected) == len(records) > 0
    assert [record.value.decode() for record in records] == expected
    reported = [json.loads(record.value)["reported_at"] for record in records]
    assert reported == sorted(reported)
    assert {value[:10] for value in reported} == {day.isoformat() for day in days}
    assert [record.key for record in records] == [str(json.loads(line)["transaction_id"]).encode() for line in expected]


@pytest.mark.kafka
def test_cli_replay_command(
    replay_config: LakestreamConfig, landing_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    topic = replay_config.kafka.topics.transactions.name
    monkeypatch.setenv("LAKESTREAM__PATHS__LANDING_ROOT", str(landing_root))
    monkeypatch.setenv("LAKESTREAM__KAFKA__TOPICS__TRANSACTIONS__NAME", topic)
    monkeypatch.setenv("LAKESTREAM__KAFKA__TOPICS__TRANSACTIONS__PARTITIONS", "1")  # one partition keeps the order
    first_day = date.fromisoformat(TINY.start_date)

    code = cli.main(
        [
            "replay",
            "--kind",
            "transactions",
            "--from-date",
            str(first_day),
            "--to-date",
            str(first_day),
            "--as-fast-as-possible",
        ]
    )

    expected = (landing_root / "transactions" / f"date={first_day}" / LANDED_FILE_NAME).read_text().splitlines()
    assert code == 0
    assert f"replayed {len(expected)} transactions events to topic {topic}" in capsys.readouterr().out
    assert [record.value.decode() for record in consume(replay_config, topic, len(expected))] == expected


@pytest.mark.kafka
def test_paced_replay_sleeps_event_time_gaps_divided_by_speed(
    replay_config: LakestreamConfig, landing_root: Path
) -> None:
    topic = replay_config.kafka.topics.transactions
    ensure_topics(replay_config.kafka, [topic])
    clock = FakeClock()
    lines = list(iter_landed_lines(landing_root, "transactions", to_date=date.fromisoformat(TINY.start_date)))
    times = [t for _, line in lines if (t := read_event_key_and_time(line, "transactions")[1]) and t.year < 2099]
    producer = RecordProducer(replay_config.kafka)
    try:
        sent = replay_lines(
            producer, topic.name, lines, kind="transactions", pacer=EventTimePacer(3600, clock=clock, sleep=clock.sleep)
        )
    finally:
        producer.close()
    assert sent == len(lines)
    assert sum(clock.slept) == pytest.approx((max(times) - min(times)).total_seconds() / 3600)


def test_pacer_ignores_backward_and_absurd_times() -> None:
    clock = FakeClock()
    pacer = EventTimePacer(3600, clock=clock, sleep=clock.sleep)
    start = datetime(2018, 4, 1, 0, 0, 0)
    horizon = datetime(2018, 4, 2)
    for hours in (0, 2, 1, 3):
        pacer.wait_for(start + timedelta(hours=hours), horizon=horizon)
    pacer.wait_for(datetime(2099, 4, 1), horizon=horizon)
    pacer.wait_for(None, horizon=horizon)
    assert clock.slept == [pytest.approx(2.0), pytest.approx(1.0)]


def test_unparsable_lines_have_no_key_or_time() -> None:
    assert read_event_key_and_time('{"transaction_id":12,"tx_datetime":"2018-04-0', "transactions") == (None, None)
    assert read_event_key_and_time("[1, 2]", "transactions") == (None, None)
    assert read_event_key_and_time('{"transaction_id":"x","tx_datetime":3}', "transactions") == (None, None)
    key, event_time = read_event_key_and_time(
        '{"transaction_id":7,"tx_datetime":"2018-04-01 00:00:31","reported_at":"2018-04-08 00:00:31"}', "fraud_labels"
    )
    assert key == b"7"
    assert event_time == datetime(2018, 4, 8, 0, 0, 31)
