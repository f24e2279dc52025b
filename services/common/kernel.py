"""What every service is built on: settings, codec, producer, Cassandra, clock, status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from cassandra.cluster import Cluster, Session

from services.common.avro.codec import AvroCodec
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.cassandra.session import AsyncSession, connect
from services.common.clock import Clock, SystemClock
from services.common.config import CommonSettings
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics
from services.common.logging import configure_logging
from services.common.retry import with_retries
from services.common.status import StatusEmitter


@dataclass
class Kernel:
    settings: CommonSettings
    topics: Topics
    serde: RecordSerde
    clock: Clock
    status: StatusEmitter
    producer: AsyncProducer
    cassandra: AsyncSession
    cluster: Cluster


async def build_kernel(settings: CommonSettings) -> Kernel:
    topics = Topics(settings.kafka.topic_prefix, settings.delay_tiers_s)
    serde = RecordSerde(codec=AvroCodec(registry=SchemaRegistry(schemas_dir=settings.schemas_dir)))

    async def connect_cassandra() -> tuple[Cluster, Session]:
        return await asyncio.to_thread(
            connect, settings.cassandra, keyspace=settings.cassandra.keyspace
        )

    # Cassandra may still be starting: retry for about a minute before giving up.
    cluster, session = await with_retries(
        "cassandra_connect", connect_cassandra, attempts=12, first_delay_s=1.0, max_delay_s=8.0
    )
    producer = AsyncProducer(config=producer_config(settings.kafka))
    return Kernel(
        settings=settings,
        topics=topics,
        serde=serde,
        clock=SystemClock(),
        status=StatusEmitter(serde=serde, topic=topics.status),
        producer=producer,
        cassandra=AsyncSession(session=session),
        cluster=cluster,
    )


async def run_kernel(kernel: Kernel, lanes: list[Lane], stop: asyncio.Event) -> None:
    kernel.producer.start()
    try:
        await run_lanes(
            lanes=lanes, settings=kernel.settings.kafka, producer=kernel.producer, stop=stop
        )
    finally:
        try:
            await kernel.producer.close()
        finally:
            kernel.cluster.shutdown()


def service_main(
    name: str,
    settings_factory: Callable[[], CommonSettings],
    lanes_factory: Callable[[Kernel], list[Lane]],
) -> None:
    """The whole of each service's __main__: build the kernel, its lanes, and run them."""
    from services.common.lifecycle import run_service

    settings = settings_factory()
    configure_logging(level=settings.log_level, fmt=settings.log_format)

    async def main(stop: asyncio.Event) -> None:
        kernel = await build_kernel(settings)
        await run_kernel(kernel, lanes_factory(kernel), stop)

    run_service(name, main)
