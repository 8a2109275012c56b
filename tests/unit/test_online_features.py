"""The online (streaming) feature kernel equals the brute-force reference of the spec, batch by batch."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from lakestream.features.spec import load_feature_set
from lakestream.streaming.online_features import History, OnlinePlan, compact, window_features
from tests.unit.feature_reference import reference_features

FEATURES_DIR = Path(__file__).resolve().parents[2] / "conf" / "features"
START = dt.datetime(2018, 4, 1)


def random_rows(seed: int, n: int = 600) -> list[dict]:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 70 * 86_400, n))
    seconds[10:20] = seconds[10]  # same-second ties
    rows = []
    for i, second in enumerate(seconds):
        when = START + dt.timedelta(seconds=int(second))
        fraud = int(rng.random() < 0.2)
        delay = int(rng.integers(1, 10 * 86_400))
        rows.append(
            {
                "transaction_id": i * 3 + int(rng.integers(0, 3)),
                "tx_datetime": when,
                "customer_id": int(rng.integers(0, 3)),
                "terminal_id": int(rng.integers(0, 4)),
                "tx_amount": float(np.round(rng.gamma(2.0, 30.0), 2)),
                "tx_fraud": fraud,
                "reported_at": when + dt.timedelta(seconds=delay) if fraud else None,
            }
        )
    ids = [r["transaction_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    return rows


def online(rows: list[dict], plan: OnlinePlan, batches: int) -> dict[int, dict[str, float]]:
    """Feed rows in `batches` arrival chunks per entity key, compacting as the processor does."""
    epoch = {r["transaction_id"]: int(r["tx_datetime"].replace(tzinfo=dt.UTC).timestamp()) for r in rows}
    delay = plan.label_delay_seconds
    known = np.array(
        [
            r["transaction_id"]
            for r in rows
            if r["tx_fraud"] == 1
            and r["reported_at"].replace(tzinfo=dt.UTC).timestamp() <= epoch[r["transaction_id"]] + delay
        ],
        dtype=np.int64,
    )
    result: dict[int, dict[str, float]] = {r["transaction_id"]: {} for r in rows}
    for entity in plan.entities:
        for key in {r[entity] for r in rows}:
            mine = [r for r in rows if r[entity] == key]
            history = History.empty(len(plan.value_columns))
            history.known_ids = known  # labels may arrive first: their value does not depend on arrival
            for chunk in np.array_split(np.arange(len(mine)), batches):
                part = [mine[i] for i in chunk]
                if not part:
                    continue
                ts = np.array([epoch[r["transaction_id"]] for r in part], dtype=np.int64)
                ids = np.array([r["transaction_id"] for r in part], dtype=np.int64)
                values = np.array([[r[c] for c in plan.value_columns] for r in part], dtype=np.float64)
                history, duplicate, features = window_features(plan, entity, history, ts, ids, values)
                assert not duplicate.any()
                for tx_id, row in zip(ids.tolist(), features, strict=True):
                    for name, value in zip(plan.feature_names, row, strict=True):
                        if not math.isnan(value) or name.startswith(entity.split("_")[0].upper()):
                            result[tx_id][name] = value
                history = compact(history, retention_seconds=plan.retention_seconds)
    return result


@pytest.mark.parametrize("feature_set", ["fraud_v1", "fraud_v2"])
@pytest.mark.parametrize("batches", [1, 7])
def test_online_kernel_equals_reference(feature_set: str, batches: int) -> None:
    spec = load_feature_set(FEATURES_DIR / f"{feature_set}.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0)
    rows = random_rows(seed=batches)
    expected = reference_features(rows, spec)
    got = online(rows, plan, batches)
    for tx_id, values in expected.items():
        for name in plan.feature_names:
            want, have = values[name], got[tx_id][name]
            if want is None:
                assert math.isnan(have), (tx_id, name, have)
            else:
                assert have == pytest.approx(want, rel=1e-12, abs=1e-9), (tx_id, name)


def test_duplicates_are_flagged_and_not_counted() -> None:
    spec = load_feature_set(FEATURES_DIR / "fraud_v1.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0)
    history = History.empty(1)
    ts = np.array([100, 200], dtype=np.int64)
    history, duplicate, _ = window_features(plan, "customer_id", history, ts, np.array([1, 2]), np.ones((2, 1)))
    assert not duplicate.any()
    history, duplicate, features = window_features(
        plan, "customer_id", history, np.array([200, 300]), np.array([2, 3]), np.ones((2, 1))
    )
    assert duplicate.tolist() == [True, False]
    count_1day = plan.feature_names.index("CUSTOMER_ID_NB_TX_1DAY_WINDOW")
    assert features[1, count_1day] == 3
    assert len(history.ids) == 3
