"""The quality section of the configuration and the checks made on it before any data is read."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from lakestream.config import LakestreamConfig
from lakestream.config.models import IdRangeConfig, QualityConfig, TransactionRulesConfig
from lakestream.errors import ConfigError
from lakestream.quality.kinds import TRANSACTIONS, get_event_kind
from lakestream.quality.replay import select_quarantined
from lakestream.quality.silver import days_between


def test_base_configuration_declares_the_rules(config: LakestreamConfig) -> None:
    quality = config.quality
    assert quality.allowed_lateness_days == 3
    assert quality.transactions.max_amount == 10_000.0
    assert quality.transactions.customer_id == IdRangeConfig(min=0, max=9_999_999)
    assert quality.unknown_fields == "drop"
    assert TRANSACTIONS.required_fields(quality) == (
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "tx_amount",
    )


def test_unknown_keys_and_inverted_bounds_are_rejected() -> None:
    with pytest.raises(ValidationError, match="max_amout"):
        QualityConfig.model_validate({"transactions": {"max_amout": 5}})
    with pytest.raises(ValidationError, match="min 10 is above max 5"):
        IdRangeConfig(min=10, max=5)
    with pytest.raises(ValidationError, match="must be before"):
        QualityConfig(min_event_date=date(2030, 1, 1), max_event_date=date(2020, 1, 1))


def test_required_fields_must_be_message_fields_and_cover_silver(config: LakestreamConfig) -> None:
    typo = config.quality.model_copy(
        update={"transactions": TransactionRulesConfig(required_fields=("transaction_id", "amount"))}
    )
    with pytest.raises(ConfigError, match=r"names \['amount'\]"):
        TRANSACTIONS.required_fields(typo)
    partial = config.quality.model_copy(
        update={"transactions": TransactionRulesConfig(required_fields=("transaction_id",))}
    )
    with pytest.raises(ConfigError, match="leaves out"):
        TRANSACTIONS.required_fields(partial)


def test_unknown_kind_rule_and_date_range_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown event kind 'payments'"):
        get_event_kind("payments")
    with pytest.raises(ConfigError, match="unknown quarantine rule"):
        select_quarantined(None, kind=TRANSACTIONS, rules=["amount_too_big"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="before start date"):
        list(days_between(date(2018, 4, 2), date(2018, 4, 1)))
    assert list(days_between(date(2018, 4, 1), date(2018, 4, 2))) == [date(2018, 4, 1), date(2018, 4, 2)]
