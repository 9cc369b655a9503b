"""Settings from environment variables (ROLLGUARD_*), an optional .env and an optional config file.

A wrong value stops start-up with one line naming the setting and what is allowed.
"""
from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError as _SourceError

from pipelines import cloudwatch_rules
from pipelines.join import ImplicitLabel

ENV_PREFIX = "ROLLGUARD_"
#: the parser's and the publisher's one limit on future timestamps (pipelines.cloudwatch_rules)
MAX_FUTURE_SECONDS = cloudwatch_rules.MAX_FUTURE_MS // 1000
CONFIG_FILE_ENV = "ROLLGUARD_CONFIG_FILE"


class SettingsError(ValueError):
    """A setting has a value rollguard cannot run with; the message is one line."""


#: RFC 6750 token68 characters, so the token fits an Authorization header unquoted
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
MIN_TOKEN_CHARS = 16


def check_http_token(token: str) -> str:
    """``token`` if it can serve as the status API's bearer token; ValueError saying why not."""
    if len(token) < MIN_TOKEN_CHARS or not _TOKEN_RE.match(token):
        raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters of A-Z a-z 0-9 - . _ ~ + / "
                         "(e.g. the output of `openssl rand -hex 32`)")
    return token


def read_http_token_file(path: str) -> str:
    """The token in file ``path`` (surrounding whitespace ignored); ValueError naming the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as ex:
        raise ValueError(f"cannot read the token file: {ex}".splitlines()[0]) from None
    try:
        return check_http_token(text.strip())
    except ValueError as ex:
        raise ValueError(f"the token in {path} {ex}") from None


#: the most worker processes one `rollguard run` starts (ROLLGUARD_WORKERS, --workers)
MAX_WORKERS = 64


def default_workers() -> int:
    """ROLLGUARD_WORKERS when unset: one worker per core."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: OAUTHBEARER is MSK IAM: tokens signed with the AWS credentials chain (service/kafka_clients.py)
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: the mechanisms that log in with ROLLGUARD_KAFKA_SASL_USERNAME and a password
KAFKA_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_KAFKA_SSL_PROTOCOLS = ("SSL", "SASL_SSL")
_PASSWORD_MECHANISMS_TEXT = f"{', '.join(KAFKA_PASSWORD_MECHANISMS[:-1])} or {KAFKA_PASSWORD_MECHANISMS[-1]}"
_KAFKA_SECRETS = frozenset({"kafka_ssl_password", "kafka_sasl_password"})


def _readable_file(path: str) -> str:
    if not os.path.isfile(path):
        raise ValueError("file does not exist" if not os.path.exists(path) else "is not a regular file")
    if not os.access(path, os.R_OK):
        raise ValueError("file is not readable")
    return path


def read_secret_file(path: str) -> str:
    """The secret in file ``path`` without its trailing line break; ValueError naming the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as ex:
        raise ValueError(f"cannot read the file: {ex}".splitlines()[0]) from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EXPIRY_LABEL = re.compile(r"(?P<endpoint>[^=@,]*[^=@,\s])\s*=\s*(?P<label>[01])\s*(?:@\s*(?P<amount>[0-9]{1,9})(?P<unit>[smhd])?)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _check_region(region: str) -> None:
    """ValueError unless botocore accepts ``region`` as a region name (it refuses it only at the first client)."""
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import validate_region_name

    try:
        validate_region_name(region)
    except InvalidRegionError:
        raise ValueError("must be an AWS region name such as eu-west-1 (letters, digits and hyphens)") from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True,
        allow_inf_nan=False,  # nan passes no bound check by itself, inf passes a lower one
    )

    kafka_bootstrap_servers: str = "localhost:9092"
    captures_topic: str = "captures"
    labels_topic: str = "labels"
    dead_letter_topic: str = "rollguard.dead-letter"
    group_id: str = "rollguard"
    kafka_session_timeout_ms: int = Field(45_000, ge=6_000, le=300_000)
    # Kafka security (service/kafka_clients.py turns these into kafka-python arguments). Fields
    # are validated in this order, so each check sees the ones above it; validate_default=True
    # makes a check run when its own setting is unset.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = Field(None, validate_default=True)
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    kafka_sasl_username: str | None = Field(None, validate_default=True)
    kafka_sasl_password_file: str | None = None
    kafka_sasl_password: SecretStr | None = Field(None, validate_default=True)
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
    # the values of each attribute that become dimension values, the same on every instance and
    # across restarts ("attr=v1|v2;attr2=v3"); any other value is __other__
    segment_values: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(default_factory=dict)
    # attributes without a value list admit their first segment_cardinality_cap values (per
    # instance, checkpointed): a single-instance mode, so it must be asked for
    segment_first_come: bool = False
    # sliding-window gauges per segment too (12 more metrics per segment value): off, the
    # segment counts give every rate by metric math
    segment_gauges: bool = False
    state_dir: str = "./state"
    # where pending joins live: RocksDB per partition on local disk, or memory (service/state/)
    state_store: Literal["disk", "memory"] = "disk"
    # the disk store's local directory (a cache: partitions are restored from state_dir)
    local_state_dir: str = Field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "rollguard-state"))
    # RocksDB block cache shared by all partitions of the process
    state_cache_mb: int = Field(256, ge=8, le=1_000_000)
    # per-endpoint implicit label of captures that expire unlabelled: "ep=0" or "ep=0@7d"
    expiry_labels: Annotated[dict[str, ImplicitLabel], NoDecode] = Field(default_factory=dict)
    # consumer processes `rollguard run` starts in the group on this host (service/workers/);
    # 1 runs the daemon in the command's own process, as before
    workers: int = Field(default_factory=lambda: default_workers(), ge=1, le=MAX_WORKERS)
    # the alarm spec whose `comparisons` the daemon judges (alarms.spec); unset: none
    spec: str | None = None
    http_addr: str = "127.0.0.1:8787"
    # bearer token for /v1/status and /metrics; repr=False keeps it out of logged settings
    http_token: str | None = Field(None, repr=False)
    http_token_file: str | None = None
    max_record_bytes: int = Field(1_048_576, gt=0)
    max_future_seconds: int = Field(MAX_FUTURE_SECONDS, ge=0, le=MAX_FUTURE_SECONDS)
    # cap on pending joins per partition; unset: 5,000,000 in memory, 1,000,000,000 on disk
    max_pending_captures: int | None = Field(None, gt=0)
    max_buffered_datums: int = Field(2_000_000, gt=0)
    # names that become dimensions: an allow-list of endpoints (the same on every instance), else
    # the first max_endpoints seen; variants and model versions capped per endpoint / variant
    endpoints: Annotated[tuple[str, ...], NoDecode] = ()
    max_endpoints: int = Field(100, ge=1, le=10_000)
    max_variants: int = Field(20, ge=1, le=1000)
    max_model_versions: int = Field(20, ge=1, le=1000)
    # dead letters keep at most this many bytes of the original (the rest: size and SHA-256)
    dead_letter_max_bytes: int = Field(1_000_000, ge=1024, le=16 * 1024 * 1024)
    # /readyz says not ready once CloudWatch has refused data for this many ticks
    ready_publish_stall_ticks: int = Field(5, ge=1)
    # ... or the group coordinator has not been heard from for this long
    ready_consumer_stall_seconds: float = Field(30.0, gt=0, le=3600)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, v: str) -> str:
        for host_port in v.split(","):
            host, sep, port = host_port.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError("must be a comma list of host:port")
        return v

    @field_validator("kafka_sasl_mechanism", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
                     "kafka_ssl_password", "kafka_sasl_username", "kafka_sasl_password_file",
                     "kafka_sasl_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _kafka_protocol(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().upper() in KAFKA_SECURITY_PROTOCOLS:
            return v.strip().upper()
        raise ValueError(f"must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}")

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _kafka_mechanism(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            v = v.strip().upper()
            if v not in KAFKA_SASL_MECHANISMS:
                raise ValueError(f"must be one of {', '.join(KAFKA_SASL_MECHANISMS)} (OAUTHBEARER is MSK IAM)")
        protocol = info.data.get("kafka_security_protocol")
        if protocol is None:  # the protocol is wrong: that is the error reported
            return v
        if protocol.startswith("SASL_") and v is None:
            raise ValueError(f"is required with ROLLGUARD_KAFKA_SECURITY_PROTOCOL={protocol}: "
                             f"one of {', '.join(KAFKA_SASL_MECHANISMS)}")
        if not protocol.startswith("SASL_") and v is not None:
            raise ValueError(f"needs ROLLGUARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT (it is {protocol})")
        return v

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "kafka_ssl_password")
    @classmethod
    def _kafka_ssl(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        protocol = info.data.get("kafka_security_protocol")
        if protocol is not None and protocol not in _KAFKA_SSL_PROTOCOLS:
            raise ValueError(f"is only used with ROLLGUARD_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (it is {protocol})")
        if info.field_name in ("kafka_ssl_keyfile", "kafka_ssl_password") and \
                info.data.get("kafka_ssl_certfile") is None:
            raise ValueError("is only used with ROLLGUARD_KAFKA_SSL_CERTFILE (the client certificate)")
        return v if info.field_name == "kafka_ssl_password" else _readable_file(v)

    @field_validator("kafka_sasl_username")
    @classmethod
    def _kafka_username(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "kafka_sasl_mechanism" not in info.data:
            return v
        mechanism = info.data["kafka_sasl_mechanism"]
        if mechanism in KAFKA_PASSWORD_MECHANISMS and v is None:
            raise ValueError(f"is required with ROLLGUARD_KAFKA_SASL_MECHANISM={mechanism}")
        if mechanism not in KAFKA_PASSWORD_MECHANISMS and v is not None:
            raise ValueError(f"is only used with ROLLGUARD_KAFKA_SASL_MECHANISM={_PASSWORD_MECHANISMS_TEXT}")
        return v

    @field_validator("kafka_sasl_password_file")
    @classmethod
    def _kafka_password_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or "kafka_sasl_mechanism" not in info.data:
            return v
        if info.data["kafka_sasl_mechanism"] not in KAFKA_PASSWORD_MECHANISMS:
            raise ValueError(f"is only used with ROLLGUARD_KAFKA_SASL_MECHANISM={_PASSWORD_MECHANISMS_TEXT}")
        read_secret_file(v)  # fail at start-up, not at the first connection
        return v

    @field_validator("kafka_sasl_password")
    @classmethod
    def _kafka_password(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if "kafka_sasl_mechanism" not in info.data or "kafka_sasl_password_file" not in info.data:
            return v
        mechanism, from_file = info.data["kafka_sasl_mechanism"], info.data["kafka_sasl_password_file"]
        if mechanism not in KAFKA_PASSWORD_MECHANISMS:
            if v is not None:
                raise ValueError(f"is only used with ROLLGUARD_KAFKA_SASL_MECHANISM={_PASSWORD_MECHANISMS_TEXT}")
        elif v is not None and from_file is not None:
            raise ValueError("set ROLLGUARD_KAFKA_SASL_PASSWORD or ROLLGUARD_KAFKA_SASL_PASSWORD_FILE, not both")
        elif v is None and from_file is None:
            raise ValueError(f"is required with ROLLGUARD_KAFKA_SASL_MECHANISM={mechanism} "
                             "(or ROLLGUARD_KAFKA_SASL_PASSWORD_FILE)")
        return v

    @model_validator(mode="after")
    def _msk_iam_region(self) -> "Settings":
        if self.kafka_sasl_mechanism == "OAUTHBEARER" and not self.kafka_aws_region():
            raise ValueError("ROLLGUARD_KAFKA_SASL_MECHANISM=OAUTHBEARER (MSK IAM) needs an AWS region: "
                             "set ROLLGUARD_AWS_REGION, AWS_REGION or AWS_DEFAULT_REGION")
        return self

    def kafka_aws_region(self) -> str | None:
        """The region MSK IAM tokens are signed for, found as for the boto3 clients:
        ROLLGUARD_AWS_REGION, else AWS_REGION, else boto3's chain (AWS_DEFAULT_REGION, the profile)."""
        if self.aws_region or os.environ.get("AWS_REGION"):
            return self.aws_region or os.environ["AWS_REGION"]
        import boto3

        region: str | None = boto3.session.Session().region_name
        return region

    def kafka_sasl_secret(self) -> str | None:
        """The SASL password (from ``kafka_sasl_password`` or read from ``kafka_sasl_password_file``), or None."""
        if self.kafka_sasl_password_file is not None:
            return read_secret_file(self.kafka_sasl_password_file)
        return self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None

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

    @field_validator("aws_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        assert v is not None
        _check_region(v)
        return v

    @model_validator(mode="after")
    def _region_from_environment(self) -> "Settings":
        # without ROLLGUARD_AWS_REGION the clients take AWS_REGION, else botocore AWS_DEFAULT_REGION
        if self.aws_region is None:
            name = next((n for n in ("AWS_REGION", "AWS_DEFAULT_REGION") if os.environ.get(n)), None)
            if name is not None:
                try:
                    _check_region(os.environ[name])
                except ValueError as ex:
                    raise ValueError(f"{name}={os.environ[name]!r}: {ex}") from None
        return self

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, v: str) -> str:
        if v.startswith("s3://"):
            from botocore.handlers import VALID_BUCKET  # the bucket names botocore sends

            bucket = v[len("s3://"):].partition("/")[0]
            if not bucket:
                raise ValueError("must be s3://bucket/prefix: the bucket name is missing")
            if not VALID_BUCKET.match(bucket):
                raise ValueError(f"bucket name {bucket!r} is not valid: 1-255 of a-z A-Z 0-9 . - _")
        elif not v.strip() or _URL_SCHEME.match(v):
            raise ValueError("must be a local directory or s3://bucket/prefix")
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

    @field_validator("segment_attributes", "endpoints", mode="before")
    @classmethod
    def _attrs(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(a.strip() for a in v.split(",") if a.strip())
        return v

    @field_validator("segment_values", mode="before")
    @classmethod
    def _segment_values(cls, v: Any) -> Any:
        if isinstance(v, str):
            out: dict[str, tuple[str, ...]] = {}
            for item in filter(None, (p.strip() for p in v.split(";"))):
                name, sep, values = item.partition("=")
                listed = tuple(x.strip() for x in values.split("|") if x.strip())
                if not sep or not name.strip() or not listed:
                    raise ValueError("must be attribute=value|value|...;attribute=value|..., "
                                     "e.g. merchant_category=5411|5812;country=de|fr")
                out[name.strip()] = listed
            return out
        return v

    @model_validator(mode="after")
    def _segment_mapping(self) -> "Settings":
        # the mapping of values to dimensions must be the same on every instance: listed values,
        # or first come on purpose (one instance)
        for name, values in self.segment_values.items():
            if name not in self.segment_attributes:
                raise ValueError(f"ROLLGUARD_SEGMENT_VALUES lists values of {name!r}, which is not in "
                                 "ROLLGUARD_SEGMENT_ATTRIBUTES")
            if len(set(values)) > self.segment_cardinality_cap:
                raise ValueError(f"ROLLGUARD_SEGMENT_VALUES lists {len(set(values))} values of {name!r}, more than "
                                 f"ROLLGUARD_SEGMENT_CARDINALITY_CAP={self.segment_cardinality_cap}")
        unlisted = [a for a in self.segment_attributes if a not in self.segment_values]
        if unlisted and not self.segment_first_come:
            raise ValueError(f"segment attribute {unlisted[0]!r} (ROLLGUARD_SEGMENT_ATTRIBUTES) needs its values in "
                             f"ROLLGUARD_SEGMENT_VALUES (e.g. {unlisted[0]}=a|b|c), or ROLLGUARD_SEGMENT_FIRST_COME=true "
                             "to admit the first values seen (one instance only)")
        return self

    @field_validator("http_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port")
        return v

    @field_validator("http_token", mode="before")
    @classmethod
    def _token(cls, v: Any) -> Any:
        if v in (None, ""):
            return None
        check_http_token(str(v))
        return v

    @field_validator("http_token_file")
    @classmethod
    def _token_file(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        assert v is not None
        read_http_token_file(v)  # fail at start-up, not at the first request
        return v

    @model_validator(mode="after")
    def _one_token_source(self) -> "Settings":
        if self.http_token is not None and self.http_token_file is not None:
            raise ValueError("set ROLLGUARD_HTTP_TOKEN or ROLLGUARD_HTTP_TOKEN_FILE, not both")
        return self

    def http_bearer_token(self) -> str | None:
        """The status API's token (from ``http_token`` or read from ``http_token_file``), or None."""
        if self.http_token_file is not None:
            return read_http_token_file(self.http_token_file)
        return self.http_token

    @field_validator("expiry_labels", mode="before")
    @classmethod
    def _expiry_labels(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        out: dict[str, ImplicitLabel] = {}
        for item in filter(None, (p.strip() for p in v.split(","))):
            m = _EXPIRY_LABEL.fullmatch(item)
            if m is None or m["endpoint"].strip() in out:
                raise ValueError("must be a comma list of endpoint=0 or endpoint=1, each optionally @delay "
                                 "(seconds, or a number with s, m, h or d: fraud-ep=0@7d), each endpoint once")
            after = None if m["amount"] is None else int(m["amount"]) * _UNIT_SECONDS[m["unit"] or "s"] * 1000
            if after == 0:
                raise ValueError(f"{item}: the delay must be more than 0")
            out[m["endpoint"].strip()] = ImplicitLabel(int(m["label"]), after)
        return out

    @model_validator(mode="after")
    def _expiry_label_delays(self) -> "Settings":
        for endpoint, rule in self.expiry_labels.items():
            if rule.after_ms is not None and rule.after_ms >= self.label_ttl_seconds * 1000:
                raise ValueError(f"ROLLGUARD_EXPIRY_LABELS: {endpoint}'s delay must be shorter than "
                                 f"ROLLGUARD_LABEL_TTL_SECONDS ({self.label_ttl_seconds} s), so a real label can still correct it")
        return self

    def pending_cap(self) -> int:
        """max_pending_captures, or the default of the state store."""
        if self.max_pending_captures is not None:
            return self.max_pending_captures
        return 5_000_000 if self.state_store == "memory" else 1_000_000_000

    @model_validator(mode="after")
    def _distinct_topics(self) -> "Settings":
        topics = [self.captures_topic, self.labels_topic, self.dead_letter_topic]
        if len(set(topics)) != 3:
            raise ValueError(
                "ROLLGUARD_CAPTURES_TOPIC, ROLLGUARD_LABELS_TOPIC and ROLLGUARD_DEAD_LETTER_TOPIC must name three different topics"
            )
        return self

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


_NUMBER_ERRORS = frozenset({
    "finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "float_parsing", "float_type", "int_parsing", "int_type", "int_from_float",
})


def _number_rule(name: str) -> str | None:
    """What a numeric setting accepts, from its bounds: 'must be a finite number of seconds > 0 and <= 3600'."""
    field = Settings.model_fields.get(name)
    if field is None or field.annotation not in (int, float):
        return None
    kind = "a whole number" if field.annotation is int else "a finite number"
    unit = " of seconds" if name.endswith("_seconds") else " of milliseconds" if name.endswith("_ms") else ""
    bounds = [
        f"{op} {int(bound) if float(bound).is_integer() else bound}"
        for constraint in field.metadata
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
        if (bound := getattr(constraint, attr, None)) is not None
    ]
    return f"must be {kind}{unit}" + (f" {' and '.join(bounds)}" if bounds else "")


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = first["loc"][0] if first["loc"] else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] in _NUMBER_ERRORS and len(first["loc"]) == 1:
        msg = _number_rule(str(loc)) or msg
    if not loc:
        return f"invalid settings: {msg}"
    name = f"{ENV_PREFIX}{str(loc).upper()}"
    value = first.get("input")
    secret = loc == "http_token"  # a mistyped token is still a secret: never echo it
    secret = secret or loc in _KAFKA_SECRETS
    shown = f"={value!r}" if isinstance(value, (str, int, float)) and loc and not secret else ""
    return f"invalid setting {name}{shown}: {msg}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, or raise SettingsError with one line naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise SettingsError(_one_line(err)) from None
    except _SourceError as err:
        raise SettingsError(str(err).splitlines()[0]) from None
