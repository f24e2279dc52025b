"""EmailClient: encode an EmailRequested per the contract and publish it to its priority topic."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from services.common.avro.codec import AvroCodec
from services.common.avro.records import EmailRequested, Recipient
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.config import REPO_ROOT, KafkaSettings
from services.common.errors import DeliveryFailed
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics
from services.common.priority import Priority


def new_request(
    *,
    tenant_id: str,
    from_address: str,
    to: list[str] | str,
    message_id: str | None = None,
    **fields: Any,
) -> EmailRequested:
    """An EmailRequested with a fresh message_id and requested_at = now."""
    recipients = [to] if isinstance(to, str) else to
    return EmailRequested(
        message_id=message_id or str(uuid.uuid4()),
        tenant_id=tenant_id,
        from_address=from_address,
        to=[Recipient(address=a) for a in recipients],
        requested_at=time.time_ns() // 1_000_000,
        **fields,
    )


class EmailClient:
    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        topic_prefix: str = "",
        kafka: KafkaSettings | None = None,
        schemas_dir: Path | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        settings = kafka or KafkaSettings(
            bootstrap_servers=bootstrap_servers or KafkaSettings().bootstrap_servers,
            topic_prefix=topic_prefix,
        )
        self._topics = Topics(settings.topic_prefix)
        self._serde = RecordSerde(
            codec=AvroCodec(
                registry=SchemaRegistry(schemas_dir=schemas_dir or REPO_ROOT / "schemas")
            )
        )
        self._producer = Producer(producer_config(settings) | (extra_config or {}))
        self._errors: list[str] = []

    def encode(self, request: EmailRequested) -> bytes:
        return self._serde.encode(request)

    def send(
        self,
        request: EmailRequested,
        *,
        priority: Priority = Priority.TRANSACTIONAL,
        wait: bool = True,
    ) -> str:
        """Publishes the request; with wait, returns only once the broker has it."""
        self.publish_raw(self.encode(request), key=request.message_id, priority=priority)
        if wait:
            self.flush()
        return request.message_id

    def publish_raw(self, value: bytes, *, key: str, priority: Priority) -> None:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._errors.append(f"{err.name()}: {err.str()}")

        while True:
            try:
                self._producer.produce(
                    self._topics.requested(priority),
                    value=value,
                    key=key.encode(),
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                self._producer.poll(0.1)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryFailed(f"{remaining} undelivered; errors: {errors[:3]}")

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> EmailClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
