"""Configuration layering, environment overrides, ${VAR} expansion and strictness."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestream.config import load_config
from lakestream.config.loader import deep_merge, parse_env_overrides
from lakestream.errors import ConfigError


@pytest.fixture
def conf_home(tmp_path: Path) -> Path:
    """A project home with a minimal base.yaml and two environments."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "base.yaml").write_text(
        "paths: {state_dir: var}\n"
        "spark: {master: 'local[2]', shuffle_partitions: 8}\n"
        "kafka: {bootstrap_servers: '127.0.0.1:9092'}\n"
    )
    (conf / "local.yaml").write_text("spark: {shuffle_partitions: 4}\n")
    (conf / "prod.yaml").write_text(
        "spark: {master: '${SPARK_MASTER:-spark://default:7077}'}\n"
        "kafka:\n"
        "  bootstrap_servers: b1:9092,b2:9092\n"
        "  security: {protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: svc, sasl_password: '${KAFKA_PW}'}\n"
    )
    return tmp_path


def test_env_file_overrides_base_and_keeps_the_rest(conf_home: Path) -> None:
    config = load_config("local", home=conf_home, environ={})
    assert config.spark.shuffle_partitions == 4
    assert config.spark.master == "local[2]"
    assert config.env == "local"


def test_environment_variables_override_files_with_typed_values(conf_home: Path) -> None:
    environ = {"LAKESTREAM__SPARK__SHUFFLE_PARTITIONS": "16", "LAKESTREAM__SPARK__UI_ENABLED": "true"}
    config = load_config("local", home=conf_home, environ=environ)
    assert config.spark.shuffle_partitions == 16
    assert config.spark.ui_enabled is True


def test_lakestream_env_selects_the_environment_file(conf_home: Path) -> None:
    config = load_config(home=conf_home, environ={"LAKESTREAM_ENV": "prod", "KAFKA_PW": "s3cret"})
    assert config.env == "prod"
    assert config.spark.master == "spark://default:7077"
    assert config.kafka.security.sasl_password is not None
    assert config.kafka.security.sasl_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_variable_expansion_uses_the_environment_over_the_default(conf_home: Path) -> None:
    environ = {"SPARK_MASTER": "spark://10.0.0.1:7077", "KAFKA_PW": "x"}
    config = load_config("prod", home=conf_home, environ=environ)
    assert config.spark.master == "spark://10.0.0.1:7077"


def test_missing_secret_variable_is_named_in_the_error(conf_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"KAFKA_PW is not set"):
        load_config("prod", home=conf_home, environ={})


def test_unknown_key_is_rejected_with_its_location_and_the_allowed_keys(conf_home: Path) -> None:
    (conf_home / "conf" / "local.yaml").write_text("spark: {shuffle_partitons: 4}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config("local", home=conf_home, environ={})
    message = str(excinfo.value)
    assert "spark.shuffle_partitons: unknown key" in message
    assert "'shuffle_partitions'" in message


def test_unknown_key_from_the_environment_is_rejected(conf_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka.bootstrap: unknown key"):
        load_config("local", home=conf_home, environ={"LAKESTREAM__KAFKA__BOOTSTRAP": "x:1"})


def test_bad_value_names_key_and_value(conf_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"spark.shuffle_partitions: .*got 0"):
        load_config("local", home=conf_home, environ={"LAKESTREAM__SPARK__SHUFFLE_PARTITIONS": "0"})


def test_unknown_environment_lists_the_known_ones(conf_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'staging'.*\['local', 'prod'\]"):
        load_config("staging", home=conf_home, environ={})


def test_relative_paths_resolve_under_home_and_derive_from_state_dir(conf_home: Path) -> None:
    config = load_config("local", home=conf_home, environ={"LAKESTREAM__PATHS__STATE_DIR": "/tmp/elsewhere"})
    assert config.paths.lake_root == Path("/tmp/elsewhere/lake")
    assert config.kafka_data_dir == Path("/tmp/elsewhere/kafka")
    assert config.spark.jars_dir == conf_home.resolve() / ".jars" / "spark"
    assert config.tracking_uri == "sqlite:////tmp/elsewhere/mlflow/mlflow.db"


def test_config_is_frozen(conf_home: Path) -> None:
    config = load_config("local", home=conf_home, environ={})
    with pytest.raises(ValueError, match="frozen"):
        config.spark.master = "yarn"  # type: ignore[misc]


def test_sasl_without_credentials_is_refused(conf_home: Path) -> None:
    environ = {"LAKESTREAM__KAFKA__SECURITY__PROTOCOL": "SASL_SSL"}
    with pytest.raises(ConfigError, match=r"SASL_SSL needs sasl_mechanism"):
        load_config("local", home=conf_home, environ=environ)


def test_sasl_settings_become_client_options(conf_home: Path) -> None:
    config = load_config("prod", home=conf_home, environ={"KAFKA_PW": "pw"})
    options = config.kafka.client_options()
    assert options["security.protocol"] == "SASL_SSL"
    assert options["sasl.mechanism"] == "PLAIN"
    assert 'username="svc" password="pw"' in options["sasl.jaas.config"]


def test_spark_conf_keys_must_be_spark_settings(conf_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"must start with 'spark.'"):
        load_config("local", home=conf_home, environ={"LAKESTREAM__SPARK__CONF": "{executor.cores: '2'}"})


def test_repository_configurations_all_load() -> None:
    environ = {"KAFKA_PW": "unused"}
    for env in ("local", "test", "cluster"):
        config = load_config(env, environ=environ)
        assert config.env == env
    cluster = load_config("cluster", environ=environ)
    assert cluster.spark.master == "spark://127.0.0.1:7077"
    assert cluster.kafka.broker.managed is False


def test_deep_merge_and_env_parsing() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    assert parse_env_overrides({"LAKESTREAM__A__B_C": "5", "OTHER": "x"}) == {"a": {"b_c": 5}}
