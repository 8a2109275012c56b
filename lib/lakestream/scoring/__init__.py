"""Scoring with registered models: vectorised batch scoring into gold.scores."""
