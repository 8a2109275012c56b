"""Load the layered configuration: conf/base.yaml, then conf/<env>.yaml, then environment variables.

Environment variables:
- ``LAKESTREAM_ENV`` picks the environment file (default ``local``);
- ``LAKESTREAM_HOME`` is the project home that relative paths are resolved against (default: this checkout);
- ``LAKESTREAM_CONF_DIR`` overrides where the YAML files are read from (default ``<home>/conf``);
- ``LAKESTREAM__SECTION__KEY=value`` overrides one key (``LAKESTREAM__SPARK__MASTER=spark://h:7077``);
  the value is parsed as YAML, so numbers and booleans keep their type.
String values may reference the environment as ``${VAR}`` or ``${VAR:-default}``; that is how secrets get in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ConfigError

ENV_PREFIX = "LAKESTREAM__"
_VAR_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def default_home() -> Path:
    """The checkout this package runs from (lib/lakestream/config -> repository root)."""
    return Path(__file__).resolve().parents[3]


def load_config(
    env: str | None = None,
    *,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LakestreamConfig:
    """Read, merge, expand and validate the configuration of one environment."""
    environ = os.environ if environ is None else environ
    home = Path(home or environ.get("LAKESTREAM_HOME") or default_home()).resolve()
    conf_dir = Path(environ.get("LAKESTREAM_CONF_DIR") or home / "conf")
    env = env or environ.get("LAKESTREAM_ENV") or "local"

    merged = _read_yaml(conf_dir / "base.yaml", required=True)
    if env != "base":
        env_file = conf_dir / f"{env}.yaml"
        if not env_file.exists():
            known = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
            raise ConfigError(
                f"unknown environment {env!r}: {env_file} does not exist; "
                f"set LAKESTREAM_ENV to one of {known} or create that file"
            )
        merged = deep_merge(merged, _read_yaml(env_file, required=True))
    merged = deep_merge(merged, parse_env_overrides(environ))
    for dotted, value in (overrides or {}).items():
        merged = deep_merge(merged, _nest(dotted.split("."), value))
    merged = expand_env_vars(merged, environ)
    merged["env"] = env
    merged["home"] = str(home)
    try:
        config = LakestreamConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, sources=f"{conf_dir}/base.yaml, {env}.yaml")) from None
    return resolve_paths(config, home)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two nested dicts; values of the override win, dicts are merged key by key."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def parse_env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn LAKESTREAM__A__B=value variables into the nested dict {a: {b: value}}."""
    result: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not parts:
            raise ConfigError(f"environment variable {name} names no key; use {ENV_PREFIX}SECTION__KEY")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        result = deep_merge(result, _nest(parts, value))
    return result


def expand_env_vars(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a nested structure."""
    if isinstance(value, Mapping):
        return {key: expand_env_vars(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env_vars(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"configuration references ${{{name}}} but the environment variable {name} is not set; "
            f"export it or write ${{{name}:-default}}"
        )

    return _VAR_PATTERN.sub(substitute, value)


def resolve_paths(model: BaseModel, home: Path) -> Any:
    """Return a copy of the model with every relative Path made absolute under home."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            updates[name] = (home / value).resolve()
        elif isinstance(value, BaseModel):
            resolved = resolve_paths(value, home)
            if resolved is not value:
                updates[name] = resolved
    return model.model_copy(update=updates) if updates else model


def format_validation_error(exc: ValidationError, *, sources: str) -> str:
    """One line per problem: the dotted key, what is wrong, and what is allowed."""
    lines = [f"invalid configuration (from {sources} and LAKESTREAM__* variables):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            parent = _model_at(LakestreamConfig, error["loc"][:-1])
            allowed = sorted(parent.model_fields) if parent else []
            lines.append(f"  - {key}: unknown key; allowed keys here are {allowed}")
        else:
            lines.append(f"  - {key}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    return nested


def _read_yaml(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"configuration file {path} is missing; restore it from git or set LAKESTREAM_CONF_DIR")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data
