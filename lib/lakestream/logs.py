"""Logging setup for entry points: called once in main(), never at import time."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str | int = "INFO") -> None:
    """Log to stderr with timestamps; quiet the chattiest third-party loggers."""
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    for noisy in ("py4j", "kafka", "urllib3", "alembic", "mlflow.store.db.utils", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
