#!/usr/bin/env bash
# Entry point of the Lakestream image. The first argument picks the role:
#   spark-master | spark-worker           Spark standalone daemons (foreground)
#   stream                                the real-time scoring stream (spark-submit)
#   job <jobs/x.py> [args]                one batch job through spark-submit
#   anything else                         run as a command (lakestream ..., airflow ..., bash)
set -euo pipefail
SPARK_HOME="$(/opt/lakestream/.venv/bin/python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME

case "${1:-}" in
  spark-master)
    shift
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host 0.0.0.0 --port "${SPARK_MASTER_PORT:-7077}" --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}" "$@"
    ;;
  spark-worker)
    shift
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-4g}" \
      "${SPARK_MASTER_URL:-spark://spark-master:7077}" "$@"
    ;;
  stream)
    shift
    exec lakestream submit streaming/score_transactions.py "$@"
    ;;
  job)
    shift
    exec lakestream submit "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
