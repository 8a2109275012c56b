"""Airflow glue: the operator that submits jobs/ entry points with the project's settings, and DAG defaults."""
