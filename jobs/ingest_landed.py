"""Ingest landed files into bronze: every new line of <landing_root>/<kind>/date=*/*.json, once.

Incremental and idempotent (file stream with availableNow and a checkpoint): re-running only picks up new files.
Run with python or `lakestream submit jobs/ingest_landed.py --kind transactions`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

logger = logging.getLogger("lakestream.jobs.ingest_landed")

KINDS = ("transactions", "fraud_labels")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job."""
    parser = argparse.ArgumentParser(prog="ingest_landed", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kind", action="append", choices=KINDS, help="what to ingest; repeat for several (default: both)"
    )
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Ingest each kind; print one JSON summary line (rows, files, batches per kind)."""
    args = build_parser().parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.quality.bronze import ingest_landed_files
    from lakestream.quality.kinds import get_event_kind
    from lakestream.spark import build_spark_session

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        spark = build_spark_session(config, "ingest-landed")
        try:
            results = [ingest_landed_files(spark, config, kind=get_event_kind(name)) for name in args.kind or KINDS]
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {result.kind: result.to_dict() for result in results}
    logger.info("bronze ingestion done: %s", ", ".join(f"{r.kind} +{r.rows} rows/{r.files} files" for r in results))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
