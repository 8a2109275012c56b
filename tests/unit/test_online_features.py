"""The online (streaming) feature kernel equals the brute-force reference of the spec, batch by batch."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakestream.features.spec import load_feature_set
from lakestream.streaming.online_features import (
    CACHE_MAX_BYTES,
    LABEL,
    TX,
    WORKER_CACHE,
    Cached,
    History,
    OnlineFeatureProcessor,
    OnlinePlan,
    SharedCopies,
    StateCache,
    Stored,
    compact,
    copies_scope,
    member,
    time_then_id_order,
    window_features,
)
from lakestream.streaming.tws_output import Columns, as_pandas
from tests.unit.feature_reference import reference_features
from tests.unit.test_features_golden import KITCHEN_SINK

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


def entity_features(plan: OnlinePlan, entity: str) -> list[str]:
    """The window features of one entity's groups, in plan order."""
    names = {name for group in plan.groups if group.entity == entity for _, _, name in group.expanded()}
    return [name for name in plan.feature_names if name in names]


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
                        if not math.isnan(value) or name in entity_features(plan, entity):
                            result[tx_id][name] = value
                history = compact(history, retention_seconds=plan.retention_seconds)
    return result


@pytest.mark.parametrize("feature_set", ["fraud_v1", "fraud_v2", "kitchen_sink"])
@pytest.mark.parametrize("batches", [1, 7])
def test_online_kernel_equals_reference(feature_set: str, batches: int) -> None:
    """kitchen_sink: every aggregation kind, undelayed and delayed (the golden tests' spec)."""
    spec = KITCHEN_SINK if feature_set == "kitchen_sink" else load_feature_set(FEATURES_DIR / f"{feature_set}.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0)
    rows = random_rows(seed=batches)
    expected = reference_features(rows, spec)
    got = online(rows, plan, batches)
    assert_equal_to_reference(got, expected, plan)


def assert_equal_to_reference(got: dict, expected: dict, plan: OnlinePlan) -> None:
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


class ListStateInMemory:
    """The ListState calls the processor makes, kept in a list (the Spark side is covered by the stream tests)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def get(self) -> Iterator[tuple]:
        return iter(list(self.rows))

    def appendValue(self, row: tuple) -> None:  # noqa: N802 - pyspark's name
        self.rows.append(row)

    def put(self, rows: list[tuple]) -> None:
        self.rows = list(rows)


class ValueStateInMemory:
    def __init__(self) -> None:
        self.value: tuple | None = None

    def get(self) -> tuple | None:
        return self.value

    def update(self, value: tuple) -> None:
        self.value = value


class StateHandleInMemory:
    def getListState(self, *_: object) -> ListStateInMemory:  # noqa: N802 - pyspark's name
        return ListStateInMemory()

    def getValueState(self, *_: object) -> ValueStateInMemory:  # noqa: N802 - pyspark's name
        return ValueStateInMemory()


def with_own_cache(processor: OnlineFeatureProcessor) -> OnlineFeatureProcessor:
    """The processor with a cache of its own, as if it ran in a worker process of its own."""
    processor.cache = StateCache()
    return processor


def outputs(processor: OnlineFeatureProcessor, key: tuple, frame: pd.DataFrame) -> list[pd.DataFrame]:
    """The frames the processor yields for one input frame (NumPy columns: the worker's output path), as DataFrames."""
    yielded = list(processor.handleInputRows(key, iter([frame]), None))
    assert all(isinstance(out, Columns) for out in yielded)
    return [as_pandas(out) for out in yielded]


def operator_frames(rows: list[dict], plan: OnlinePlan, entity: str, batches: int) -> list[pd.DataFrame]:
    """The operator's input rows of one entity in `batches` arrival chunks; every chargeback in the first one."""
    delay = plan.label_delay_seconds
    epoch = {r["transaction_id"]: int(r["tx_datetime"].replace(tzinfo=dt.UTC).timestamp()) for r in rows}

    def row(r: dict, kind: str) -> dict:
        reported = r["reported_at"]
        known = kind == LABEL and reported.replace(tzinfo=dt.UTC).timestamp() <= epoch[r["transaction_id"]] + delay
        return {
            "entity": entity,
            "entity_id": r[entity],
            "kind": kind,
            "transaction_id": r["transaction_id"],
            "ts": epoch[r["transaction_id"]],
            "known": int(known),
            "kafka_partition": 0,
            "kafka_offset": 0,
            "kafka_timestamp": 0,
            **{c: (r[c] if kind == TX else float("nan")) for c in plan.value_columns},
        }

    labels = [row(r, LABEL) for r in rows if r["tx_fraud"] == 1] if entity in plan.label_entities else []
    chunks = np.array_split(np.arange(len(rows)), batches)
    frames = [pd.DataFrame([row(rows[i], TX) for i in chunk]) for chunk in chunks]
    frames[0] = pd.concat([pd.DataFrame(labels), frames[0]], ignore_index=True) if labels else frames[0]
    return frames


@pytest.mark.parametrize(("feature_set", "cache"), [("fraud_v1", True), ("fraud_v2", True), ("fraud_v1", False)])
def test_bucketed_processor_equals_reference(feature_set: str, cache: bool) -> None:
    """Many entities per state key (composite time), 12 batches (compaction included), labels first; with the
    worker's state cache (every batch after the first reads it) and without (every batch reads the state)."""
    spec = load_feature_set(FEATURES_DIR / f"{feature_set}.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0, buckets=1)
    rows = random_rows(seed=3, n=900)
    expected = reference_features(rows, spec)
    got: dict[int, dict[str, float]] = {r["transaction_id"]: {} for r in rows}
    for entity in plan.entities:
        processor = OnlineFeatureProcessor(plan, cache_bytes=CACHE_MAX_BYTES if cache else 0)
        processor.init(StateHandleInMemory())
        if cache:
            with_own_cache(processor)
        for frame in operator_frames(rows, plan, entity, batches=12):
            for out in outputs(processor, (entity, 0), frame):
                assert (out["status"] == "ok").all()
                mine = entity_features(plan, entity)
                for record in out[["transaction_id", *mine]].to_dict("records"):
                    got[int(record.pop("transaction_id"))].update(record)
    assert_equal_to_reference(got, expected, plan)
    if cache:
        assert (processor.cache.hits, processor.cache.misses) == (11, 1)


@pytest.mark.parametrize("cache", [True, False])
def test_a_warm_start_from_the_initial_state_gives_the_features_of_a_stream_that_saw_it(cache: bool) -> None:
    """handleInitialState stores the bootstrap rows without computing their features; the rows after them get
    exactly the features of the whole history."""
    spec = load_feature_set(FEATURES_DIR / "fraud_v2.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0, buckets=1)
    rows = random_rows(seed=5, n=900)
    expected = reference_features(rows, spec)
    got: dict[int, dict[str, float]] = {}
    for entity in plan.entities:
        processor = OnlineFeatureProcessor(plan, cache_bytes=CACHE_MAX_BYTES if cache else 0)
        processor.init(StateHandleInMemory())
        if cache:
            with_own_cache(processor)
        frames = operator_frames(rows, plan, entity, batches=6)
        processor.handleInitialState((entity, 0), pd.concat(frames[:3], ignore_index=True), None)
        for frame in frames[3:]:
            for out in outputs(processor, (entity, 0), frame):
                assert (out["status"] == "ok").all()
                for record in out[["transaction_id", *entity_features(plan, entity)]].to_dict("records"):
                    got.setdefault(int(record.pop("transaction_id")), {}).update(record)
    assert len(got) == len(rows) // 2
    assert_equal_to_reference(got, {tx_id: expected[tx_id] for tx_id in got}, plan)
    if cache:
        assert (processor.cache.hits, processor.cache.misses) == (3, 1)


@pytest.mark.parametrize(
    ("shared", "first_counts", "second_counts"), [(False, (3, 3, 0), (0, 1, 0)), (True, (4, 2, 1), (1, 0, 1))]
)
def test_workers_taking_turns_on_a_key(
    tmp_path: Path, shared: bool, first_counts: tuple[int, int, int], second_counts: tuple[int, int, int]
) -> None:
    """Two workers take turns on one key (a micro-batch's tasks swapped workers), and a batch is re-run after its
    state was rolled back (a failed task): every batch gives the reference's features. Without shared copies each
    turn is a full read of the state; with them, a worker loads the copy the other left under the store's stamp.
    The rolled-back stamp has no copy any more (the batch after it removed it): the re-run reads the store."""
    spec = load_feature_set(FEATURES_DIR / "fraud_v1.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0, buckets=1)
    rows = random_rows(seed=5, n=400)
    expected = reference_features(rows, spec)
    entity, key = "customer_id", ("customer_id", 0)
    first, second = OnlineFeatureProcessor(plan), OnlineFeatureProcessor(plan)
    first.init(StateHandleInMemory())
    second.init(StateHandleInMemory())
    copies = SharedCopies(tmp_path / "copies", "the-query")
    for processor in (first, second):
        processor.cache = StateCache(shared=copies if shared else None)
    second.events, second.labels, second.stamp = first.events, first.labels, first.stamp  # one state store
    got: dict[int, dict[str, float]] = {r["transaction_id"]: {} for r in rows}

    def run(processor: OnlineFeatureProcessor, frame: pd.DataFrame) -> None:
        for out in outputs(processor, key, frame):
            for record in out[["transaction_id", *entity_features(plan, entity)]].to_dict("records"):
                got[int(record.pop("transaction_id"))].update(record)

    frames = operator_frames(rows, plan, entity, batches=6)
    run(first, frames[0])  # a new key: a miss
    run(first, frames[1])  # its own copy
    run(second, frames[2])  # second never saw the key: a full read, or the copy first left
    run(first, frames[3])  # first's own copy is old: a full read, or the copy second left
    committed = (list(first.events.rows), list(first.labels.rows), first.stamp.value)
    run(first, frames[4])  # its own copy
    first.events.rows, first.labels.rows, first.stamp.value = committed  # the batch failed: the store rolls back
    run(first, frames[4])  # the re-run: first's copy is of the failed attempt, a full read
    run(first, frames[5])  # its own copy again
    assert (first.cache.hits, first.cache.misses, first.cache.shared_hits) == first_counts
    assert (second.cache.hits, second.cache.misses, second.cache.shared_hits) == second_counts
    if shared:  # one copy left: the key's current state's
        assert [p.name for p in copies.root.iterdir()] == [f"customer_id-0.{first.stamp.value[0]}.state"]
    for tx_id, values in expected.items():
        for name in entity_features(plan, entity):
            want = float("nan") if values[name] is None else values[name]
            assert got[tx_id][name] == pytest.approx(want, rel=1e-12, abs=1e-9, nan_ok=True), (tx_id, name)


def test_shared_copies_round_trip_are_swept_and_never_fail_a_batch(tmp_path: Path) -> None:
    import os

    ids = np.arange(5, dtype=np.int64)
    entry = Cached(7, Stored(ids, ids + 1, ids + 2, np.ones((5, 2)), ids[:2], 3), 1234)
    copies = SharedCopies(tmp_path / "copies", "the-query")
    copies.save(("terminal_id", 3), entry)
    loaded = copies.load(("terminal_id", 3), 7)
    assert (loaded.stamp, loaded.written_ms, loaded.stored.chunks) == (7, 1234, 3)
    wanted = (*entry.stored.events(), ids[:2])
    for mine, theirs in zip((*loaded.stored.events(), loaded.stored.known_ids), wanted, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert all(array.flags.writeable for array in (*loaded.stored.events(), loaded.stored.known_ids))
    assert copies.load(("terminal_id", 3), 8) is None  # another stamp
    assert copies.load(("terminal_id", 4), 7) is None  # another key
    whole = copies.path(("terminal_id", 3), 7).read_bytes()
    for damaged in (whole[:-8], whole[:20], b"", b"\0" * 8 + whole[8:]):  # cut short, or not a copy's header
        copies.path(("terminal_id", 5), 7).write_bytes(damaged)
        assert copies.load(("terminal_id", 5), 7) is None

    stale = copies.path(("customer_id", 1), 5)
    stale.write_bytes(b"left by a query killed an hour ago")
    os.utime(stale, (0, 0))
    copies.swept_at = None
    copies.save(("terminal_id", 3), replace(entry, stamp=9))
    assert not stale.exists()
    assert copies.load(("terminal_id", 3), 9) is not None

    unwritable = SharedCopies(tmp_path / "a-file", "the-query")
    (tmp_path / "a-file").write_text("not a folder")
    unwritable.save(("terminal_id", 3), entry)  # logged, not raised
    assert unwritable.failed_writes == 1
    assert unwritable.load(("terminal_id", 3), 7) is None

    cache = StateCache(max_bytes=entry.stored.nbytes, shared=copies)
    cache.put(("a",), entry)
    cache.put(("b",), replace(entry, stamp=11))  # evicts "a", and its copy
    assert copies.load(("a",), 7) is None
    assert copies.load(("b",), 11) is not None


def test_a_query_folder_of_copies_is_cleared_and_stale_ones_of_other_queries_swept(tmp_path: Path) -> None:
    """The driver empties its query's folder at start and after a stop; a start also removes the copies other
    queries left untouched for an hour (a killed stream's), with their folders once empty."""
    import os

    ids = np.arange(3, dtype=np.int64)
    entry = Cached(7, Stored(ids, ids, ids, np.ones((3, 1)), ids[:0], 1), 0)
    ours, running, killed = (SharedCopies(tmp_path, scope) for scope in ("ours", "running", "killed"))
    for copies in (ours, running, killed):
        copies.swept_at = time.monotonic()  # no sweep from a worker's write here
        copies.save(("customer_id", 0), entry)
        copies.save(("customer_id", 1), entry)
    for path in killed.root.iterdir():
        os.utime(path, (0, 0))
    os.utime(running.path(("customer_id", 0), 7), (0, 0))  # a key of a running query gone quiet for an hour
    for name, age in (("customer_id-3.5.npz", 0), ("customer_id-4.6.npz", time.time())):  # the layout before
        (tmp_path / name).write_bytes(b"a copy of before the folders per query")
        os.utime(tmp_path / name, (age, age))
    assert ours.clear() == 2
    assert not ours.root.exists()
    assert ours.sweep() == 4
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["customer_id-4.6.npz"]
    assert not killed.root.exists()
    assert [p.name for p in running.root.iterdir()] == ["customer_id-1.7.state"]
    assert ours.clear() == 0  # nothing there: no error
    ours.save(("customer_id", 0), entry)  # a later run of the query makes its folder again
    assert ours.load(("customer_id", 0), 7) is not None

    scopes = {copies_scope("score-transactions", tmp_path / name) for name in ("a", "b", "a")}
    assert len(scopes) == 2
    assert all(scope.startswith("score-transactions-") and "/" not in scope for scope in scopes)


def test_a_cached_state_is_read_again_halfway_to_its_ttl() -> None:
    """The cache knows when a state was last rewritten whole; past half the TTL it reads the store (elements may
    be expiring there) and rewrites it."""
    cache = StateCache()
    spec = load_feature_set(FEATURES_DIR / "fraud_v1.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0, buckets=1)
    processor = OnlineFeatureProcessor(plan)
    processor.init(StateHandleInMemory())
    processor.cache = cache
    ttl_ms = plan.retention_seconds * 1000

    class At:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def getCurrentProcessingTimeInMs(self) -> int:  # noqa: N802 - pyspark's name
            return self.ms

    frames = operator_frames(random_rows(seed=7, n=60), plan, "customer_id", batches=4)
    for frame, at in zip(frames, [0, ttl_ms // 2 - 1, ttl_ms // 2 - 1 + ttl_ms // 2, ttl_ms], strict=True):
        for _ in processor.handleInputRows(("customer_id", 0), iter([frame]), At(at)):
            pass
    assert (cache.hits, cache.misses) == (2, 2)


def test_the_cache_keeps_the_most_recently_used_states_within_its_bytes() -> None:
    def entry(n: int) -> Cached:
        ids = np.arange(n, dtype=np.int64)
        return Cached(1, Stored(ids, ids, ids, np.zeros((n, 1)), ids[:0], 1), 0)

    cache = StateCache(max_bytes=3 * entry(100).stored.nbytes)
    for key in "abc":
        cache.put((key,), entry(100))
    assert cache.get(("a",), 1, now_ms=0, ttl_ms=10) is not None  # "a" is now the most recently used
    cache.put(("b",), entry(100))  # replaces b's entry: nothing goes
    assert list(cache.entries) == [("c",), ("a",), ("b",)]
    cache.put(("d",), entry(100))
    assert list(cache.entries) == [("a",), ("b",), ("d",)]
    assert cache.bytes == sum(e.stored.nbytes for e in cache.entries.values())
    cache.drop(("a",))
    assert cache.bytes == 2 * entry(100).stored.nbytes
    cache.resize(entry(100).stored.nbytes)  # a smaller streaming.state_cache_mb: the least recently used go now
    assert list(cache.entries) == [("d",)]


def test_the_cache_size_comes_from_the_query_and_zero_turns_it_off() -> None:
    plan = OnlinePlan.from_spec(load_feature_set(FEATURES_DIR / "fraud_v1.yaml"), allowed_lateness_seconds=0)
    off = OnlineFeatureProcessor(plan, cache_bytes=0)
    off.init(StateHandleInMemory())
    assert off.cache is None
    saved = WORKER_CACHE.max_bytes
    try:
        on = OnlineFeatureProcessor(plan, cache_bytes=64 << 20)
        on.init(StateHandleInMemory())
        assert on.cache is WORKER_CACHE
        assert WORKER_CACHE.max_bytes == 64 << 20
        assert WORKER_CACHE.shared is None  # no query folder named: no shared copies
        sharing = OnlineFeatureProcessor(plan, copies_scope="q-1")
        sharing.init(StateHandleInMemory())
        copies = WORKER_CACHE.shared
        assert copies.root == SharedCopies.machine_folder() / "q-1"
        sharing.init(StateHandleInMemory())  # the query's next task in this worker: the same copies (and sweep time)
        assert WORKER_CACHE.shared is copies
    finally:
        WORKER_CACHE.resize(saved)
        WORKER_CACHE.share(None)


def test_a_small_window_stddev_stays_exact_after_a_long_history() -> None:
    """A window's sums are differences of running sums over the bucket's whole history (every entity of it):
    in float64 their rounding grew with the history and reached 1e-8 in the stddev of two close amounts."""
    spec = load_feature_set(FEATURES_DIR / "fraud_v2.yaml")
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=0)
    rng = np.random.default_rng(11)
    n, day = 40_000, 86_400
    ts = np.sort(rng.integers(0, 20 * day, n))  # 20 days of one customer's bucket, before the window
    values = np.zeros((n, len(plan.value_columns)))
    values[:, plan.value_columns.index("tx_amount")] = rng.gamma(2.0, 300.0, n) + 1000.0
    history = History(ts, np.arange(n), values, np.empty(0, np.int64))
    window = np.array([30 * day, 30 * day + 60])  # alone in their 1-day window
    amounts = np.zeros((2, len(plan.value_columns)))
    amounts[:, plan.value_columns.index("tx_amount")] = [1234.56, 1234.98]
    _, _, features = window_features(plan, "customer_id", history, window, np.array([n, n + 1]), amounts)
    got = features[1, plan.feature_names.index("CUSTOMER_ID_STD_AMOUNT_1DAY_WINDOW")]
    assert got == pytest.approx(float(np.std([1234.56, 1234.98], ddof=1)), rel=0, abs=1e-9)


def customer_events(plan: OnlinePlan, events: list[tuple[int, int, int]]) -> pd.DataFrame:
    """Operator input rows of customer transactions: (transaction id, customer id, epoch second), no frauds."""
    rows = [
        {
            "transaction_id": tx_id,
            "tx_datetime": dt.datetime.fromtimestamp(second, dt.UTC).replace(tzinfo=None),
            "customer_id": customer,
            "terminal_id": 0,
            "tx_amount": 10.0,
            "tx_fraud": 0,
            "reported_at": None,
        }
        for tx_id, customer, second in events
    ]
    return operator_frames(rows, plan, "customer_id", batches=1)[0]


@pytest.mark.parametrize("skew_days", [None, 2])
def test_compaction_drops_an_entity_gone_quiet_once_past_retention_and_skew(skew_days: int | None) -> None:
    """Customer 1 transacts once; customer 2 keeps transacting in the same bucket. Compaction always keeps a
    customer's own last retention window; with a partition skew, the bucket's clock ages customer 1 out too, and
    only once it is more than the retention plus the skew past customer 1's event."""
    spec = load_feature_set(FEATURES_DIR / "fraud_v1.yaml")
    skew = None if skew_days is None else skew_days * 86_400
    plan = OnlinePlan.from_spec(spec, allowed_lateness_seconds=3600, buckets=1, partition_skew_seconds=skew)
    processor = OnlineFeatureProcessor(plan)
    processor.init(StateHandleInMemory())
    with_own_cache(processor)  # not the process's, whose copies go to the machine's shared folder
    quiet_at = 1_600_000_000
    horizon = quiet_at + plan.retention_seconds + (skew or 0)

    def customers_in_state() -> set[int]:
        return {int(e) for row in processor.events.rows for e in np.frombuffer(row[2], dtype=np.int64)}

    def send(events: list[tuple[int, int, int]]) -> None:
        for _ in processor.handleInputRows(("customer_id", 0), iter([customer_events(plan, events)]), None):
            pass

    send([(1, 1, quiet_at)])
    # customer 2 up to one second before the horizon, over enough batches to compact (COMPACT_AFTER_CHUNKS)
    for i in range(10):
        send([(100 + i, 2, horizon - 1 - (9 - i) * 60)])
    assert customers_in_state() == {1, 2}
    for i in range(10):  # and now past it
        send([(200 + i, 2, horizon + i * 60)])
    assert customers_in_state() == ({1, 2} if skew is None else {2})


def test_member_is_isin() -> None:
    rng = np.random.default_rng(3)
    ids = rng.choice(2_000_000, 5000, replace=False)
    for values in (rng.choice(ids, 40), rng.choice(2_000_000, 3000), np.empty(0, np.int64)):
        for of in (ids, ids[:0], values[:7]):
            assert np.array_equal(member(values, of), np.isin(values, of))


@pytest.mark.parametrize("runs", [1, 3, 8])
def test_time_then_id_order_is_lexsorts_order(runs: int) -> None:
    """Sorted runs (the state's chunks), ties of time with ids in and out of order, repeated (time, id) pairs."""
    rng = np.random.default_rng(runs)
    chunks = []
    for _ in range(runs):
        time = rng.integers(0, 50, 200)
        ids = rng.integers(0, 30, 200)
        order = np.lexsort((ids, time))
        chunks.append((time[order], ids[order]))
    time = np.concatenate([c[0] for c in chunks])
    ids = np.concatenate([c[1] for c in chunks])
    assert np.array_equal(time_then_id_order(time, ids), np.lexsort((ids, time)))
    unique_time = np.arange(len(time))[::-1]  # no ties at all: the stable sort alone
    assert np.array_equal(time_then_id_order(unique_time, ids), np.lexsort((ids, unique_time)))
