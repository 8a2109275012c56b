"""Unit tests of the pure NumPy simulator core against the legacy global streams and the pandas reference."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from benchmark_scripts import load_benchmark

from lakestream.errors import ConfigError
from lakestream.simulate import generator
from lakestream.simulate.generator import (
    SimulationParams,
    apply_fraud_scenarios,
    compute_available_terminals,
    draw_compromised_customers,
    draw_compromised_terminals,
    generate_customer_profiles,
    generate_customer_transactions,
    generate_terminal_profiles,
    select_scenario3_transactions,
    simulate_transactions,
)

SMALL = SimulationParams(n_customers=50, n_terminals=100, nb_days=20)


def _as_reference_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """generator.py output renamed to the reference column names."""
    return pd.DataFrame(
        {
            "TRANSACTION_ID": columns["transaction_id"],
            "TX_DATETIME": columns["tx_datetime"].astype("datetime64[ns]"),
            "CUSTOMER_ID": columns["customer_id"],
            "TERMINAL_ID": columns["terminal_id"],
            "TX_AMOUNT": columns["amount"],
            "TX_TIME_SECONDS": columns["tx_time_seconds"],
            "TX_TIME_DAYS": columns["tx_time_days"],
            "TX_FRAUD": columns["tx_fraud"],
            "TX_FRAUD_SCENARIO": columns["tx_fraud_scenario"],
        }
    )


@pytest.fixture(scope="module")
def small_dataset() -> dict[str, np.ndarray]:
    return simulate_transactions(SMALL)


# --- determinism and agreement with the independent pandas implementation ---------------------------


def test_simulation_is_deterministic(small_dataset: dict[str, np.ndarray]) -> None:
    again = simulate_transactions(SMALL)
    assert small_dataset.keys() == again.keys()
    for name, values in small_dataset.items():
        np.testing.assert_array_equal(values, again[name], err_msg=name)


def test_seed_offset_changes_the_data(small_dataset: dict[str, np.ndarray]) -> None:
    shifted = simulate_transactions(SimulationParams(n_customers=50, n_terminals=100, nb_days=20, seed_offset=7))
    assert not np.array_equal(small_dataset["amount"][:50], shifted["amount"][:50])


def test_matches_pandas_reference_row_for_row(small_dataset: dict[str, np.ndarray]) -> None:
    reference = load_benchmark("simulator_pandas_reference").generate_dataset_pandas(
        n_customers=SMALL.n_customers,
        n_terminals=SMALL.n_terminals,
        nb_days=SMALL.nb_days,
        start_date=SMALL.start_date,
        radius=SMALL.radius,
    )
    ours = _as_reference_frame(small_dataset)
    assert len(ours) > 500
    assert set(ours["TX_FRAUD_SCENARIO"]) == {0, 2, 3}  # the small run exercises the multi-day scenarios
    keys = ["TX_TIME_SECONDS", "CUSTOMER_ID", "TX_AMOUNT", "TERMINAL_ID"]
    pd.testing.assert_frame_equal(
        reference.sort_values(keys, kind="stable").reset_index(drop=True),
        ours.sort_values(keys, kind="stable").reset_index(drop=True),
        check_dtype=False,
    )
    # Both break timestamp ties by generation order, so even the transaction ids agree.
    pd.testing.assert_frame_equal(reference.reset_index(drop=True), ours, check_dtype=False)


# --- local generator instances reproduce the legacy global streams ----------------------------------


@pytest.mark.parametrize("seed", [0, 1, 17, 4999])
def test_randomstate_instance_equals_legacy_global_stream(seed: int) -> None:
    def draws(
        poisson: Callable[[float], int],
        normal: Callable[[float, float], float],
        uniform: Callable[[float, float], float],
    ) -> Iterator[float]:
        for _ in range(200):
            yield poisson(2.7)
            yield normal(43200.0, 20000.0)  # normals come in cached pairs: interleaving must not matter
            yield normal(30.0, 15.0)
            yield uniform(0.0, 60.0)

    np.random.seed(seed)
    legacy = list(draws(np.random.poisson, np.random.normal, np.random.uniform))
    rng = np.random.RandomState(seed)
    assert list(draws(rng.poisson, rng.normal, rng.uniform)) == legacy


@pytest.mark.parametrize("seed", [0, 3, 12345])
def test_random_instance_equals_module_random(seed: int) -> None:
    population = list(range(0, 700, 7))
    random.seed(seed)
    legacy = [random.choice(population) for _ in range(100)] + random.sample(population, k=33)
    rng = random.Random(seed)
    assert [rng.choice(population) for _ in range(100)] + rng.sample(population, k=33) == legacy


def test_customer_profiles_equal_scalar_legacy_draws() -> None:
    profiles = generate_customer_profiles(SimulationParams(n_customers=40))
    np.random.seed(0)
    for i in range(40):
        expected = [np.random.uniform(0, 100), np.random.uniform(0, 100), np.random.uniform(5, 100)]
        expected.append(np.random.uniform(0, 4))
        got = [profiles[k][i] for k in ("x", "y", "mean_amount", "mean_nb_tx_per_day")]
        assert got == expected
        assert profiles["std_amount"][i] == expected[2] / 2
    np.testing.assert_array_equal(profiles["customer_id"], np.arange(40))


def test_terminal_profiles_equal_scalar_legacy_draws() -> None:
    profiles = generate_terminal_profiles(SimulationParams(n_terminals=30))
    np.random.seed(1)
    for i in range(30):
        assert [profiles["x"][i], profiles["y"][i]] == [np.random.uniform(0, 100), np.random.uniform(0, 100)]


# --- fraud scenario draws equal pandas ---------------------------------------------------------------


@pytest.mark.parametrize("day", [0, 1, 5, 181])
def test_compromised_terminals_equal_pandas_sample(day: int) -> None:
    ids = np.arange(10_000, dtype=np.int64)
    expected = pd.Series(ids).sample(n=2, random_state=day).to_numpy()
    np.testing.assert_array_equal(draw_compromised_terminals(day, ids), expected)
    shifted_ids = ids * 3 + 11  # ids that are not row positions
    expected = pd.Series(shifted_ids).sample(n=2, random_state=day).to_numpy()
    np.testing.assert_array_equal(draw_compromised_terminals(day, shifted_ids), expected)


@pytest.mark.parametrize("day", [0, 2, 100])
def test_compromised_customers_equal_pandas_sample(day: int) -> None:
    ids = np.arange(5_000, dtype=np.int64)
    expected = pd.Series(ids).sample(n=3, random_state=day).to_numpy()
    np.testing.assert_array_equal(draw_compromised_customers(day, ids), expected)


def test_seed_offset_shifts_scenario_seeds() -> None:
    ids = np.arange(1_000)
    np.testing.assert_array_equal(draw_compromised_terminals(3, ids, seed_offset=4), draw_compromised_terminals(7, ids))


def test_sampling_more_ids_than_exist_is_rejected() -> None:
    with pytest.raises(ConfigError, match="cannot sample 3 ids"):
        draw_compromised_customers(0, np.arange(2))


@pytest.mark.parametrize("day", [0, 9])
def test_scenario3_selection_equals_seeded_random_sample(day: int) -> None:
    ids = [4, 8, 15, 16, 23, 42, 57, 91, 108, 130]
    random.seed(day)
    expected = random.sample(ids, k=3)
    assert select_scenario3_transactions(day, np.array(ids)) == expected
    assert select_scenario3_transactions(day, ids[:2]) == []


# --- hand-checkable edge cases of the per-customer stream --------------------------------------------


class _ScriptedRandomState:
    """Stand-in for np.random.RandomState that replays scripted values and fails on any extra draw."""

    def __init__(self, script: dict[str, list[float]]) -> None:
        self.script = script
        self.uniform_args: list[tuple[float, float]] = []

    def _next(self, name: str) -> float:
        if not self.script[name]:
            raise AssertionError(f"unexpected extra {name} draw")
        return self.script[name].pop(0)

    def poisson(self, lam: float) -> float:
        return self._next("poisson")

    def normal(self, loc: float, scale: float) -> float:
        return self._next("normal")

    def uniform(self, low: float, high: float) -> float:
        self.uniform_args.append((low, high))
        return self._next("uniform")


def test_time_rejection_and_negative_amount_redraw(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = _ScriptedRandomState(
        {
            "poisson": [5, 0],
            # time, amount pairs; the two out-of-range times are followed directly by the next time
            "normal": [-0.5, 5000.7, 12.3456, 86400.2, 7000.0, -3.0, 86399.9, 40.004],
            "uniform": [8.0],
        }
    )
    monkeypatch.setattr(generator.np.random, "RandomState", lambda seed: scripted)
    result = generate_customer_transactions(
        customer_id=9,
        mean_amount=20.0,
        std_amount=10.0,
        mean_nb_tx_per_day=1.0,
        available_terminals=np.array([3, 5, 8]),
        nb_days=2,
    )
    chooser = random.Random(9)
    expected_terminals = [chooser.choice([3, 5, 8]) for _ in range(3)]
    np.testing.assert_array_equal(result["tx_time_seconds"], [5000, 7000, 86399])
    np.testing.assert_array_equal(result["tx_time_days"], [0, 0, 0])
    np.testing.assert_array_equal(result["amount"], [12.35, 8.0, 40.0])
    np.testing.assert_array_equal(result["terminal_id"], expected_terminals)
    np.testing.assert_array_equal(result["customer_id"], [9, 9, 9])
    assert scripted.uniform_args == [(0.0, 40.0)]
    assert all(not values for values in scripted.script.values())  # every scripted draw consumed


def test_customer_without_terminals_emits_nothing() -> None:
    result = generate_customer_transactions(
        customer_id=1,
        mean_amount=50.0,
        std_amount=25.0,
        mean_nb_tx_per_day=3.9,
        available_terminals=np.array([], dtype=np.int64),
        nb_days=30,
    )
    assert {name: len(values) for name, values in result.items()} == dict.fromkeys(result, 0)
    assert result["amount"].dtype == np.float64


def test_transaction_times_stay_strictly_inside_each_day(small_dataset: dict[str, np.ndarray]) -> None:
    time_of_day = small_dataset["tx_time_seconds"] - small_dataset["tx_time_days"] * 86_400
    assert time_of_day.min() > 0
    assert time_of_day.max() < 86_400


# --- available terminals -------------------------------------------------------------------------------


def test_available_terminals_strict_radius_and_ascending_ids() -> None:
    customers = np.array([[0.0, 0.0], [50.0, 50.0], [99.0, 1.0]])
    terminals = np.array([[3.0, 4.0], [2.0, 4.0], [80.0, 80.0], [52.0, 51.0], [0.0, -4.999], [50.0, 45.0]])
    available = compute_available_terminals(customers, terminals, 5.0)
    # (3, 4) is exactly 5 away: excluded; (50, 45) likewise.
    assert [a.tolist() for a in available] == [[1, 4], [3], []]


def test_available_terminals_equal_brute_force_with_tiny_blocks() -> None:
    rng = np.random.RandomState(42)
    customers = rng.uniform(0, 100, size=(200, 2))
    terminals = rng.uniform(0, 100, size=(400, 2))
    available = compute_available_terminals(customers, terminals, 7.5, max_block_elements=10)
    for row, found in enumerate(available):
        distances = np.sqrt(np.sum(np.square(customers[row] - terminals), axis=1))
        np.testing.assert_array_equal(found, np.flatnonzero(distances < 7.5))


# --- fraud scenarios -----------------------------------------------------------------------------------


def test_scenario1_threshold_is_strict() -> None:
    table = {
        "customer_id": np.array([0, 1, 2]),
        "terminal_id": np.array([0, 1, 2]),
        "tx_time_seconds": np.array([10, 20, 30]),
        "tx_time_days": np.array([0, 0, 0]),
        "amount": np.array([220.0, 220.01, 5.0]),
        "transaction_id": np.array([0, 1, 2]),
    }
    result = apply_fraud_scenarios(table, terminal_ids=np.arange(10_000), customer_ids=np.arange(5_000))
    np.testing.assert_array_equal(result["tx_fraud"], [0, 1, 0])
    np.testing.assert_array_equal(result["tx_fraud_scenario"], [0, 1, 0])
    np.testing.assert_array_equal(result["amount"], [220.0, 220.01, 5.0])


def test_scenario2_window_covers_28_days_from_the_draw() -> None:
    terminal_ids = np.arange(10_000)
    compromised = int(draw_compromised_terminals(0, terminal_ids)[0])
    later_draws = {int(t) for day in range(1, 28) for t in draw_compromised_terminals(day, terminal_ids)}
    assert compromised not in later_draws  # precondition: only day 0 compromises this terminal
    days = np.array([0, 27, 28])
    table = {
        "customer_id": np.array([4_999, 4_999, 4_999]),
        "terminal_id": np.full(3, compromised),
        "tx_time_seconds": days * 86_400 + 100,
        "tx_time_days": days,
        "amount": np.array([10.0, 10.0, 10.0]),
        "transaction_id": np.arange(3),
    }
    result = apply_fraud_scenarios(table, terminal_ids=terminal_ids, customer_ids=np.arange(5_000))
    np.testing.assert_array_equal(result["tx_fraud"], [1, 1, 0])
    np.testing.assert_array_equal(result["tx_fraud_scenario"], [2, 2, 0])


def test_scenario3_multiplications_compound_on_overlapping_windows() -> None:
    params = SimulationParams(n_customers=20, n_terminals=50, nb_days=40)  # few cards: many overlaps
    dataset = simulate_transactions(params)
    customers = generate_customer_profiles(params)
    terminals = generate_terminal_profiles(params)
    available = compute_available_terminals(
        np.column_stack((customers["x"], customers["y"])),
        np.column_stack((terminals["x"], terminals["y"])),
        params.radius,
    )
    raw = generator.order_transactions(generator.generate_transactions(customers, available, nb_days=params.nb_days))
    factor = np.round(dataset["amount"] / raw["amount"], 9)
    multiplied = factor != 1.0
    # Overlapping 14-day windows of the same card compound the x5: the factors are powers of 5.
    assert set(factor.tolist()) <= {5.0**k for k in range(8)}
    assert (factor >= 25.0).any()
    np.testing.assert_array_equal(dataset["tx_fraud_scenario"][multiplied], 3)


def test_invalid_params_are_rejected_with_the_value() -> None:
    with pytest.raises(ConfigError, match="n_customers must be >= 0, got -1"):
        SimulationParams(n_customers=-1)
    with pytest.raises(ConfigError, match="start_date"):
        SimulationParams(start_date="April 1st")
