"""Benchmark: xgboost.spark vs single-node xgboost.train, same data, same parameters, same 2 cores, threads pinned.

Data: the fraud_v1 features of the book's prequential data range (2018-06-11..2018-09-14, 919,767 rows) from the
benchmark lake of benchmarks/model_quality.py, and the same rows replicated 10x; also one prequential fold's
7-day training window (67k rows) to show the fixed costs. Parameters: hist, depth 6, learning rate 0.3, 100
rounds (XGBoost defaults), no early stopping. The models are scored on a week none of them trained on, known
compromised cards removed, to compare AUC: the fold's models on the book's test week (2018-08-08..14), the
prequential ones on the week after the 7-day delay that follows their data (2018-09-22..28, 24,765 rows).

- single-node: the rows collected to pandas once (timed separately as ``collect_seconds``), then
  QuantileDMatrix + xgboost.train with nthread = 2 (the cores the machine has);
- distributed: xgboost.spark with num_workers=2 over the same rows cached in Spark as 2 partitions (one per
  worker, so xgboost.spark does not reshuffle), 1 thread per worker (spark.task.cpus = 1): 2 threads in all.
  Arrow batches of 200k rows reach the workers (spark.sql.execution.arrow.maxRecordsPerBatch). This is
  lakestream's fit_distributed: SparkXGBRegressor with objective binary:logistic (the classifier's booster
  without its label-counting job) and the barrier syncs served by the driver's rendezvous
  (``spark_seconds``); the same fit with Spark's own barrier syncs, which poll once a second, is
  ``spark_barriers_seconds``, in the same run.

xgboost.spark evaluates the training rows after every round even when the fit has no metric to compute;
lakestream skips that (lakestream.training.xgb_callbacks), and ``spark_evaluating_seconds`` is the same fit
without the skip, in the same run.

After one untimed warm-up fit (JVM, Python workers, imports), ``--repeats`` rounds each fit once per variant
(single node, lakestream's distributed fit, the same without the evaluation skip, the same with Spark's barriers),
in a rotated order. ``*_seconds`` are the best round of each; ``*_over_single_node_median`` is the median of the
rounds' own ratios (fits minutes apart see different machine speeds here), which the goals are judged on.
AUC: besides both fits' AUC, ``auc_single_node_rows_shuffled`` holds the single-node fit's AUC on the same rows
in three other orders and ``auc_spark_rows_shuffled`` the distributed fit's on three other spreads of the rows
over the workers (not at 10x): hist's quantile sketch depends on the order of the rows, so these spreads are the
noise floor of any "same AUC" comparison; ``spark_auc_within_single_node_spread`` says whether the distributed
fit's AUC lies inside the single node's range.

``exact_cuts``: the same rows with their features rounded down to at most max_bin - 1 quantile edges first
(lakestream.training.cuts, ``training.xgboost.exact_cuts``), fitted both ways in the same rotation. Every sketch
then finds the same cut points, so the two fits (and the shuffled orders / spreads, not at 10x) should give the
same trees; ``spark_over_single_node_median`` compares the two exact-cut fits, ``spark_over_raw_single_node_median``
the distributed exact-cut fit with the raw single-node one.
Writes benchmarks/results/training.json.

    flock /tmp/lakestream-spark.lock .venv/bin/python benchmarks/training.py [--repeats 3] [--skip-10x]
        [--params '{"tree_method": "hist", "max_depth": 5, "learning_rate": 0.05}' --rounds 150]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PREQUENTIAL = (dt.date(2018, 6, 11), dt.date(2018, 9, 14))
PARAMS = {"tree_method": "hist", "max_depth": 6, "learning_rate": 0.3}
ROUNDS = 100
logger = logging.getLogger("benchmarks.training")


def main(argv: list[str] | None = None) -> int:
    """Fit both ways at each size and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds: each runs every variant once (default 3)")
    parser.add_argument("--skip-10x", action="store_true", help="only the fold and the 1x prequential sizes")
    parser.add_argument("--output", type=Path, default=RESULTS / "training.json")
    parser.add_argument("--params", type=json.loads, default=PARAMS, help=f"booster parameters as JSON ({PARAMS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "XGBoost-PySpark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pandas as pd
    import xgboost as xgb
    from model_quality import bench_config, prepare_lake
    from pyspark.sql import functions as F  # noqa: N812

    from lakestream.spark import build_spark_session
    from lakestream.training.cuts import DEFAULT_MAX_BIN, apply_cuts, cut_edges
    from lakestream.training.dataset import LABEL, read_labelled_features
    from lakestream.training.metrics import compute_auc_roc
    from lakestream.training.splits import build_time_split, select_days, select_test, select_train
    from lakestream.training.trainer import load_training_feature_set
    from lakestream.training.xgb import BoosterSettings, fit_distributed, fit_single_node, predict_scores

    config = bench_config()
    spark = build_spark_session(
        config,
        "bench-training",
        extra_conf={
            "spark.driver.memory": "10g",
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "200000",
        },
    )
    prepare_lake(spark, config)
    spec = load_training_feature_set(config, "fraud_v1")
    features = list(spec.model_inputs)
    book = build_time_split(train_start=dt.date(2018, 7, 25), name="book")
    prequential_days = (PREQUENTIAL[1] - PREQUENTIAL[0]).days + 1
    prequential = build_time_split(name="prequential", train_start=PREQUENTIAL[0], train_days=prequential_days)
    # one read: the prequential range and, after its delay, the week its models are scored on
    with_test_weeks, _ = read_labelled_features(spark, config, spec, start=PREQUENTIAL[0], end=prequential.test_end)
    labelled = select_days(with_test_weeks, start=PREQUENTIAL[0], end=PREQUENTIAL[1])
    model_frame = labelled.select(*[F.col(name).cast("float").alias(name) for name in features], LABEL)
    tests = {  # a week after each training range's delay, known compromised cards removed
        split.name: select_test(with_test_weeks, split=split).select(*features, LABEL).toPandas()
        for split in (book, prequential)
    }
    settings = BoosterSettings(args.params, args.rounds)

    def auc_of(booster: xgb.Booster, test: pd.DataFrame) -> float:
        return round(compute_auc_roc(test[LABEL].to_numpy(), predict_scores(booster, test, features=features)), 6)

    sizes = {"fold_7_days": None, "prequential_1x": 1, "prequential_10x": 10}
    if args.skip_10x:
        sizes.pop("prequential_10x")
    results: dict = {
        "benchmark": "training",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "xgboost": xgb.__version__},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "params": {**args.params, "num_boost_round": args.rounds},
        "threads": {"single_node_nthread": 2, "spark_num_workers": 2, "spark_task_cpus": 1},
        "sizes": {},
    }
    warmed = False
    for name, factor in sizes.items():
        test = tests["book" if factor is None else "prequential"]
        if factor is None:
            frame = select_train(labelled, split=book).select(*model_frame.columns)
        else:
            frame = model_frame
            if factor > 1:
                frame = frame.crossJoin(spark.range(factor).withColumnRenamed("id", "_copy")).drop("_copy")
        frame = frame.repartition(2).cache()
        rows = frame.count()
        started = time.perf_counter()
        rows_pd = frame.toPandas()
        collect_seconds = time.perf_counter() - started
        started = time.perf_counter()  # the same rows with exact cuts: features rounded to <= max_bin edges
        edges = cut_edges(frame, features, max_bin=int(settings.params.get("max_bin", DEFAULT_MAX_BIN)))
        cut_frame = apply_cuts(frame, edges).cache()
        cut_frame.count()
        cut_seconds = time.perf_counter() - started
        cut_pd = cut_frame.toPandas()
        if not warmed:  # JVM, Python workers, xgboost imports: not part of any measurement
            fit_distributed(frame.limit(20_000).repartition(2), features=features, label=LABEL, settings=settings,
                            num_workers=2)  # fmt: skip
            fit_single_node(rows_pd.head(20_000), features=features, label=LABEL, settings=settings, nthread=2)
            warmed = True
        variants = {  # name -> (fit, keyword arguments); each round runs every variant once, in a rotated order
            "single_node": (fit_single_node, {"train": rows_pd, "nthread": 2}),
            "spark": (fit_distributed, {"train": frame, "num_workers": 2}),
            "spark_evaluating": (fit_distributed, {"train": frame, "num_workers": 2,
                                                   "skip_metricless_evaluation": False}),
            "spark_barriers": (fit_distributed, {"train": frame, "num_workers": 2, "rendezvous": "spark"}),
            "single_node_exact_cuts": (fit_single_node, {"train": cut_pd, "nthread": 2}),
            "spark_exact_cuts": (fit_distributed, {"train": cut_frame, "num_workers": 2}),
        }  # fmt: skip
        seconds: dict[str, list[float]] = {variant: [] for variant in variants}
        fitted = {}
        for round_ in range(args.repeats):
            order = list(variants)[round_ % len(variants) :] + list(variants)[: round_ % len(variants)]
            for variant in order:
                fit, kwargs = variants[variant]
                started = time.perf_counter()
                fitted[variant] = fit(features=features, label=LABEL, settings=settings, **kwargs)
                seconds[variant].append(time.perf_counter() - started)
                logger.info("%s: %-18s %6.2f s (round %d/%d)", name, variant, seconds[variant][-1], round_ + 1,
                            args.repeats)  # fmt: skip
        best = {variant: min(times) for variant, times in seconds.items()}
        native_seconds = best["single_node"]
        # the median of the rounds' own ratios: both fits of a round saw the same minutes of this machine
        ratios = {
            variant: [a / b for a, b in zip(times, seconds["single_node"], strict=True)]
            for variant, times in seconds.items()
        }
        median_ratio = {variant: round(statistics.median(values), 2) for variant, values in ratios.items()}

        entry = {
            "rows": rows,
            "collect_seconds": round(collect_seconds, 2),
            "seconds_per_round": {variant: [round(x, 2) for x in times] for variant, times in seconds.items()},
            "single_node_seconds": round(native_seconds, 2),
            "spark_seconds": round(best["spark"], 2),
            "spark_over_single_node": round(best["spark"] / native_seconds, 2),
            "spark_over_single_node_median": median_ratio["spark"],
            "spark_evaluating_seconds": round(best["spark_evaluating"], 2),
            "spark_evaluating_over_single_node_median": median_ratio["spark_evaluating"],
            "spark_barriers_seconds": round(best["spark_barriers"], 2),
            "spark_barriers_over_single_node": round(best["spark_barriers"] / native_seconds, 2),
            "spark_over_single_node_with_collect": round(best["spark"] / (native_seconds + collect_seconds), 2),
            "auc_test_rows": len(test),
            "auc_single_node": auc_of(fitted["single_node"].booster, test),
            "auc_spark": auc_of(fitted["spark"].booster, test),
        }
        entry["same_auc_3_decimals"] = round(entry["auc_single_node"], 3) == round(entry["auc_spark"], 3)
        exact_ratios = [
            a / b for a, b in zip(seconds["spark_exact_cuts"], seconds["single_node_exact_cuts"], strict=True)
        ]
        exact = {
            "features_rounded": {name: len(values) for name, values in edges.items()},
            "cut_seconds": round(cut_seconds, 2),
            "single_node_seconds": round(best["single_node_exact_cuts"], 2),
            "spark_seconds": round(best["spark_exact_cuts"], 2),
            "spark_over_single_node_median": round(statistics.median(exact_ratios), 2),
            "spark_over_raw_single_node_median": median_ratio["spark_exact_cuts"],
            "auc_single_node": auc_of(fitted["single_node_exact_cuts"].booster, test),
            "auc_spark": auc_of(fitted["spark_exact_cuts"].booster, test),
        }
        exact["same_auc_3_decimals"] = round(exact["auc_single_node"], 3) == round(exact["auc_spark"], 3)
        if factor != 10:  # the single node's own AUC when only the order of its rows changes (hist sketches)
            entry["auc_single_node_rows_shuffled"] = [
                auc_of(fit_single_node(rows_pd.sample(frac=1.0, random_state=seed), features=features, label=LABEL,
                                       settings=settings, nthread=2).booster, test)
                for seed in (1, 2, 3)
            ]  # fmt: skip
            entry["auc_spark_rows_shuffled"] = []
            for seed in (1, 2, 3):
                spread = frame.orderBy(F.rand(seed)).repartition(2)
                fit = fit_distributed(spread, features=features, label=LABEL, settings=settings, num_workers=2)
                entry["auc_spark_rows_shuffled"].append(auc_of(fit.booster, test))
            single_node_aucs = [entry["auc_single_node"], *entry["auc_single_node_rows_shuffled"]]
            entry["spark_auc_within_single_node_spread"] = (
                min(single_node_aucs) <= entry["auc_spark"] <= max(single_node_aucs)
            )
            exact["auc_single_node_rows_shuffled"] = auc_of(
                fit_single_node(cut_pd.sample(frac=1.0, random_state=1), features=features, label=LABEL,
                                settings=settings, nthread=2).booster, test)  # fmt: skip
            spread = cut_frame.orderBy(F.rand(1)).repartition(2)
            fit = fit_distributed(spread, features=features, label=LABEL, settings=settings, num_workers=2)
            exact["auc_spark_rows_shuffled"] = auc_of(fit.booster, test)
        entry["exact_cuts"] = exact
        results["sizes"][name] = entry
        logger.info("%s: %s", name, entry)
        cut_frame.unpersist()
        frame.unpersist()
    spark.stop()
    sizes_done = results["sizes"]
    results["goals"] = {
        "within_1_5x_at_default_size": sizes_done["prequential_1x"]["spark_over_single_node_median"] <= 1.5,
        "same_auc_everywhere": all(entry["same_auc_3_decimals"] for entry in sizes_done.values()),
        "same_auc_everywhere_exact_cuts": all(e["exact_cuts"]["same_auc_3_decimals"] for e in sizes_done.values()),
    }
    if "prequential_10x" in sizes_done:
        results["goals"]["within_1_2x_at_10x"] = sizes_done["prequential_10x"]["spark_over_single_node_median"] <= 1.2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
