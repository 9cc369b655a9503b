"""Settings from environment variables (ROLLGUARD_*), an optional .env and an optional config file.

A wrong value stops start-up with one line naming the setting and what is allowed.
"""
from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError as _SourceError

ENV_PREFIX = "ROLLGUARD_"
CONFIG_FILE_ENV = "ROLLGUARD_CONFIG_FILE"


class SettingsError(ValueError):
    """A setting has a value rollguard cannot run with; the message is one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    kafka_bootstrap_servers: str = "localhost:9092"
    captures_topic: str = "captures"
    labels_topic: str = "labels"
    dead_letter_topic: str = "rollguard.dead-letter"
    group_id: str = "rollguard"
    kafka_session_timeout_ms: int = Field(45_000, ge=6_000, le=300_000)
    namespace: str = "Rollguard"
    aws_endpoint_url: str | None = None
    aws_region: str | None = None
    tick_seconds: float = Field(60.0, gt=0, le=3600)
    window_seconds: float = Field(900.0, gt=0, le=86400)
    min_samples: int = Field(30, ge=1)
    label_ttl_seconds: int = Field(1_209_600, gt=0)
    label_wait_seconds: int = Field(86_400, gt=0)
    score_threshold: float = Field(0.5, ge=0.0, le=1.0)
    # per-endpoint overrides, "endpoint=threshold,endpoint=threshold"
    score_thresholds: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    segment_attributes: Annotated[tuple[str, ...], NoDecode] = ()
    segment_cardinality_cap: int = Field(50, ge=1, le=1000)
    state_dir: str = "./state"
    http_addr: str = "127.0.0.1:8787"
    max_record_bytes: int = Field(1_048_576, gt=0)
    max_future_seconds: int = Field(7200, ge=0)
    max_pending_captures: int = Field(5_000_000, gt=0)
    max_buffered_datums: int = Field(2_000_000, gt=0)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, v: str) -> str:
        for host_port in v.split(","):
            host, sep, port = host_port.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError("must be a comma list of host:port")
        return v

    @field_validator("captures_topic", "labels_topic", "dead_letter_topic", "group_id", "namespace")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("aws_endpoint_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        assert v is not None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("score_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, v: Any) -> Any:
        if isinstance(v, str):
            out: dict[str, float] = {}
            for item in filter(None, (p.strip() for p in v.split(","))):
                name, sep, value = item.partition("=")
                try:
                    out[name.strip()] = float(value)
                except ValueError:
                    raise ValueError("must be a comma list of endpoint=threshold") from None
                if not sep or not name.strip() or not 0.0 <= out[name.strip()] <= 1.0:
                    raise ValueError("must be a comma list of endpoint=threshold with 0 <= threshold <= 1")
            return out
        return v

    @field_validator("segment_attributes", mode="before")
    @classmethod
    def _attrs(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(a.strip() for a in v.split(",") if a.strip())
        return v

    @field_validator("http_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port")
        return v

    @model_validator(mode="after")
    def _distinct_topics(self) -> "Settings":
        topics = [self.captures_topic, self.labels_topic, self.dead_letter_topic]
        if len(set(topics)) != 3:
            raise ValueError(
                "ROLLGUARD_CAPTURES_TOPIC, ROLLGUARD_LABELS_TOPIC and ROLLGUARD_DEAD_LETTER_TOPIC must name three different topics"
            )
        return self

    def threshold_for(self, endpoint: str) -> float:
        return self.score_thresholds.get(endpoint, self.score_threshold)

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, _, port = self.http_addr.rpartition(":")
        return host, int(port)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # precedence: explicit arguments, environment, .env, then the config file
        return (init_settings, env_settings, dotenv_settings, _ConfigFileSource(settings_cls))


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the TOML or YAML file named by ROLLGUARD_CONFIG_FILE (keys are field names)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return {}
        p = Path(path)
        try:
            text = p.read_text()
            data = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
        except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as ex:
            raise SettingsError(f"{CONFIG_FILE_ENV}={path}: cannot read config file: {ex}".splitlines()[0]) from ex
        if not isinstance(data, dict):
            raise SettingsError(f"{CONFIG_FILE_ENV}={path}: config file must be a mapping of setting names to values")
        unknown = set(data) - set(Settings.model_fields)
        if unknown:
            raise SettingsError(f"{CONFIG_FILE_ENV}={path}: unknown setting {sorted(unknown)[0]!r}")
        return data


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = first["loc"][0] if first["loc"] else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    if not loc:
        return f"invalid settings: {msg}"
    name = f"{ENV_PREFIX}{str(loc).upper()}"
    value = first.get("input")
    shown = f"={value!r}" if isinstance(value, (str, int, float)) and loc else ""
    return f"invalid setting {name}{shown}: {msg}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, or raise SettingsError with one line naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise SettingsError(_one_line(err)) from None
    except _SourceError as err:
        raise SettingsError(str(err).splitlines()[0]) from None


def load_or_exit(prog: str = "rollguard", **overrides: Any) -> Settings:
    """For commands: print `prog: <the one-line error>` and exit 2 on a wrong setting."""
    try:
        return load_settings(**overrides)
    except SettingsError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
