-- Databases for the MLflow tracking store/registry and the Airflow metadata DB.
CREATE DATABASE mlflow;
CREATE DATABASE airflow;
