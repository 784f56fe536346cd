"""Client factories: the one place that turns Settings into Kafka and Redis client configs.

Kafka security (SASL/TLS) and Redis AUTH/TLS settings are applied here and nowhere else, so a
component never opens a plaintext connection because it forgot a key. Nothing here connects:
each function builds a config or an unconnected client object when called, and importing the
module imports neither faust nor a network client (faust parses ``sys.argv`` on import).

A configuration that asks for security and cannot have it (a CA file with a plaintext
protocol, SASL without credentials, a Redis CA with ``redis://``) raises
:class:`ClientConfigError` instead of silently falling back to plaintext.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio

from config.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = [
    "REDIS_CONNECT_TIMEOUT_S",
    "REDIS_HEALTH_CHECK_INTERVAL_S",
    "REDIS_SOCKET_TIMEOUT_S",
    "SASL_MECHANISMS",
    "ClientConfigError",
    "aiokafka_config",
    "faust_broker_credentials",
    "kafka_python_config",
    "kafka_ssl_context",
    "make_async_redis",
    "make_redis",
]

SASL_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
REDIS_SOCKET_TIMEOUT_S = 5.0
REDIS_CONNECT_TIMEOUT_S = 5.0
REDIS_HEALTH_CHECK_INTERVAL_S = 30


class ClientConfigError(ValueError):
    """The security settings contradict each other; refusing to connect."""


# --- Kafka -------------------------------------------------------------------------------


def _uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _uses_ssl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _check_kafka(settings: Settings) -> None:
    protocol = settings.kafka_security_protocol
    if _uses_sasl(settings):
        mechanism = settings.kafka_sasl_mechanism
        if mechanism not in SASL_MECHANISMS:
            raise ClientConfigError(
                f"kafka_security_protocol={protocol} needs kafka_sasl_mechanism in "
                f"{sorted(SASL_MECHANISMS)}, got {mechanism!r}"
            )
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            raise ClientConfigError(
                f"kafka_security_protocol={protocol} needs kafka_sasl_username and "
                "kafka_sasl_password"
            )
    else:
        stray = [
            name
            for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
            if getattr(settings, name)
        ]
        if stray:
            raise ClientConfigError(
                f"{', '.join(stray)} set but kafka_security_protocol={protocol} does not use SASL"
            )
    if not _uses_ssl(settings):
        stray = [
            name
            for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
            if getattr(settings, name)
        ]
        if stray:
            raise ClientConfigError(
                f"{', '.join(stray)} set but kafka_security_protocol={protocol} does not use TLS"
            )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise ClientConfigError("kafka_ssl_keyfile set without kafka_ssl_certfile")


def _bootstrap_servers(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()]


def _sasl_options(settings: Settings) -> dict[str, Any]:
    if not _uses_sasl(settings):
        return {}
    return {
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
    }


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaProducer``/``KafkaConsumer``/admin client.

    Includes ``bootstrap_servers``; the caller adds group ids, serializers and the like.
    """
    _check_kafka(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": _bootstrap_servers(settings),
        "security_protocol": settings.kafka_security_protocol,
        **_sasl_options(settings),
    }
    if _uses_ssl(settings):
        config["ssl_check_hostname"] = True
        for key, value in (
            ("ssl_cafile", settings.kafka_ssl_cafile),
            ("ssl_certfile", settings.kafka_ssl_certfile),
            ("ssl_keyfile", settings.kafka_ssl_keyfile),
        ):
            if value:
                config[key] = value
    return config


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for aiokafka and Faust, or None when the protocol has no TLS.

    Reads the CA and client certificate files, so call it at startup, not at import.
    """
    _check_kafka(settings)
    if not _uses_ssl(settings):
        return None
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(
        cafile=settings.kafka_ssl_cafile or None,
        certfile=settings.kafka_ssl_certfile or None,
        keyfile=settings.kafka_ssl_keyfile or None,
    )


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``.

    Includes ``bootstrap_servers``; TLS goes in as an ``ssl.SSLContext`` (aiokafka takes no
    file names), built with ``aiokafka.helpers.create_ssl_context``.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": _bootstrap_servers(settings),
        "security_protocol": settings.kafka_security_protocol,
        **_sasl_options(settings),
    }
    context = kafka_ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    return config


def faust_broker_credentials(settings: Settings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App``: SASL, SSL, or None for plaintext."""
    context = kafka_ssl_context(settings)
    from faust.auth import SASLCredentials, SSLCredentials

    if _uses_sasl(settings):
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


# --- Redis -------------------------------------------------------------------------------


def _redis_url_and_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The URL and keyword arguments shared by the sync and asyncio clients.

    ``redis_username``/``redis_password`` win over credentials written in the URL (redis-py
    would otherwise let the URL win), so a secret can be injected apart from the address.
    """
    url = settings.redis_url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ClientConfigError(
            f"redis_url must start with redis:// or rediss://, got {parts.scheme!r}"
        )
    if settings.redis_ssl_ca_certs and parts.scheme != "rediss":
        raise ClientConfigError("redis_ssl_ca_certs set but redis_url is not rediss://")
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
        "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL_S,
    }
    if settings.redis_username or settings.redis_password:
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=host))
        options["username"] = settings.redis_username or None
        options["password"] = settings.redis_password.get_secret_value() or None
    if parts.scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        if settings.redis_ssl_ca_certs:
            options["ssl_ca_certs"] = settings.redis_ssl_ca_certs
    return url, options


def make_redis(settings: Settings) -> redis.Redis:
    """A blocking Redis client (``decode_responses=True``); connects on first command."""
    url, options = _redis_url_and_options(settings)
    return redis.Redis.from_url(url, **options)


def make_async_redis(settings: Settings) -> redis.asyncio.Redis:
    """An asyncio Redis client (``decode_responses=True``); connects on first command."""
    url, options = _redis_url_and_options(settings)
    return redis.asyncio.Redis.from_url(url, **options)
