"""The two kinds of landed events and what differs between them on the way to silver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakestream.errors import ConfigError
from lakestream.io.schemas import fraud_label_event_schema, transaction_event_schema
from lakestream.io.table_schemas import (
    BRONZE_FRAUD_LABELS,
    BRONZE_TRANSACTIONS,
    SILVER_FRAUD_LABELS,
    SILVER_TRANSACTIONS,
    TableSpec,
)

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

    from lakestream.config.models import QualityConfig


@dataclass(frozen=True)
class EventKind:
    """One landed event kind: its message schema, event-time field, tables and silver partition column."""

    name: str
    event_schema: Callable[[], StructType]
    event_time_field: str  # drives lateness and the silver partition
    timestamp_fields: tuple[str, ...]  # "yyyy-MM-dd HH:mm:ss" strings in messages, TIMESTAMP in silver
    bronze: TableSpec
    silver: TableSpec
    partition_column: str  # the silver partition column, = to_date(event_time_field)

    @property
    def field_names(self) -> tuple[str, ...]:
        """The message fields, in schema order."""
        return tuple(field.name for field in self.event_schema().fields)

    def required_fields(self, quality: QualityConfig) -> tuple[str, ...]:
        """The configured required fields, checked against the schema (every silver column is NOT NULL)."""
        configured = getattr(quality, self.name).required_fields
        unknown = sorted(set(configured) - set(self.field_names))
        if unknown:
            raise ConfigError(
                f"quality.{self.name}.required_fields names {unknown}, which are not fields of the {self.name} "
                f"message; the fields are {list(self.field_names)}"
            )
        missing = [name for name in self.field_names if name not in configured]
        if missing:
            raise ConfigError(
                f"quality.{self.name}.required_fields leaves out {missing}, but {self.silver.name} declares every "
                f"message field NOT NULL; add them to quality.{self.name}.required_fields"
            )
        return tuple(configured)


TRANSACTIONS = EventKind(
    name="transactions",
    event_schema=transaction_event_schema,
    event_time_field="tx_datetime",
    timestamp_fields=("tx_datetime",),
    bronze=BRONZE_TRANSACTIONS,
    silver=SILVER_TRANSACTIONS,
    partition_column="tx_date",
)
FRAUD_LABELS = EventKind(
    name="fraud_labels",
    event_schema=fraud_label_event_schema,
    event_time_field="reported_at",
    timestamp_fields=("tx_datetime", "reported_at"),
    bronze=BRONZE_FRAUD_LABELS,
    silver=SILVER_FRAUD_LABELS,
    partition_column="reported_date",
)
EVENT_KINDS: dict[str, EventKind] = {kind.name: kind for kind in (TRANSACTIONS, FRAUD_LABELS)}


def get_event_kind(name: str) -> EventKind:
    """The kind called `name` ("transactions" or "fraud_labels")."""
    try:
        return EVENT_KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown event kind {name!r}; use one of {sorted(EVENT_KINDS)}") from None
