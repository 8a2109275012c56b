"""Lakestream: batch + streaming ML on the lakehouse (Spark, Delta Lake, Kafka, XGBoost, MLflow, Airflow)."""

__version__ = "0.1.0"
