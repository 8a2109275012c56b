"""The closed loop on small data: drift -> monitoring flags it -> retraining -> promotion -> the stream hot-swaps.

One simulation of 500 customers over 125 days with a new fraud pattern from day 92 (night-time card testing:
4 terminals a day drained by 40 small payments from stolen card numbers), written as silver, with gold fraud_v2
features (their undelayed terminal-activity inputs are what can see such a pattern the day it starts).

1. v1 is trained on labelled data up to day 90 (train 7 days, label delay 7, test 3) and promoted (first model).
2. The scoring stream starts with its state warmed from silver up to day 88, and days 88 .. D+19 are replayed
   through Kafka (with a few malformed records) and scored by v1.
3. Monitoring of day D alone (the daily run of the drift's first day) raises an out-of-range alert on that
   day's window: detection within a day of event time. Monitoring of D+1 .. D+19 then asks for a retraining
   as of D+19, the first day whose train window holds min_drift_days_in_training days of the new pattern.
4. v2 is trained as of that day and passes the gate against v1 on the same (drifted) window; the running
   stream swaps to it without a restart; days D+20 .. D+24 are replayed and scored by v2.
5. Label-delayed performance of the served scores: AP on the days v2 served is far above v1's on the drifted
   days. The dashboard shows it all in a real headless Chromium (screenshot kept as a test artifact).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.config import LakestreamConfig, load_config
from lakestream.io.delta import read_delta
from lakestream.io.kafka import build_producer, ensure_topics
from lakestream.monitoring.job import MonitoringRequest, read_metric_history, run_monitoring
from lakestream.monitoring.tables import alerts_path
from lakestream.platform.process import free_port
from lakestream.registry.models import CHAMPION, find_version_by_alias
from lakestream.registry.promotion import promote_challenger
from lakestream.simulate.landing import write_silver_from_truth
from lakestream.streaming.pipeline import dead_letter_path, scores_path
from lakestream.streaming.replay import replay_span
from lakestream.streaming.runner import run_stream, stop_file
from lakestream.streaming.service import scored_rows
from lakestream.training.splits import build_time_split
from lakestream.training.trainer import TrainingRequest, train_model

START = dt.date(2018, 4, 1)
DAYS = 125
DRIFT_DAY = 92
D = START + dt.timedelta(days=DRIFT_DAY)  # 2018-07-02
WARM_UNTIL = D - dt.timedelta(days=4)
PHASE_ONE_END = D + dt.timedelta(days=19)  # the retraining's as-of day
PHASE_TWO_END = D + dt.timedelta(days=24)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def overrides(state: Path, suffix: str) -> dict[str, Any]:
    """The loop's configuration: short windows for small data, its own model, topics, tables and query."""
    return {
        "paths.state_dir": str(state),
        "training.feature_set": "fraud_v2",
        "training.mode": "single_node",
        "training.split.train_days": 7,
        "training.split.delay_days": 7,
        "training.split.test_days": 3,
        "training.promotion.eval_days": 3,
        "training.promotion.max_alert_rate": 0.5,
        "training.xgboost.num_boost_round": 60,
        "mlflow.registered_model": f"e2e-drift-loop-{suffix}",
        "monitoring.card_precision_k": 20,
        "streaming.query_name": f"score_loop_{suffix}",
        "streaming.model_refresh_seconds": 1.0,
        "streaming.trigger_interval": "1 second",
        "streaming.max_offsets_per_trigger": 20000,
        "kafka.topics.transactions.name": f"transactions-loop-{suffix}",
        "kafka.topics.fraud_labels.name": f"fraud-labels-loop-{suffix}",
        "kafka.topics.fraud_alerts.name": f"fraud-alerts-loop-{suffix}",
    }


def environment(values: dict[str, Any], *, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Child-process environment that loads the same configuration."""
    env = dict(os.environ)
    for key, value in {**values, **(extra or {})}.items():
        env["LAKESTREAM__" + key.replace(".", "__").upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


def training_request(as_of: dt.date, config: LakestreamConfig) -> TrainingRequest:
    """What jobs/train_model.py --as-of builds: test window ends delay days before as_of, train before it."""
    split = config.training.split
    test_end = as_of - dt.timedelta(days=split.delay_days)
    test_start = test_end - dt.timedelta(days=split.test_days - 1)
    train_start = test_start - dt.timedelta(days=split.delay_days + split.train_days)
    return TrainingRequest(
        feature_set="fraud_v2",
        mode="single_node",
        split=build_time_split(
            train_start=train_start,
            train_days=split.train_days,
            delay_days=split.delay_days,
            test_days=split.test_days,
        ),
    )


@pytest.fixture(scope="module")
def loop(spark: SparkSession, kafka_broker: LakestreamConfig, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the whole loop once; what each step found."""
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import build_feature_table
    from lakestream.simulate.anomalies import DriftIntensity
    from lakestream.simulate.generator import SimulationParams
    from lakestream.simulate.landing import AnomalyOptions, land_simulation

    values = {
        **overrides(tmp_path_factory.mktemp("drift-loop"), uuid.uuid4().hex[:6]),
        "kafka.bootstrap_servers": kafka_broker.kafka.bootstrap_servers,
    }
    config = load_config(overrides=values)
    land_simulation(
        spark,
        config,
        SimulationParams(n_customers=500, n_terminals=1000, nb_days=DAYS, start_date=START.isoformat()),
        outputs=["truth"],
        anomalies=AnomalyOptions(
            drift_from_day=DRIFT_DAY,
            drift_kind="new_fraud_pattern",
            drift_intensity=DriftIntensity(terminals_per_day=4, transactions_per_terminal=40),
        ),
    )
    write_silver_from_truth(spark, config)
    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", "fraud_v2"))
    build_feature_table(spark, config, spec, start=START, end=START + dt.timedelta(days=DAYS - 1))

    first = train_model(spark, config, training_request(D - dt.timedelta(days=2), config))
    first_decision = promote_challenger(spark, config, window_end=D - dt.timedelta(days=9))
    assert first_decision.promoted, first_decision.reason
    ensure_topics(config.kafka)
    found: dict[str, Any] = {"v1": first.registered_version, "first_promotion": first_decision}
    errors: list[BaseException] = []

    def wait_until_scored(expected: int) -> None:
        deadline = time.monotonic() + 600
        while scored_rows(config) < expected and time.monotonic() < deadline:
            time.sleep(2)
        assert scored_rows(config) >= expected, f"{scored_rows(config)} of {expected} scored"

    def drive() -> None:
        try:
            sent = replay_span(
                spark, config, start=day_start(WARM_UNTIL), end=day_start(PHASE_ONE_END + dt.timedelta(days=1))
            )
            producer = build_producer(config.kafka)
            for value in (b"{not json", b"\x00\xff poison", b'{"transaction_id": 5, "tx_amount": -1}'):
                producer.send(config.kafka.topics.transactions.name, value=value)
            producer.flush()
            producer.close()
            wait_until_scored(sent["transactions"])
            daily = run_monitoring(spark, config, MonitoringRequest(start=D, end=D, run_id="day-of-drift"))
            found["drift_day"] = daily
            found["phase_one"] = run_monitoring(
                spark, config, MonitoringRequest(start=D + dt.timedelta(days=1), end=PHASE_ONE_END, run_id="phase-one")
            )
            decision = found["phase_one"].decision
            assert decision.needed, decision.reason
            second = train_model(spark, config, training_request(decision.as_of, config))
            found["v2"] = second.registered_version
            found["promotion"] = promote_challenger(
                spark, config, window_end=decision.as_of - dt.timedelta(days=config.training.split.delay_days)
            )
            time.sleep(3)  # > model_refresh_seconds: the next batch scores with the new champion
            more = replay_span(
                spark,
                config,
                start=day_start(PHASE_ONE_END + dt.timedelta(days=1)),
                end=day_start(PHASE_TWO_END + dt.timedelta(days=1)),
            )
            wait_until_scored(sent["transactions"] + more["transactions"])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            stop_file(config).touch()

    driver = threading.Thread(target=drive)
    driver.start()
    found["stream"] = run_stream(spark, config, bootstrap_until=day_start(WARM_UNTIL), max_seconds=1500)
    driver.join()
    assert not errors, errors
    perf_start, perf_end = PHASE_TWO_END + dt.timedelta(days=3), PHASE_TWO_END + dt.timedelta(days=7)
    found["final"] = run_monitoring(spark, config, MonitoringRequest(start=perf_start, end=perf_end, run_id="final"))
    found["config"] = config
    found["values"] = values
    return found


def test_monitoring_flags_the_new_pattern_on_its_first_day(spark: SparkSession, loop: dict) -> None:
    config = loop["config"]
    alerts = read_delta(spark, alerts_path(config)).where(F.col("run_id") == "day-of-drift").collect()
    flagged = [a for a in alerts if a["rule"] == "out_of_range" and a["window_start"] == day_start(D)]
    assert flagged, [a["message"] for a in alerts]
    assert {a["dimension"] for a in flagged} & {"TERMINAL_ID_RECENT_NB_TX_1DAY_WINDOW", "TERMINAL_BURST_1_TO_7DAY"}
    assert all(a["model_version"] == loop["v1"] and a["retrain"] for a in flagged)
    # the day before the drift raised nothing of the kind: the alert is the drift, not noise
    history = read_metric_history(spark, config, since=day_start(D - dt.timedelta(days=3)), until=day_start(D))
    assert history == [] or all(
        r.value - (r.reference or 0) <= 0.02
        for r in history
        if r.metric == "out_of_range_share" and r.granularity == "day" and r.value is not None
    )
    decision = loop["drift_day"].decision
    assert not decision.needed
    assert "waiting for labels" in decision.reason


def test_retraining_is_requested_once_labels_of_the_new_pattern_can_be_learnt(loop: dict) -> None:
    decision = loop["phase_one"].decision
    assert decision.needed
    assert decision.as_of == PHASE_ONE_END
    assert decision.since == day_start(D)
    assert decision.champion_version == loop["v1"]


def test_the_retrained_model_wins_the_gate_and_the_stream_swaps_to_it(spark: SparkSession, loop: dict) -> None:
    config = loop["config"]
    promotion = loop["promotion"]
    assert promotion.promoted, promotion.reason
    assert promotion.champion_version == loop["v1"]
    champion = find_version_by_alias(MlflowClient(), config.mlflow.registered_model, CHAMPION)
    assert str(champion.version) == loop["v2"]
    assert loop["stream"]["model_swaps"] == 1
    scores = read_delta(spark, scores_path(config))
    per_day = {(r["tx_date"], r["model_version"]) for r in scores.groupBy("tx_date", "model_version").count().collect()}
    assert {version for day, version in per_day if day <= PHASE_ONE_END} == {loop["v1"]}
    assert {version for day, version in per_day if day > PHASE_ONE_END} == {loop["v2"]}
    assert scores.count() == scores.select("transaction_id").distinct().count()  # every transaction once


def test_label_delayed_performance_recovers_after_the_swap(spark: SparkSession, loop: dict) -> None:
    config = loop["config"]
    rows = read_metric_history(
        spark, config, since=day_start(D - dt.timedelta(days=10)), until=day_start(PHASE_TWO_END + dt.timedelta(days=1))
    )
    perf = [r for r in rows if r.family == "performance" and r.value is not None]

    def mean(metric: str, version: str, first: dt.date, last: dt.date) -> float:
        values = [
            r.value
            for r in perf
            if r.metric == metric and r.model_version == version and first <= r.window_start.date() <= last
        ]
        assert values, (metric, version, first, last)
        return sum(values) / len(values)

    drifted_v1 = mean("average_precision", loop["v1"], D, D + dt.timedelta(days=12))
    after_v2 = mean("average_precision", loop["v2"], PHASE_ONE_END + dt.timedelta(days=1), PHASE_TWO_END)
    assert after_v2 > drifted_v1 + 0.2, (drifted_v1, after_v2)
    cp_v1 = mean("card_precision", loop["v1"], D, D + dt.timedelta(days=12))
    cp_v2 = mean("card_precision", loop["v2"], PHASE_ONE_END + dt.timedelta(days=1), PHASE_TWO_END)
    assert cp_v2 > cp_v1, (cp_v1, cp_v2)
    (ARTIFACTS / "drift_loop.json").parent.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "drift_loop.json").write_text(
        json.dumps(
            {
                "drift_day": D.isoformat(),
                "first_alert_window": D.isoformat(),
                "retraining_as_of": loop["phase_one"].decision.as_of.isoformat(),
                "average_precision": {"v1_drifted_days": drifted_v1, "v2_after_swap": after_v2},
                "card_precision_at_20": {"v1_drifted_days": cp_v1, "v2_after_swap": cp_v2},
            },
            indent=1,
        )
    )


def test_the_bad_records_are_dead_lettered(spark: SparkSession, loop: dict) -> None:
    letters = read_delta(spark, dead_letter_path(loop["config"]))
    reasons = sorted(r["reason"] for r in letters.collect())
    assert reasons.count("malformed_json") == 2
    assert "amount_out_of_range" in reasons or "missing_required_field" in reasons


def test_the_dashboard_shows_the_loop_in_a_real_browser(loop: dict, tmp_path: Path) -> None:
    """The dashboard over this lake, opened by headless Chromium: every chart panel has data; screenshot kept."""
    from lakestream.monitoring.dashboard import start_dashboard, stop_dashboard

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Chromium is missing: `make setup` installs Debian's chromium package (apt-get install chromium)"
    port = free_port()
    config = loop["config"].model_copy(
        update={
            "monitoring": loop["config"].monitoring.model_copy(
                update={"dashboard": loop["config"].monitoring.dashboard.model_copy(update={"port": port})}
            )
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment(loop["values"], extra={"monitoring.dashboard.port": port}).items():
            patch.setenv(key, value)
        start_dashboard(config)
    try:
        url = f"http://127.0.0.1:{port}/"
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
        ]
        dom = subprocess.run(
            [browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "dashboard.png"
        subprocess.run(
            [browser, *flags, "--window-size=1400,2600", f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    finally:
        stop_dashboard(config)
    for panel in ("decisions_per_minute", "drift", "performance", "reasons"):
        section = dom[dom.index(f'data-panel="{panel}"') :]
        section = section[: section.find("</section>")]
        points = [int(n) for n in re.findall(r'data-points="(\d+)"', section)]
        assert points, (panel, section[:500])
        assert max(points) > 0, (panel, section[:500])
    assert "block" in dom or "review" in dom  # the live alert feed lists alerts
    assert f"v{loop['v2']}" in dom or loop["v2"] in dom
    assert screenshot.stat().st_size > 50_000
