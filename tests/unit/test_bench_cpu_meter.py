"""The streaming benchmark's CPU budget: cores per part between two samples."""

from __future__ import annotations

from benchmark_scripts import load_benchmark


def test_cores_are_the_cpu_seconds_between_samples_over_the_wall_seconds() -> None:
    cores = load_benchmark("streaming").CpuMeter.cores
    first = (10.0, {"spark_jvm": 4.0, "kafka_broker": 1.0}, {101: 0.5, 102: 2.0})
    last = (12.0, {"spark_jvm": 5.0, "kafka_broker": 1.5}, {101: 1.5, 103: 0.5})  # 102 exited, 103 is new

    assert cores(first, last) == {
        "spark_jvm": 0.5,
        "kafka_broker": 0.25,
        "python_workers": 0.75,  # 101's second and all of 103's half second; 102's time is lost
        "total": 1.5,
    }
