"""Replay landed event files into Kafka, as the payment gateway would have sent them.

Files are streamed day folder by day folder and line by line (never the whole landing in memory), in landed
order: event-time order for transactions (reported_at order for labels), except where out-of-order or late
anomalies were injected on purpose. Every line is sent as is, malformed ones included; the key is the
transaction id when the line parses, the message timestamp is the send time. With a speed factor, the
replay sleeps the event-time gaps divided by the factor (3600: one simulated hour per second).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lakestream.errors import ConfigError, DataError
from lakestream.io.kafka import RecordProducer, ensure_topics
from lakestream.simulate.landing import FRAUD_LABELS_KIND, LANDED_KINDS, TRANSACTIONS_KIND, landed_folder

if TYPE_CHECKING:
    from lakestream.config.models import LakestreamConfig, TopicConfig

logger = logging.getLogger(__name__)

EVENT_TIME_FIELDS = {TRANSACTIONS_KIND: "tx_datetime", FRAUD_LABELS_KIND: "reported_at"}
_EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_FOLDER_PREFIX = "date="


def list_landed_days(landing_root: Path, kind: str) -> list[date]:
    """The days that have a date=YYYY-MM-DD folder for this kind, ascending."""
    folder = landed_folder(landing_root, _checked_kind(kind))
    if not folder.is_dir():
        return []
    days = []
    for path in folder.glob(f"{_DATE_FOLDER_PREFIX}*"):
        try:
            days.append(date.fromisoformat(path.name.removeprefix(_DATE_FOLDER_PREFIX)))
        except ValueError:
            logger.warning("ignoring %s: not a date=YYYY-MM-DD folder", path)
    return sorted(days)


def iter_landed_lines(
    landing_root: Path, kind: str, *, from_date: date | None = None, to_date: date | None = None
) -> Iterator[tuple[date, str]]:
    """(landing day, raw line without its newline) for every landed line of the inclusive day range, in order."""
    folder = landed_folder(landing_root, _checked_kind(kind))
    for day in list_landed_days(landing_root, kind):
        if (from_date and day < from_date) or (to_date and day > to_date):
            continue
        day_folder = folder / f"{_DATE_FOLDER_PREFIX}{day.isoformat()}"
        for path in sorted(p for p in day_folder.iterdir() if p.is_file() and not p.name.startswith((".", "_"))):
            with path.open(encoding="utf-8", newline="\n") as lines:
                for line in lines:
                    yield day, line.removesuffix("\n")


def read_event_key_and_time(line: str, kind: str) -> tuple[bytes | None, datetime | None]:
    """The Kafka key (transaction id as text bytes) and the event time of a line; None for what does not parse."""
    try:
        event = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(event, dict):
        return None, None
    transaction_id = event.get("transaction_id")
    key = (
        str(transaction_id).encode()
        if isinstance(transaction_id, int) and not isinstance(transaction_id, bool)
        else None
    )
    try:
        event_time = datetime.strptime(event.get(EVENT_TIME_FIELDS[kind]), _EVENT_TIME_FORMAT)
    except (TypeError, ValueError):
        event_time = None
    return key, event_time


class EventTimePacer:
    """Sleeps so that event time advances `speed` times faster than wall time (None: no sleeping at all)."""

    def __init__(
        self,
        speed: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ConfigError(f"replay speed must be > 0 (or use as fast as possible), got {speed!r}")
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[datetime, float] | None = None
        self._latest: datetime | None = None

    def wait_for(self, event_time: datetime | None, *, horizon: datetime) -> None:
        """Wait until `event_time` is due; times going backwards or beyond `horizon` (absurd ones) never wait."""
        if self.speed is None or event_time is None or event_time > horizon:
            return
        if self._origin is None:
            self._origin = (event_time, self._clock())
            self._latest = event_time
            return
        if self._latest is not None and event_time <= self._latest:
            return
        self._latest = event_time
        first_event, first_wall = self._origin
        delay = first_wall + (event_time - first_event).total_seconds() / self.speed - self._clock()
        if delay > 0:
            self._sleep(delay)


def replay_lines(
    producer: RecordProducer,
    topic: str,
    lines: Iterable[tuple[date, str]],
    *,
    kind: str,
    pacer: EventTimePacer,
    progress_every: int = 10_000,
) -> int:
    """Send every (landing day, line) to `topic` in order, paced by event time; returns the number sent."""
    sent = 0
    for day, line in lines:
        key, event_time = read_event_key_and_time(line, kind)
        # An event cannot happen after the day it landed: later times are corrupt and must not stall the replay.
        pacer.wait_for(event_time, horizon=datetime.combine(day + timedelta(days=1), datetime.min.time()))
        producer.send(topic, key=key, value=line.encode("utf-8"))
        sent += 1
        if progress_every and sent % progress_every == 0:
            logger.info("replayed %d %s events (landing day %s)", sent, kind, day)
    producer.flush()
    return sent


def topic_for(config: LakestreamConfig, kind: str) -> TopicConfig:
    """The configured topic a landed kind is replayed to."""
    topics = config.kafka.topics
    return topics.transactions if _checked_kind(kind) == TRANSACTIONS_KIND else topics.fraud_labels


def replay_landed_events(
    config: LakestreamConfig,
    *,
    kind: str,
    from_date: date | None = None,
    to_date: date | None = None,
    speed: float | None = 3600.0,
    progress_every: int = 10_000,
) -> int:
    """Replay <landing_root>/<kind>/date=… (inclusive range, default all) to its topic; returns the count."""
    topic = topic_for(config, kind)
    if from_date and to_date and from_date > to_date:
        raise ConfigError(f"--from-date {from_date} is after --to-date {to_date}")
    if not list_landed_days(config.paths.landing_root, kind):
        raise DataError(
            f"nothing landed under {landed_folder(config.paths.landing_root, kind)}; "
            "run jobs/generate_transactions.py first"
        )
    ensure_topics(config.kafka, [topic])
    producer = RecordProducer(config.kafka)
    pacer = EventTimePacer(speed)
    logger.info(
        "replaying %s %s..%s to topic %s at %s",
        kind,
        from_date or "first day",
        to_date or "last day",
        topic.name,
        f"{speed:g}x event time" if speed else "full speed",
    )
    try:
        sent = replay_lines(
            producer,
            topic.name,
            iter_landed_lines(config.paths.landing_root, kind, from_date=from_date, to_date=to_date),
            kind=kind,
            pacer=pacer,
            progress_every=progress_every,
        )
    finally:
        producer.close()
    logger.info("replayed %d %s events to %s", sent, kind, topic.name)
    return sent


def _checked_kind(kind: str) -> str:
    if kind not in LANDED_KINDS:
        raise ConfigError(f"unknown landed kind {kind!r}; use one of {list(LANDED_KINDS)}")
    return kind
