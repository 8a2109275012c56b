"""The ingestion entry points as users run them: `lakestream submit jobs/<x>.py` (real spark-submit) and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from ingest_harness import LakeHarness, label_line, tx_line

JOBS = ("ingest_landed", "clean_transactions", "clean_fraud_labels", "replay_quarantine")


def _run(harness: LakeHarness, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=harness.config.home,
        env={**harness.environ(), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _submit(harness: LakeHarness, job: str, *args: str, **env: str) -> dict[str, Any]:
    return _summary(_run(harness, "-m", "lakestream.cli", "submit", f"jobs/{job}.py", *args, **env))


def test_ingest_clean_and_replay_through_spark_submit(harness: LakeHarness) -> None:
    """ingest and clean through spark-submit (as the daily DAG does), replay-quarantine through the CLI and the job."""
    harness.land(
        "transactions",
        "2018-04-01",
        [tx_line(transaction_id=1), tx_line(transaction_id=2, tx_amount=50_000.0), "{not json"],
    )
    harness.land("fraud_labels", "2018-04-08", [label_line(transaction_id=2), label_line(transaction_id=3)])

    bronze = _submit(harness, "ingest_landed")
    transactions = _submit(harness, "clean_transactions", "--date", "2018-04-01")
    labels = harness.clean("fraud_labels", "2018-04-08").to_dict()  # the labels job's spark-submit: the Airflow test
    raised = {"LAKESTREAM__QUALITY__TRANSACTIONS__MAX_AMOUNT": "100000"}
    replayed_tx = _summary(
        _run(
            harness,
            "-m",
            "lakestream.cli",
            "replay-quarantine",
            "--kind",
            "transactions",
            "--rule",
            "amount_out_of_range",
            **raised,
        )
    )
    replayed_labels = _submit(harness, "replay_quarantine", "--kind", "fraud_labels", "--rule", "unknown_transaction")

    assert {kind: (s["rows"], s["files"]) for kind, s in bronze.items()} == {
        "transactions": (3, 1),
        "fraud_labels": (2, 1),
    }
    assert (transactions["input_rows"], transactions["silver_rows"], transactions["quarantined_rows"]) == (3, 1, 2)
    assert (labels["input_rows"], labels["silver_rows"], labels["quarantined_rows"]) == (2, 0, 2)
    assert (replayed_tx["transactions"]["selected_rows"], replayed_tx["transactions"]["promoted_rows"]) == (1, 1)
    assert (replayed_labels["fraud_labels"]["selected_rows"], replayed_labels["fraud_labels"]["promoted_rows"]) == (
        2,
        1,
    )
    assert sorted(r.transaction_id for r in harness.silver().collect()) == [1, 2]
    assert [r.transaction_id for r in harness.silver("fraud_labels").collect()] == [2]
    assert [r.rules for r in harness.quarantine().collect()] == [["malformed_json"]]
    harness.assert_nothing_lost()
    harness.assert_nothing_lost("fraud_labels")


@pytest.mark.parametrize("job", JOBS)
def test_every_job_has_help_and_fails_cleanly_on_bad_configuration(harness: LakeHarness, job: str) -> None:
    helped = _run(harness, f"jobs/{job}.py", "--help")
    assert helped.returncode == 0
    assert f"usage: {job}" in helped.stdout

    args = ["--date", "2018-04-01"] if job.startswith("clean_") else []
    failed = _run(harness, f"jobs/{job}.py", *args, LAKESTREAM__QUALITY__UNKNOWN_FIELDS="keep")
    assert failed.returncode == 2
    assert "quality.unknown_fields" in failed.stderr
    assert failed.stdout == ""


def test_clean_job_rejects_a_missing_or_inverted_day_range(harness: LakeHarness) -> None:
    missing = _run(harness, "jobs/clean_transactions.py")
    half = _run(harness, "jobs/clean_transactions.py", "--start-date", "2018-04-02")
    assert (missing.returncode, half.returncode) == (2, 2)
    assert "--start-date needs --end-date" in half.stderr
