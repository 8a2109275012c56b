"""Experiment tracking and the model registry (MLflow): URIs, experiments, aliases."""
