"""Structured Streaming jobs' logic: queries built from configuration, started by streaming/ entry points."""
