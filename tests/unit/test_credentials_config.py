"""Kafka SASL/SSL and Cassandra authentication/TLS settings reach the clients, from the
environment, and no secret shows in a settings repr (what a log line of them would print)."""

import ssl
from pathlib import Path

import pytest
from cassandra.auth import PlainTextAuthProvider
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.common.cassandra.session import cluster_options
from services.common.config import CommonSettings
from services.common.kafka.settings import admin_config, consumer_config, producer_config

KAFKA_SECRET = "kafka-sasl-p4ss"
KEY_SECRET = "kafka-key-p4ss"
CASSANDRA_SECRET = "cassandra-p4ss"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime as dt

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_settings_from_the_environment_reach_librdkafka_and_the_driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    for name, value in {
        "MAILSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "MAILSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "MAILSTREAM_KAFKA__SASL_USERNAME": "mailstream",
        "MAILSTREAM_KAFKA__SASL_PASSWORD": KAFKA_SECRET,
        "MAILSTREAM_KAFKA__SSL_CA_LOCATION": str(cert),
        "MAILSTREAM_KAFKA__SSL_KEY_PASSWORD": KEY_SECRET,
        "MAILSTREAM_CASSANDRA__USERNAME": "mailstream",
        "MAILSTREAM_CASSANDRA__PASSWORD": CASSANDRA_SECRET,
        "MAILSTREAM_CASSANDRA__SSL_CA_FILE": str(cert),
        "MAILSTREAM_CASSANDRA__SSL_CERT_FILE": str(cert),
        "MAILSTREAM_CASSANDRA__SSL_KEY_FILE": str(key),
    }.items():
        monkeypatch.setenv(name, value)
    settings = CommonSettings()
    for conf in (
        producer_config(settings.kafka),
        consumer_config(settings.kafka, group_id="g"),
        admin_config(settings.kafka),
    ):
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (conf["sasl.username"], conf["sasl.password"]) == ("mailstream", KAFKA_SECRET)
        assert conf["ssl.ca.location"] == str(cert) and conf["ssl.key.password"] == KEY_SECRET
    options = cluster_options(settings.cassandra)
    auth = options["auth_provider"]
    assert isinstance(auth, PlainTextAuthProvider)
    assert (auth.username, auth.password) == ("mailstream", CASSANDRA_SECRET)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED
    shown = repr(settings) + str(settings.model_dump())
    for secret in (KAFKA_SECRET, KEY_SECRET, CASSANDRA_SECRET):
        assert secret not in shown


def test_no_credentials_no_auth() -> None:
    options = cluster_options(CommonSettings().cassandra)
    assert "auth_provider" not in options and "ssl_context" not in options
