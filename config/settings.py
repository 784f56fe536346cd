"""Configuration, read once by the composition root.

Every knob has a default that runs the embedded local stack; production overrides them with
environment variables (``LIMITSYNC_*``, plus the conventional ``KAFKA_BOOTSTRAP_SERVERS`` and
``REDIS_URL``) or a state file written by ``limitsync up``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypedDict
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.contract import (
    CLEARING_SLA_S,
    DEDUPE_HORIZON_S,
    ESCALATION_FACTOR,
    MAX_FUTURE_SKEW_S,
    RESCORE_WINDOW_S,
    REVERSAL_WINDOW_S,
    SLA_S,
)

__all__ = ["REDACTED", "Settings", "load_settings", "redact_url"]

REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` with the password of its user part (``scheme://user:password@host``) replaced by
    ``***``, for logs, prints and files people read. A webhook's token is often the whole
    query string or path, so callers that show a webhook URL hide those too (``secret_url``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:{REDACTED}@{host}"))


class CoreSeconds(TypedDict):
    """The core's knobs in seconds, by the names ``CoreConfig.from_seconds`` takes."""

    sla_s: int
    clearing_sla_s: int
    escalation_factor: int
    dedupe_horizon_s: int
    rescore_enabled: bool
    rescore_window_s: int
    reversal_window_s: int


class Settings(BaseSettings):
    """All runtime settings. Limits carry their unit last in the name."""

    model_config = SettingsConfigDict(
        env_prefix="LIMITSYNC_", extra="ignore", populate_by_name=True
    )

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("LIMITSYNC_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("LIMITSYNC_REDIS_URL", "REDIS_URL"),
    )
    # Kafka security (SASL/TLS). Empty values mean plaintext.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")  # SecretStr: never in a repr or a log
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""

    # Redis security: AUTH via the URL (redis://:password@host) or these; TLS via rediss://.
    redis_username: str = ""
    redis_password: SecretStr = SecretStr("")
    redis_ssl_ca_certs: str = ""

    topic_prefix: str = "limit."
    partitions: int = 8
    replication_factor: int = 1
    app_id: str = "limitsync"
    cache_prefix: str = "limit:"

    # The core's knobs (``core_seconds``), defaults from the contract. The SLAs keep the
    # environment names the docs and manifests have always used.
    sla_s: int = Field(default=SLA_S, validation_alias="LIMITSYNC_SLA_SECONDS")
    clearing_sla_s: int = Field(
        default=CLEARING_SLA_S, validation_alias="LIMITSYNC_CLEARING_SLA_SECONDS"
    )
    dedupe_horizon_s: int = DEDUPE_HORIZON_S
    reversal_window_s: int = REVERSAL_WINDOW_S  # event time a posting is kept for its reversal
    max_future_skew_s: int = MAX_FUTURE_SKEW_S  # live: a record stamped further ahead is refused
    escalation_factor: int = ESCALATION_FACTOR

    rescore_enabled: bool = True
    rescore_window_s: int = RESCORE_WINDOW_S
    rescore_timeout_s: float = 5.0
    rescore_retries_max: int = 3
    scorer: str = "streams.scorer:BehaviourScorecard"

    auto_heal_reasons: str = "SYNC_DELAY,CACHE_MISSING,CACHE_DIVERGED,FREEZE_NOT_APPLIED"
    sampler_interval_s: float = 1.0
    sampler_batch_max: int = 500  # cache reads per round: accounts with a change in flight
    sampler_sweep_max: int = 200  # and, of the others, this many in turn (finds tampering)
    cache_write_batch_max: int = 500
    cache_retry_backoff_max_s: float = 5.0

    # The alert router's webhook (`alerts route`, `alerts redeliver`) when --webhook is not
    # given: empty means none. A secret: such URLs often carry their token.
    alert_webhook_url: SecretStr = SecretStr("")

    web_bind: str = "127.0.0.1"  # where this worker listens (0.0.0.0 in a container)
    # How other workers reach it (pod DNS name in Kubernetes); empty: this machine's host name.
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = ".limitsync/data"
    standby_replicas: int = 1
    store: str = "memory://"  # "rocksdb://" in production for more accounts than memory holds

    def core_seconds(self) -> CoreSeconds:
        """The core's knobs, by the names ``CoreConfig.from_seconds`` takes."""
        return CoreSeconds(
            sla_s=self.sla_s,
            clearing_sla_s=self.clearing_sla_s,
            escalation_factor=self.escalation_factor,
            dedupe_horizon_s=self.dedupe_horizon_s,
            rescore_enabled=self.rescore_enabled,
            rescore_window_s=self.rescore_window_s,
            reversal_window_s=self.reversal_window_s,
        )

    def topic(self, name: str) -> str:
        """Full topic name for one of the contract's topics."""
        return f"{self.topic_prefix}{name}"

    @property
    def topics(self) -> dict[str, str]:
        """The contract's topic map, as written in the state file."""
        return {
            "account_events": self.topic("account-events"),
            "displayed": self.topic("displayed"),
            "rescore_requests": self.topic("rescore-requests"),
            "alerts": self.topic("alerts"),
            "dead_letters": self.topic("dead-letters"),
            "inquiries": self.topic("inquiries"),  # issue 15: limit inquiries and answers
        }

    @property
    def auto_heal(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.auto_heal_reasons.split(",") if r.strip())


def load_settings(state_file: str | Path | None = None, **overrides: object) -> Settings:
    """Settings from the environment, then a state file of ``limitsync up``, then overrides."""
    values: dict[str, object] = {}
    if state_file is not None:
        state = json.loads(Path(state_file).read_text(encoding="utf-8"))
        values["bootstrap_servers"] = state["bootstrap_servers"]
        values["redis_url"] = state["redis_url"]
        prefix = state.get("topic_prefix")
        if isinstance(prefix, str):
            values["topic_prefix"] = prefix
    values.update({k: v for k, v in overrides.items() if v is not None})
    base = Settings()
    if not values:
        return base
    # Validated (model_copy would not be): a password given as text becomes a SecretStr.
    return Settings.model_validate({**base.model_dump(), **values})
