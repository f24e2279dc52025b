"""Mail leaves signed: both DKIM signatures of a delivered message verify through DNS, RSA by
Perl Mail::DKIM (independent of dkimpy) and both by dkimpy."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from services.cli.tenants import read_tenants_file
from services.client import EmailClient, new_request
from services.common.avro.records import EventType
from services.mail.dkim import load_key
from tests.integration.dkim_dns import Dnsmasq, go_dkim_verify, mail_dkim_verify
from tests.integration.harness import RecordingSmtp, TopicCollector, events_for, mailstream


@pytest.fixture(scope="module")
def published_keys(
    provisioned: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dnsmasq]:
    """Serves the acme keys' public halves, read back the way the sender reads them."""
    tenants_file = next(Path(tmp_path_factory.getbasetemp()).glob("tenants*/tenants.yaml"))
    records = {}
    for tenant in read_tenants_file(tenants_file).tenants:
        for domain in tenant.sender_domains:
            for entry in domain.dkim:
                key = load_key(
                    Path(entry.private_key_file), selector=entry.selector, algorithm=entry.algorithm
                )
                records[f"{entry.selector}._domainkey.{domain.domain}"] = key.dns_txt_record()
    server = Dnsmasq(records=records)
    server.wait_ready()
    yield server
    server.stop()


def test_delivered_mail_carries_two_valid_dkim_signatures(
    client: EmailClient, events: TopicCollector, smtp: RecordingSmtp, published_keys: Dnsmasq
) -> None:
    mid = f"dkim-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to="dkim@inbox.mailstream.test",
            message_id=mid,
            subject=f"signed {mid}",
            text_body="sign me\r\n",
        )
    )
    events.wait_for(
        "DELIVERED", lambda xs: any(e.type is EventType.DELIVERED for e in events_for(xs, mid))
    )
    raw = next(m.data for m in smtp.messages if f"signed {mid}".encode() in m.data)
    assert raw.count(b"DKIM-Signature:") == 2
    assert b" l=" not in raw and b";l=" not in raw

    results = {r.algorithm: r for r in mail_dkim_verify(raw, env=published_keys.mail_dkim_env())}
    assert results["rsa-sha256"].result == "pass", results
    # Debian 12's Mail::DKIM (1.20230212) cannot verify Ed25519 at all; go-msgauth and dkimpy
    # do, below.
    assert results["ed25519-sha256"].result == "invalid"
    go = {r.algorithm: r.result for r in go_dkim_verify(raw, dns_port=published_keys.port)}
    assert go == {"rsa-sha256": "pass", "ed25519-sha256": "pass"}, go

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = ["127.0.0.1"], published_keys.port
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    verifier = dkim.DKIM(raw)
    assert [verifier.verify(idx=i, dnsfunc=dnsfunc) for i in range(2)] == [True, True]
    tampered = raw.replace(b"sign me", b"sign me!")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_a_key_that_cannot_be_loaded_defers_the_mail_never_unsigned(
    env: dict[str, str],
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    tmp_path: Path,
) -> None:
    """A tenant applied with a key file that is not there yet: its mail waits, DEFERRED
    dkim_key_unavailable, and goes out signed once the file appears."""
    run = uuid.uuid4().hex[:8]
    tenant, domain = f"nokey{run}", f"nokey{run}.mailstream.test"
    key_file = tmp_path / "late.key"
    (tmp_path / "tenants.yaml").write_text(
        f"tenants:\n  - id: {tenant}\n    sender_domains:\n      - domain: {domain}\n"
        f"        dkim:\n          - {{selector: late, algorithm: ed25519-sha256, "
        f"private_key_file: {key_file}}}\n"
    )
    refused = mailstream(env, "tenants", "apply", "-f", str(tmp_path / "tenants.yaml"))
    assert refused.returncode == 2 and "unusable DKIM key" in refused.stderr, refused.stderr
    applied = mailstream(
        env, "tenants", "apply", "--no-key-check", "-f", str(tmp_path / "tenants.yaml")
    )
    assert applied.returncode == 0, applied.stderr
    mid = f"nokey-{run}"
    client.send(
        new_request(
            tenant_id=tenant,
            from_address=f"hello@{domain}",
            to="signed@inbox.mailstream.test",
            message_id=mid,
            subject=f"late key {mid}",
            text_body="x",
        )
    )
    events.wait_for(
        "the mail deferred for its key",
        lambda xs: any(e.reason == "dkim_key_unavailable" for e in events_for(xs, mid)),
        60,
    )
    assert not [m for m in smtp.messages if mid.encode() in m.data]
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    key_file.write_bytes(base64.b64encode(seed))
    mine = events.wait_for(
        "the mail delivered once its key loads",
        lambda xs: any(e.type is EventType.DELIVERED for e in events_for(xs, mid)),
        60,
    )
    deferred = [e for e in events_for(mine, mid) if e.type is EventType.DEFERRED]
    assert deferred and all(e.reason == "dkim_key_unavailable" for e in deferred)
    (sent,) = [m for m in smtp.messages if mid.encode() in m.data]
    assert sent.data.startswith(b"DKIM-Signature:") and f"d={domain}".encode() in sent.data
