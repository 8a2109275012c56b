"""Helpers of the ingestion tests: tiny builders of landed event lines and an isolated-lake harness.

`LakeHarness` lands hand-written JSON lines under its own landing folder, runs bronze and silver through
the library, and reads the tables back; every harness has its own lake, checkpoints and landing folders, so
tests never see each other's rows. `harness.environ()` gives child processes (CLI, spark-submit) the same paths.
Fixtures building harnesses live in conftest.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.config import LakestreamConfig, load_config
from lakestream.io.lake_tables import read_table
from lakestream.io.table_schemas import DUPLICATES, INGEST_AUDIT, QUARANTINE
from lakestream.quality.bronze import BronzeIngestResult, ingest_landed_files
from lakestream.quality.kinds import EventKind, get_event_kind
from lakestream.quality.silver import CleanResult, clean_landed_days

DROP = object()  # as a builder value: leave the key out of the JSON object


def tx_line(**overrides: Any) -> str:
    """One transaction event line; defaults are a valid transaction on 2018-04-01 (key=DROP omits a key)."""
    event = {
        "transaction_id": 1,
        "tx_datetime": "2018-04-01 10:00:00",
        "customer_id": 11,
        "terminal_id": 22,
        "tx_amount": 12.5,
    }
    return _line(event, overrides)


def label_line(**overrides: Any) -> str:
    """One fraud-label event line; defaults: transaction 1 of 2018-04-01, reported 7 days later, scenario 1."""
    event = {
        "transaction_id": 1,
        "tx_datetime": "2018-04-01 10:00:00",
        "reported_at": "2018-04-08 10:00:00",
        "tx_fraud": 1,
        "tx_fraud_scenario": 1,
    }
    return _line(event, overrides)


def _line(event: dict[str, Any], overrides: dict[str, Any]) -> str:
    merged = {**event, **overrides}
    return json.dumps({key: value for key, value in merged.items() if value is not DROP})


class LakeHarness:
    """An isolated lake: land files, run bronze/silver, read tables; builders as tx()/label(), DROP."""

    DROP = DROP
    tx = staticmethod(tx_line)
    label = staticmethod(label_line)

    def __init__(self, spark: SparkSession, root: Path, **quality: Any) -> None:
        self.spark = spark
        self.root = root
        self.quality_overrides = quality
        self.config = self._load()

    def _paths(self) -> dict[str, str]:
        return {
            "lake_root": str(self.root / "lake"),
            "checkpoint_root": str(self.root / "checkpoints"),
            "landing_root": str(self.root / "landing"),
        }

    def _load(self) -> LakestreamConfig:
        overrides = {f"paths.{key}": value for key, value in self._paths().items()}
        overrides.update({f"quality.{key}": value for key, value in self.quality_overrides.items()})
        return load_config(overrides=overrides)

    def reconfigure(self, **quality: Any) -> LakestreamConfig:
        """Change quality settings (dotted keys under quality, e.g. transactions__max_amount=1e6)."""
        self.quality_overrides.update({key.replace("__", "."): value for key, value in quality.items()})
        self.config = self._load()
        return self.config

    def environ(self) -> dict[str, str]:
        """Environment for a child process that must see this lake and these quality settings."""
        env = dict(os.environ)
        env.update({f"LAKESTREAM__PATHS__{key.upper()}": value for key, value in self._paths().items()})
        for key, value in self.quality_overrides.items():
            env["LAKESTREAM__QUALITY__" + key.replace(".", "__").upper()] = json.dumps(value)
        return env

    def land(
        self, kind: str, day: str, lines: Sequence[str], *, name: str = "part-0.json", newline: bool = True
    ) -> Path:
        """Write lines to <landing_root>/<kind>/date=<day>/<name> (no final newline when newline=False)."""
        folder = self.config.paths.landing_root / kind / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        text = "\n".join(lines)
        path.write_text(text + ("\n" if newline and lines else ""), encoding="utf-8")
        return path

    def ingest(self, kind: str = "transactions") -> BronzeIngestResult:
        """Run the bronze ingestion of a kind."""
        return ingest_landed_files(self.spark, self.config, kind=get_event_kind(kind))

    def clean(self, kind: str, start: str, end: str | None = None) -> CleanResult:
        """Run the silver cleaning of a kind for start..end (one day when end is omitted)."""
        first = date.fromisoformat(start)
        last = date.fromisoformat(end) if end else first
        return clean_landed_days(self.spark, self.config, kind=get_event_kind(kind), start=first, end=last)

    def kind(self, name: str) -> EventKind:
        """The event kind called name."""
        return get_event_kind(name)

    def bronze(self, kind: str = "transactions") -> DataFrame:
        """bronze.<kind>."""
        return read_table(self.spark, self.config, get_event_kind(kind).bronze)

    def silver(self, kind: str = "transactions") -> DataFrame:
        """silver.<kind>."""
        return read_table(self.spark, self.config, get_event_kind(kind).silver)

    def quarantine(self, kind: str = "transactions") -> DataFrame:
        """quarantine.records of a kind."""
        return read_table(self.spark, self.config, QUARANTINE).where(F.col("kind") == kind)

    def duplicates(self, kind: str = "transactions") -> DataFrame:
        """quality.duplicates of a kind."""
        return read_table(self.spark, self.config, DUPLICATES).where(F.col("kind") == kind)

    def audit(self) -> DataFrame:
        """quality.ingest_audit."""
        return read_table(self.spark, self.config, INGEST_AUDIT)

    def assert_nothing_lost(self, kind: str = "transactions") -> None:
        """Every bronze row is in exactly one of silver, quarantine, duplicates (by record_id), and back."""
        bronze_ids = sorted(row[0] for row in self.bronze(kind).select("record_id").collect())
        placed = (
            self.silver(kind)
            .select("record_id")
            .unionByName(self.quarantine(kind).select("record_id"))
            .unionByName(self.duplicates(kind).select("record_id"))
        )
        assert sorted(row[0] for row in placed.collect()) == bronze_ids
