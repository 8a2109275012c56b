"""Integration fixtures of the ingestion path: an isolated lake per test, or one per module.

See ingest_harness.py for the harness (land files, run bronze/silver, read tables) and the line builders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_harness import LakeHarness
from pyspark.sql import SparkSession


@pytest.fixture
def harness(spark: SparkSession, tmp_path: Path) -> LakeHarness:
    """A fresh isolated lake for one test."""
    return LakeHarness(spark, tmp_path)


@pytest.fixture(scope="module")
def module_harness_factory(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LakeHarness]:
    """Build isolated lakes shared by the tests of one module (for read-only assertions on one setup)."""

    def build(**quality: Any) -> LakeHarness:
        return LakeHarness(spark, tmp_path_factory.mktemp("lake"), **quality)

    return build
