"""Loading feature sets: the repository's sets are valid; nonsense specs are refused with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestream.errors import ConfigError
from lakestream.features.spec import FeatureSetSpec, feature_set_path, load_feature_set

FEATURES_DIR = Path(__file__).resolve().parents[2] / "conf" / "features"

BOOK_FEATURES = [
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
    "TERMINAL_ID_NB_TX_1DAY_WINDOW",
    "TERMINAL_ID_RISK_1DAY_WINDOW",
    "TERMINAL_ID_NB_TX_7DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_NB_TX_30DAY_WINDOW",
    "TERMINAL_ID_RISK_30DAY_WINDOW",
]


def _minimal(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "t",
        "version": 1,
        "windows": [
            {"entity": "customer_id", "windows_days": [1], "aggregations": [{"name": "N_{w}", "agg": "count"}]}
        ],
        "model_inputs": ["tx_amount", "N_1"],
    }
    spec.update(changes)
    return spec


def _load(tmp_path: Path, spec: dict[str, Any]) -> FeatureSetSpec:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_feature_set(path)


def test_fraud_v1_is_exactly_the_books_features() -> None:
    spec = load_feature_set(feature_set_path(FEATURES_DIR, "fraud_v1"))
    assert spec.feature_names() == BOOK_FEATURES
    assert list(spec.model_inputs) == ["tx_amount", *BOOK_FEATURES]
    assert spec.lookback_days == 37


def test_fraud_v2_extends_v1() -> None:
    spec = load_feature_set(feature_set_path(FEATURES_DIR, "fraud_v2"))
    assert set(BOOK_FEATURES) <= set(spec.model_inputs)
    assert len(spec.model_inputs) > 15
    assert spec.lookback_days == 67


def test_unknown_feature_set_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown feature set 'nope'.*fraud_v1"):
        feature_set_path(FEATURES_DIR, "nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"windows": [{"entity": "card", "windows_days": [1], "aggregations": [{"name": "N", "agg": "count"}]}]},
            r"window entity 'card' is not a source column",
        ),
        (
            {
                "windows": [
                    {"entity": "customer_id", "windows_days": [0], "aggregations": [{"name": "N", "agg": "count"}]}
                ]
            },
            r"windows must be > 0",
        ),
        (
            {
                "windows": [
                    {
                        "entity": "customer_id",
                        "windows_days": [1],
                        "aggregations": [{"name": "S", "agg": "sum", "column": "tx_amont"}],
                    }
                ]
            },
            r"reads unknown column 'tx_amont'",
        ),
        (
            {
                "windows": [
                    {
                        "entity": "terminal_id",
                        "windows_days": [1],
                        "delay_days": 7,
                        "aggregations": [{"name": "N", "agg": "count"}],
                    }
                ]
            },
            r"delay_days=7 but no label aggregation",
        ),
        (
            {
                "windows": [
                    {
                        "entity": "terminal_id",
                        "windows_days": [1],
                        "delay_days": 2,
                        "aggregations": [{"name": "R", "agg": "mean", "on_label": True}],
                    }
                ]
            },
            r"would read labels not yet known \(leakage\)",
        ),
        (
            {
                "windows": [
                    {
                        "entity": "customer_id",
                        "windows_days": [1, 1],
                        "aggregations": [{"name": "N_{w}", "agg": "count"}],
                    }
                ]
            },
            r"duplicate feature names.*N_1",
        ),
        ({"model_inputs": ["tx_amount", "N_2"]}, r"model_inputs \['N_2'\] are neither"),
        (
            {"row_features": [{"name": "R", "kind": "ratio", "column": "tx_amount"}]},
            r"kind 'ratio' needs \['denominator'\]",
        ),
        (
            {
                "windows": [
                    {"entity": "customer_id", "windows_days": [1], "aggregations": [{"name": "M", "agg": "mean"}]}
                ]
            },
            r"agg 'mean' needs a column",
        ),
        (
            {
                "windows": [
                    {
                        "entity": "customer_id",
                        "windows_days": [1],
                        "aggregations": [{"name": "F", "agg": "time_since_first"}],
                    }
                ]
            },
            r"time_since_first aggregations \['F'\] need a delayed \(label\) window",
        ),
        (
            {
                "windows": [
                    {
                        "entity": "customer_id",
                        "windows_days": [1],
                        "aggregations": [{"name": "G", "agg": "time_since_last", "column": "tx_amount"}],
                    }
                ]
            },
            r"agg 'time_since_last' takes no column",
        ),
        (
            {
                "windows": [
                    {"entity": "customer_id", "windows_days": [1], "aggregations": [{"name": "N", "agg": "count"}]},
                    {
                        "entity": "terminal_id",
                        "windows_days": [7],
                        "aggregations": [{"name": "M", "agg": "mean", "column": "N"}],
                    },
                ]
            },
            r"aggregation M of the 'terminal_id' windows reads 'N', a window feature of an earlier group",
        ),
        ({"source": {"fixed_point": {"amount": 2}}}, r"source.fixed_point names 'amount', not one of"),
        ({"source": {"fixed_point": {"tx_amount": 9}}}, r"source.fixed_point.tx_amount: 9 decimals; expected 0 to 6"),
    ],
)
def test_nonsense_specs_are_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    spec = _minimal(**change)
    if "model_inputs" not in change:
        spec["model_inputs"] = ["tx_amount"]
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, spec)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"windows.0.window_days"):
        _load(tmp_path, _minimal(windows=[{"entity": "customer_id", "window_days": [1], "aggregations": []}]))


def test_adding_a_window_is_configuration_only(tmp_path: Path) -> None:
    data = yaml.safe_load((FEATURES_DIR / "fraud_v1.yaml").read_text())
    data["windows"][0]["windows_days"].append(14)
    spec = _load(tmp_path, data)
    assert "CUSTOMER_ID_NB_TX_14DAY_WINDOW" in spec.feature_names()
    assert "CUSTOMER_ID_AVG_AMOUNT_14DAY_WINDOW" in spec.feature_names()
