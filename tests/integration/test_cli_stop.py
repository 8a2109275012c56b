"""`lakestream stop` stops every service the project started, Airflow standalone included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lakestream.config import load_config
from lakestream.orchestration.airflow_server import airflow_service
from lakestream.platform.process import free_port, pid_is_alive


def test_stop_stops_airflow_started_by_the_cli(tmp_path: Path) -> None:
    config = load_config(overrides={"paths.state_dir": str(tmp_path)})
    # Stands in for `airflow standalone`: started and recorded the way `lakestream airflow start` does it.
    service = airflow_service(config, port=free_port())
    pid = service.start([sys.executable, "-c", "import time; time.sleep(120)"], ready=lambda: True).pid
    assert pid is not None
    try:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "lakestream"), "stop"],
            env={**os.environ, "LAKESTREAM__PATHS__STATE_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "airflow: stopped",
            "dashboard: not running",
            "spark cluster: not running",
            "stream: not running",
            "mlflow: not running",
            "kafka: not running",
        ]
        assert not pid_is_alive(pid)
        assert not service.pid_file.exists()
    finally:
        service.stop()  # only if the CLI left it running
