"""A redelivered copy of a task that arrives while the first copy is being sent waits for it
and then finds the delivery in the ledger: one SMTP transaction, not two, and the copy
republishes the very same DELIVERED status (a copy redelivered after a crash between the
ledger write and that status is how a recipient would otherwise get no terminal event)."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.avro.codec import AvroCodec
from services.common.avro.records import DeliveryTask, EmailEvent, EventType, MxHost
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.clock import SystemClock
from services.common.config import REPO_ROOT, CommonSettings
from services.common.deliveries import Delivery
from services.common.kafka.records import Inbound
from services.common.kafka.topics import Topics
from services.common.priority import Priority
from services.common.routing import RoutingSettings
from services.common.schedule import RetryPolicy
from services.common.status import StatusEmitter, event_id
from services.sender.egress import Egress
from services.sender.handler import SenderHandler
from services.sender.smtp import Attempt
from services.sender.tls import TlsPolicy


class Ledger:
    def __init__(self) -> None:
        self.recorded: dict[tuple[str, str, str], Delivery] = {}

    async def delivered(
        self, *, tenant_id: str, message_id: str, recipient: str
    ) -> Delivery | None:
        return self.recorded.get((tenant_id, message_id, recipient))

    async def record(
        self, *, tenant_id: str, message_id: str, recipient: str, delivery: Delivery
    ) -> None:
        await asyncio.sleep(0.01)  # the ledger write takes a while, as Cassandra's does
        self.recorded[(tenant_id, message_id, recipient)] = delivery


class Pool:
    def __init__(self) -> None:
        self.sends = 0

    async def send(self, **_: Any) -> Attempt:
        self.sends += 1
        await asyncio.sleep(0.05)
        return Attempt(mx_host="mx.example.org", code=250, text="2.0.0 Ok")


class Signer:
    def sign(self, mime: bytes, *, domain: str) -> bytes:
        return mime


class Keyring:
    async def signer(self, domain: str | None = None) -> Signer:
        return Signer()

    def unusable(self, domain: str) -> str | None:
        return None


async def test_a_copy_in_flight_is_sent_once() -> None:
    serde = RecordSerde(codec=AvroCodec(registry=SchemaRegistry(schemas_dir=REPO_ROOT / "schemas")))
    topics = Topics("", (1, 2))
    pool, ledger = Pool(), Ledger()
    tls = TlsPolicy.parse(required_domains="", opportunistic=True, ca_file=None)
    handler = SenderHandler(
        serde=serde,
        topics=topics,
        status=StatusEmitter(serde=serde, topics=topics),
        pool=pool,  # type: ignore[arg-type]
        ledger=ledger,  # type: ignore[arg-type]
        clock=SystemClock(),
        policy=RetryPolicy.from_settings(CommonSettings()),
        keyring=Keyring(),  # type: ignore[arg-type]
        egress=Egress(routing=RoutingSettings(), tls=tls),
    )
    task = DeliveryTask(
        message_id="m1",
        tenant_id="acme",
        priority=Priority.CRITICAL,
        recipient="bob@example.org",
        mail_from="bounces@acme.example",
        mx_hosts=[MxHost(host="mx.example.org", address="192.0.2.1")],
        mime=b"Subject: x\r\n\r\nx\r\n",
        sender_domain="acme.example",
        attempt=0,
        accepted_at=0,
    )
    value = serde.encode(task)

    def inbound(offset: int) -> Inbound:
        return Inbound(
            topic="deliver",
            partition=0,
            offset=offset,
            key=b"m1",
            value=value,
            headers=[],
            timestamp_ms=0,
        )

    first, copy = await asyncio.gather(handler(inbound(1)), handler(inbound(2)))
    assert pool.sends == 1
    # DELIVERED goes straight to email.events (its fact is the ledger row): no status update.
    assert len(first) == 1 and len(copy) == 1
    assert first[0].topic == copy[0].topic == topics.events
    sent, again = (serde.decode(EmailEvent, out[0].value) for out in (first, copy))
    assert sent.type is EventType.DELIVERED and sent == again
    assert sent.event_id == event_id(sent) == event_id(again)

    # A later redelivery (the sender died before the status was acknowledged) does the same.
    later = await handler(inbound(3))
    assert pool.sends == 1 and serde.decode(EmailEvent, later[0].value) == sent
