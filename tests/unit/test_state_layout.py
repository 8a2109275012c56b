"""A stream's checkpoint keeps the state buckets it was made with: a setting that differs is refused, never used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakestream.config.models import StreamingConfig
from lakestream.errors import ConfigError
from lakestream.streaming.pipeline import LEGACY_STATE_BUCKETS, STATE_LAYOUT_FILE, checkpoint_state_buckets


def committed(checkpoint: Path, *, record: int | None = None) -> Path:
    """A checkpoint with a committed micro-batch (and a layout record of `record` buckets)."""
    (checkpoint / "commits").mkdir(parents=True)
    (checkpoint / "commits" / "0").write_text("v1\n")
    if record is not None:
        (checkpoint / STATE_LAYOUT_FILE).write_text(json.dumps({"state_buckets": record}))
    return checkpoint


def recorded(checkpoint: Path) -> int:
    return json.loads((checkpoint / STATE_LAYOUT_FILE).read_text())["state_buckets"]


def test_a_new_checkpoint_takes_the_setting_and_records_it(tmp_path: Path) -> None:
    checkpoint = tmp_path / "new"
    assert checkpoint_state_buckets(checkpoint, StreamingConfig()) == StreamingConfig().state_buckets
    assert recorded(checkpoint) == StreamingConfig().state_buckets
    # no batch committed yet: the state is empty, a changed setting is taken
    assert checkpoint_state_buckets(checkpoint, StreamingConfig(state_buckets=4)) == 4
    assert recorded(checkpoint) == 4


def test_a_checkpoint_keeps_its_buckets_and_refuses_another_setting(tmp_path: Path) -> None:
    checkpoint = committed(tmp_path / "cp", record=4)
    assert checkpoint_state_buckets(checkpoint, StreamingConfig()) == 4  # the default does not override it
    assert checkpoint_state_buckets(checkpoint, StreamingConfig(state_buckets=4)) == 4
    with pytest.raises(ConfigError, match=r"keeps its state in 4 buckets.*state_buckets is 8.*state_buckets: 4"):
        checkpoint_state_buckets(checkpoint, StreamingConfig(state_buckets=8))
    assert recorded(checkpoint) == 4


def test_a_checkpoint_older_than_the_record_has_the_count_configured_then(tmp_path: Path) -> None:
    legacy = committed(tmp_path / "legacy")
    assert checkpoint_state_buckets(legacy, StreamingConfig()) == LEGACY_STATE_BUCKETS == 16
    assert recorded(legacy) == LEGACY_STATE_BUCKETS
    configured = committed(tmp_path / "configured")
    assert checkpoint_state_buckets(configured, StreamingConfig(state_buckets=32)) == 32
    assert recorded(configured) == 32
