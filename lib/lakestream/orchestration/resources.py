"""Names of the Airflow resources the DAGs rely on, importable without importing Airflow.

`lakestream airflow start` creates them (pool, connection) in a process that must not import Airflow before
AIRFLOW_HOME points at the project's state folder; the DAG glue in lakestream.orchestration.airflow uses them.
"""

from __future__ import annotations

SPARK_CONN_ID = "lakestream_spark"
# One Spark job at a time on a laptop (2 cores): every Spark task of every DAG uses this pool, created with
# one slot by `lakestream airflow start`; widen it (`airflow pools set`) when the connection points at a cluster.
SPARK_POOL = "lakestream_spark"
SPARK_POOL_SLOTS = 1
SPARK_POOL_DESCRIPTION = "Spark jobs submitted by the lakestream DAGs (1 slot = one job at a time)"
# Updated by lakestream_monitoring when its retraining check holds; schedules lakestream_retraining.
RETRAIN_REQUESTS_URI = "lakestream://monitoring/retrain-requests"
