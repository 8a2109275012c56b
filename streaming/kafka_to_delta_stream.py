"""Land a Kafka topic in a Delta table as raw records (bytes + topic/partition/offset), exactly once.

    lakestream submit streaming/kafka_to_delta_stream.py --topic transactions --table raw.transactions
Runs until stopped (SIGTERM/Ctrl-C stops the query cleanly), or once over what is there with --available-now.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Start the topic -> Delta query and wait for it."""
    parser = argparse.ArgumentParser(prog="kafka_to_delta_stream", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True, help="Kafka topic to land")
    parser.add_argument("--table", required=True, help="target as database.table under the lake root")
    parser.add_argument("--available-now", action="store_true", help="process what is in the topic, then stop")
    parser.add_argument("--trigger", default="10 seconds", help="micro-batch interval (default '10 seconds')")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    args = parser.parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.spark import build_spark_session
    from lakestream.streaming.raw_ingest import start_raw_ingest

    configure_logging()
    try:
        database, _, table = args.table.partition(".")
        if not table:
            raise LakestreamError(f"--table must be database.table, got {args.table!r}")
        config = load_config(args.env)
        spark = build_spark_session(config, f"land-{args.topic}")
        query = start_raw_ingest(
            spark,
            config,
            topic=args.topic,
            table=config.table_path(database, table),
            checkpoint=config.checkpoint_path(f"land-{database}-{table}"),
            available_now=args.available_now,
            processing_time=args.trigger,
        )
        signal.signal(signal.SIGTERM, lambda *_: query.stop())
        try:
            query.awaitTermination()
        except KeyboardInterrupt:
            query.stop()
        spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
