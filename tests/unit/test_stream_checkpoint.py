"""When the stream loads its warm start: a checkpoint counts as restored only once a micro-batch has committed."""

from __future__ import annotations

from pathlib import Path

from lakestream.streaming.pipeline import BOOTSTRAP_FOLDER, drop_bootstrap_rows, has_committed_batch


def test_a_checkpoint_is_restored_only_after_a_commit(tmp_path: Path) -> None:
    checkpoint = tmp_path / "query"
    assert not has_committed_batch(checkpoint)  # a new query
    (checkpoint / "commits").mkdir(parents=True)
    assert not has_committed_batch(checkpoint)  # Spark made the folder at start, the first batch never committed
    (checkpoint / "commits" / ".0.crc").write_text("")
    assert not has_committed_batch(checkpoint)  # a checksum left behind is no commit
    (checkpoint / "commits" / "0").write_text("v1\n{}\n")
    assert has_committed_batch(checkpoint)


def test_the_bootstrap_rows_go_once_the_state_holds_them(tmp_path: Path) -> None:
    folder = tmp_path / BOOTSTRAP_FOLDER
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"rows")
    drop_bootstrap_rows(tmp_path)
    assert not folder.exists()
    drop_bootstrap_rows(tmp_path)  # nothing left to remove: no error
