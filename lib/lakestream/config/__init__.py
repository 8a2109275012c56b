"""Typed, layered configuration (conf/base.yaml -> conf/<env>.yaml -> environment)."""

from lakestream.config.loader import load_config
from lakestream.config.models import LakestreamConfig

__all__ = ["LakestreamConfig", "load_config"]
