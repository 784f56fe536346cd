"""config.clients: security settings reach every client, and Redis AUTH/TLS really work.

The unit tests check the configs handed to kafka-python, aiokafka and Faust. The integration
tests start their own ``redis-server`` (with ``--requirepass``, and with TLS where the build
has it) on a free loopback port, and talk to it through ``make_redis``/``make_async_redis``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from config.clients import (
    ClientConfigError,
    aiokafka_config,
    faust_broker_credentials,
    kafka_python_config,
    make_async_redis,
    make_redis,
)
from config.settings import Settings

PASSWORD = "s3cret-pass"
SERVER_START_TIMEOUT_S = 10.0


def settings_with(**overrides: Any) -> Settings:
    """Settings with every security field at its plaintext default, then the overrides."""
    base: dict[str, Any] = {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "redis_url": "redis://127.0.0.1:6379/0",
        "kafka_security_protocol": "PLAINTEXT",
        "kafka_sasl_mechanism": "",
        "kafka_sasl_username": "",
        "kafka_sasl_password": "",
        "kafka_ssl_cafile": "",
        "kafka_ssl_certfile": "",
        "kafka_ssl_keyfile": "",
        "redis_username": "",
        "redis_password": "",
        "redis_ssl_ca_certs": "",
    }
    base.update(overrides)
    return Settings.model_validate({**Settings().model_dump(), **base})  # passwords: SecretStr


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _self_signed_with_cryptography(cert: Path, key: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return True


def _self_signed_with_openssl(cert: Path, key: Path) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return True


@pytest.fixture
def cert_pair(tmp_path: Path) -> CertPair:
    """A self-signed certificate for localhost/127.0.0.1 that is also its own CA."""
    pair = CertPair(cert=tmp_path / "cert.pem", key=tmp_path / "key.pem")
    if not (
        _self_signed_with_cryptography(pair.cert, pair.key)
        or _self_signed_with_openssl(pair.cert, pair.key)
    ):
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    return pair


# --- Kafka: unit --------------------------------------------------------------------------


def test_plaintext_is_the_default() -> None:
    settings = settings_with()
    assert kafka_python_config(settings) == {
        "bootstrap_servers": ["kafka-1:9093", "kafka-2:9093"],
        "security_protocol": "PLAINTEXT",
    }
    assert aiokafka_config(settings) == {
        "bootstrap_servers": ["kafka-1:9093", "kafka-2:9093"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_broker_credentials(settings) is None


def test_sasl_ssl_reaches_kafka_python(cert_pair: CertPair) -> None:
    settings = settings_with(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="limitsync",
        kafka_sasl_password="pw",
        kafka_ssl_cafile=str(cert_pair.cert),
    )
    config = kafka_python_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "limitsync"
    assert config["sasl_plain_password"] == "pw"
    assert config["ssl_cafile"] == str(cert_pair.cert)
    assert config["ssl_check_hostname"] is True
    assert "ssl_certfile" not in config


def test_kafka_python_config_keys_are_known_to_kafka_python(cert_pair: CertPair) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    settings = settings_with(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
        kafka_ssl_cafile=str(cert_pair.cert),
        kafka_ssl_certfile=str(cert_pair.cert),
        kafka_ssl_keyfile=str(cert_pair.key),
    )
    keys = set(kafka_python_config(settings))
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert keys <= set(client.DEFAULT_CONFIG), keys - set(client.DEFAULT_CONFIG)


def test_sasl_ssl_reaches_aiokafka(cert_pair: CertPair) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    settings = settings_with(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="limitsync",
        kafka_sasl_password="pw",
        kafka_ssl_cafile=str(cert_pair.cert),
    )
    config = aiokafka_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert config["sasl_plain_username"] == "limitsync"
    assert config["sasl_plain_password"] == "pw"
    context = config["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert not any(key.endswith("file") for key in config)
    for client in (AIOKafkaProducer, AIOKafkaConsumer):
        params = inspect.signature(client.__init__).parameters
        assert set(config) <= set(params), set(config) - set(params)


def test_mutual_tls_loads_the_client_certificate(cert_pair: CertPair) -> None:
    settings = settings_with(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(cert_pair.cert),
        kafka_ssl_certfile=str(cert_pair.cert),
        kafka_ssl_keyfile=str(cert_pair.key),
    )
    config = kafka_python_config(settings)
    assert config["ssl_certfile"] == str(cert_pair.cert)
    assert config["ssl_keyfile"] == str(cert_pair.key)
    assert "sasl_mechanism" not in config
    assert isinstance(aiokafka_config(settings)["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls_context() -> None:
    settings = settings_with(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    assert "ssl_context" not in aiokafka_config(settings)
    assert not any(key.startswith("ssl_") for key in kafka_python_config(settings))


def test_faust_sasl_credentials(cert_pair: CertPair) -> None:
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol, SASLMechanism

    settings = settings_with(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="limitsync",
        kafka_sasl_password="pw",
        kafka_ssl_cafile=str(cert_pair.cert),
    )
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_plain_username"] == "limitsync"
    assert auth["sasl_plain_password"] == "pw"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_faust_sasl_plaintext_credentials() -> None:
    from faust.auth import SASLCredentials
    from faust.types.auth import AuthProtocol

    settings = settings_with(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.ssl_context is None


def test_faust_ssl_credentials(cert_pair: CertPair) -> None:
    from faust.auth import SSLCredentials
    from faust.types.auth import AuthProtocol

    settings = settings_with(kafka_security_protocol="SSL", kafka_ssl_cafile=str(cert_pair.cert))
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "overrides",
    [
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u",
         "kafka_sasl_password": "p"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI",
         "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
         "kafka_sasl_username": "u"},
        {"kafka_security_protocol": "PLAINTEXT", "kafka_ssl_cafile": "/etc/ca.pem"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
         "kafka_sasl_username": "u", "kafka_sasl_password": "p",
         "kafka_ssl_cafile": "/etc/ca.pem"},
        {"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_username": "u"},
        {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/etc/key.pem"},
    ],
    ids=["sasl-no-mechanism", "sasl-unsupported-mechanism", "sasl-no-password",
         "cafile-without-tls", "cafile-with-sasl-plaintext", "sasl-user-without-sasl",
         "key-without-cert"],
)  # fmt: skip
def test_contradictory_kafka_security_is_refused(overrides: dict[str, str]) -> None:
    settings = settings_with(**overrides)
    with pytest.raises(ClientConfigError):
        kafka_python_config(settings)
    with pytest.raises(ClientConfigError):
        aiokafka_config(settings)
    with pytest.raises(ClientConfigError):
        faust_broker_credentials(settings)


# --- Redis: unit --------------------------------------------------------------------------


def test_settings_credentials_win_over_the_url() -> None:
    settings = settings_with(
        redis_url="redis://old:stale@cache.internal:6380/3",
        redis_username="limitsync",
        redis_password=PASSWORD,
    )
    client = make_redis(settings)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["host"] == "cache.internal"
        assert kwargs["port"] == 6380
        assert kwargs["db"] == 3
        assert kwargs["username"] == "limitsync"
        assert kwargs["password"] == PASSWORD
        assert kwargs["socket_timeout"] > 0
        assert kwargs["socket_connect_timeout"] > 0
    finally:
        client.close()


def test_url_credentials_are_kept_when_settings_have_none() -> None:
    client = make_redis(settings_with(redis_url="redis://:fromurl@cache.internal:6379/0"))
    try:
        assert client.connection_pool.connection_kwargs["password"] == "fromurl"
    finally:
        client.close()


def test_rediss_selects_tls_with_the_ca() -> None:
    settings = settings_with(
        redis_url="rediss://cache.internal:6380/0", redis_ssl_ca_certs="/etc/redis-ca.pem"
    )
    client = make_redis(settings)
    try:
        pool = client.connection_pool
        assert issubclass(pool.connection_class, redis.SSLConnection)
        assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/redis-ca.pem"
        assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    finally:
        client.close()
    async_client = make_async_redis(settings)
    try:
        assert issubclass(
            async_client.connection_pool.connection_class, redis.asyncio.SSLConnection
        )
    finally:
        asyncio.run(async_client.aclose())  # type: ignore[attr-defined,unused-ignore]


@pytest.mark.parametrize(
    ("url", "ca"),
    [("redis://cache:6379/0", "/etc/redis-ca.pem"), ("unix:///tmp/redis.sock", ""),
     ("http://cache:6379", "")],
)  # fmt: skip
def test_contradictory_redis_settings_are_refused(url: str, ca: str) -> None:
    settings = settings_with(redis_url=url, redis_ssl_ca_certs=ca)
    with pytest.raises(ClientConfigError):
        make_redis(settings)
    with pytest.raises(ClientConfigError):
        make_async_redis(settings)


# --- Redis: integration -------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    port: int
    tls: bool


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH")
    return binary


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on {port} in {SERVER_START_TIMEOUT_S}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _base_args(binary: str, tmp_path: Path) -> list[str]:
    return [binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
            "--requirepass", PASSWORD, "--dir", str(tmp_path)]  # fmt: skip


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    binary = _redis_server_binary()
    port = _free_port()
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*_base_args(binary, tmp_path), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(process, port, log)
        yield RedisServer(port=port, tls=False)
    finally:
        _stop(process)


@pytest.fixture
def redis_with_tls(tmp_path: Path, cert_pair: CertPair) -> Iterator[RedisServer]:
    binary = _redis_server_binary()
    port = _free_port()
    log = tmp_path / "redis-tls.log"
    args = [
        *_base_args(binary, tmp_path), "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(cert_pair.cert), "--tls-key-file", str(cert_pair.key),
        "--tls-ca-cert-file", str(cert_pair.cert), "--tls-auth-clients", "no",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
        if process.returncode is not None:
            output = log.read_text(errors="replace")
            if "Bad directive" in output and "tls-port" in output:
                version = next((ln for ln in output.splitlines() if "FATAL" in ln), "").strip()
                pytest.skip(
                    f"{binary} was built without TLS support: it rejects --tls-port {version}"
                )
            raise RuntimeError(f"redis-server exited: {output[-2000:]}")
        _wait_listening(process, port, log)
        yield RedisServer(port=port, tls=True)
    finally:
        if process.returncode is None:
            _stop(process)


@pytest.mark.integration
def test_make_redis_authenticates_with_the_password(redis_with_password: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_with_password.port}/0"
    client = make_redis(settings_with(redis_url=url, redis_password=PASSWORD))
    try:
        assert client.ping() is True
        client.hset("limit:acc-1", mapping={"available": 100, "version": 1})
        assert client.hgetall("limit:acc-1") == {"available": "100", "version": "1"}
    finally:
        client.close()


@pytest.mark.integration
def test_make_redis_without_password_is_refused(redis_with_password: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_with_password.port}/0"
    client = make_redis(settings_with(redis_url=url))
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    finally:
        client.close()


@pytest.mark.integration
def test_make_redis_with_a_wrong_password_is_refused(redis_with_password: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_with_password.port}/0"
    client = make_redis(settings_with(redis_url=url, redis_password="wrong"))
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    finally:
        client.close()


@pytest.mark.integration
def test_make_async_redis_authenticates(redis_with_password: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_with_password.port}/0"

    async def roundtrip(settings: Settings) -> bool:
        client = make_async_redis(settings)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()  # type: ignore[attr-defined,unused-ignore]

    assert asyncio.run(roundtrip(settings_with(redis_url=url, redis_password=PASSWORD)))
    with pytest.raises(redis.AuthenticationError):
        asyncio.run(roundtrip(settings_with(redis_url=url)))


@pytest.mark.integration
def test_make_redis_over_tls(redis_with_tls: RedisServer, cert_pair: CertPair) -> None:
    url = f"rediss://127.0.0.1:{redis_with_tls.port}/0"
    client = make_redis(
        settings_with(
            redis_url=url, redis_password=PASSWORD, redis_ssl_ca_certs=str(cert_pair.cert)
        )
    )
    try:
        assert client.ping() is True
        client.set("tls-check", "ok")
        assert client.get("tls-check") == "ok"
    finally:
        client.close()


@pytest.mark.integration
def test_make_async_redis_over_tls(redis_with_tls: RedisServer, cert_pair: CertPair) -> None:
    url = f"rediss://127.0.0.1:{redis_with_tls.port}/0"
    settings = settings_with(
        redis_url=url, redis_password=PASSWORD, redis_ssl_ca_certs=str(cert_pair.cert)
    )

    async def roundtrip() -> bool:
        client = make_async_redis(settings)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()  # type: ignore[attr-defined,unused-ignore]

    assert asyncio.run(roundtrip())


@pytest.mark.integration
def test_make_redis_over_tls_rejects_an_unknown_ca(
    redis_with_tls: RedisServer, tmp_path: Path
) -> None:
    other = CertPair(cert=tmp_path / "other.pem", key=tmp_path / "other-key.pem")
    if not _self_signed_with_cryptography(other.cert, other.key):
        _self_signed_with_openssl(other.cert, other.key)
    url = f"rediss://127.0.0.1:{redis_with_tls.port}/0"
    client = make_redis(
        settings_with(redis_url=url, redis_password=PASSWORD, redis_ssl_ca_certs=str(other.cert))
    )
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        client.close()
