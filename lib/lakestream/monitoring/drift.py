"""Distribution drift against fixed bins: population stability index and Jensen-Shannon divergence, in Spark.

Bins are fixed by the reference (the model's training distribution, see ``reference``): ascending edges
e1 < ... < em define the m + 1 bins (-inf, e1], (e1, e2], ..., (em, +inf); a value's bin is the number of
edges strictly below it. Nulls are not binned (they are the null rate's business).

With p the observed share of a bin and q the reference share:

- PSI = sum over bins of (p - q) * ln(p / q), both shares floored at ``epsilon`` so that an empty bin
  gives a large but finite contribution (the usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shift);
- JS = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2, in bits (0 = same distribution, 1 = disjoint),
  on the raw shares (0 * log 0 = 0), symmetric and bounded, unlike PSI.

Everything here is a pure transform (DataFrame -> DataFrame); the group columns are the caller's (window,
model version, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

FEATURE = "feature"
VALUE = "value"
BIN = "bin"
KEY_SEPARATOR = "|"


def bin_index(value: Column, edges: Column) -> Column:
    """0-based bin of value for ascending edges (array<double>): the number of edges strictly below it."""
    return F.aggregate(edges, F.lit(0), lambda acc, edge: acc + F.when(value > edge, 1).otherwise(0))


def melt_columns(frame: DataFrame, *, columns: Sequence[str], keys: Sequence[str]) -> DataFrame:
    """Wide -> long: keys + feature (the column name) + value (as double), one row per row and column."""
    pairs = F.array(
        *[F.struct(F.lit(name).alias(FEATURE), F.col(name).cast("double").alias(VALUE)) for name in columns]
    )
    return frame.select(*keys, F.inline(pairs))


def edges_map(edges: Mapping[str, Sequence[float]]) -> Column:
    """A literal map key -> array<double> of edges (keys as built by ``edge_key``)."""
    if not edges:
        return F.create_map().cast("map<string,array<double>>")
    entries = []
    for key, values in edges.items():
        entries += [F.lit(key), F.array(*[F.lit(float(v)) for v in values]).cast("array<double>")]
    return F.create_map(*entries)


def edge_key(*parts: str) -> str:
    """The lookup key of a bin layout: e.g. (model version, feature) -> 'v3|tx_amount'."""
    return KEY_SEPARATOR.join(parts)


def assign_bins(long: DataFrame, *, edges: Mapping[str, Sequence[float]], key: Column) -> DataFrame:
    """long rows + bin (null for null values); rows whose key has no bin layout are dropped."""
    layout = F.element_at(edges_map(edges), key)
    return (
        long.withColumn("_edges", layout)
        .where(F.col("_edges").isNotNull())
        .withColumn(BIN, F.when(F.col(VALUE).isNotNull(), bin_index(F.col(VALUE), F.col("_edges"))))
        .drop("_edges")
    )


def count_bins(binned: DataFrame, *, groups: Sequence[str]) -> DataFrame:
    """groups + feature + bin + n: non-null values per bin."""
    return binned.where(F.col(BIN).isNotNull()).groupBy(*groups, FEATURE, BIN).agg(F.count(F.lit(1)).alias("n"))


def reference_shares_frame(
    spark: SparkSession, shares: Mapping[tuple[str, str], Sequence[float]], *, version_column: str = "model_version"
) -> DataFrame:
    """(model version, feature) -> shares per bin, as rows version + feature + bin + ref_share."""
    rows = [
        (version, feature, index, float(share))
        for (version, feature), values in shares.items()
        for index, share in enumerate(values)
    ]
    return spark.createDataFrame(rows, f"{version_column} STRING, {FEATURE} STRING, {BIN} INT, ref_share DOUBLE")


def compute_divergences(
    counts: DataFrame,
    reference: DataFrame,
    *,
    groups: Sequence[str],
    epsilon: float,
    version_column: str = "model_version",
) -> DataFrame:
    """Bin counts of each group + reference shares -> groups + feature + psi + js + sample_size.

    Every reference bin takes part (an observed-empty bin counts as share 0); groups are the caller's,
    and must include the version column that selects the reference.
    """
    present = counts.select(*groups, FEATURE).distinct()
    grid = present.join(reference, on=[version_column, FEATURE])
    full = grid.join(counts, on=[*groups, FEATURE, BIN], how="left").fillna(0, subset=["n"])
    totals = full.groupBy(*groups, FEATURE).agg(F.sum("n").alias("sample_size"))
    shares = full.join(totals, on=[*groups, FEATURE]).where(F.col("sample_size") > 0)
    p_raw = F.col("n") / F.col("sample_size")
    q_raw = F.col("ref_share")
    p, q = F.greatest(p_raw, F.lit(epsilon)), F.greatest(q_raw, F.lit(epsilon))
    m = (p_raw + q_raw) / 2
    ln2 = math.log(2.0)

    def kl_term(x: Column) -> Column:
        return F.when(x > 0, x * F.log(x / m) / F.lit(ln2)).otherwise(F.lit(0.0))

    return shares.groupBy(*groups, FEATURE).agg(
        F.sum((p - q) * F.log(p / q)).alias("psi"),
        (F.sum(kl_term(p_raw)) / 2 + F.sum(kl_term(q_raw)) / 2).alias("js"),
        F.first("sample_size").alias("sample_size"),
    )
