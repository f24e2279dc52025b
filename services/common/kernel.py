"""What every service is built on: settings, codec, producer, Cassandra, clock, status."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from dataclasses import dataclass

from cassandra.cluster import Cluster, Session

from services.common.avro.codec import AvroCodec
from services.common.avro.registry import SchemaRegistry
from services.common.avro.serde import RecordSerde
from services.common.cassandra.session import AsyncSession, connect
from services.common.clock import Clock, SystemClock
from services.common.config import CommonSettings
from services.common.errors import KeyspaceMissing, TransientError
from services.common.health import Health, HealthServer
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics
from services.common.logging import get_logger
from services.common.memory import trim_memory
from services.common.status import StatusEmitter

log = get_logger(__name__)


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


async def build_kernel(
    settings: CommonSettings, *, health: Health, stop: asyncio.Event
) -> Kernel | None:
    """None when stop was set while waiting for Cassandra."""
    topics = Topics(settings.kafka.topic_prefix, settings.delay_tiers_s)
    serde = RecordSerde(codec=AvroCodec(registry=SchemaRegistry(schemas_dir=settings.schemas_dir)))
    connected = await _wait_for_cassandra(settings, health=health, stop=stop)
    if connected is None:
        return None
    cluster, session = connected
    producer = AsyncProducer(
        config=producer_config(settings.kafka),
        urgent_config=producer_config(settings.kafka, urgent=True),
    )
    return Kernel(
        settings=settings,
        topics=topics,
        serde=serde,
        clock=SystemClock(),
        status=StatusEmitter(serde=serde, topics=topics),
        producer=producer,
        cassandra=AsyncSession(session=session),
        cluster=cluster,
    )


async def _wait_for_cassandra(
    settings: CommonSettings, *, health: Health, stop: asyncio.Event
) -> tuple[Cluster, Session] | None:
    """Nothing is consumed before Cassandra answers, so waiting is safe however long it takes:
    the service stays up and not ready (a supervisor need not restart it) until it does."""
    delay = 1.0
    said = ""  # the missing keyspace's message, once logged
    while not stop.is_set():
        try:
            connected = await asyncio.to_thread(
                connect, settings.cassandra, keyspace=settings.cassandra.keyspace
            )
        except TransientError as exc:
            health.set("cassandra", False, str(exc))
            if not isinstance(exc, KeyspaceMissing):
                log.warning("cassandra_unavailable", retry_in_s=delay, error=str(exc)[:300])
                said = ""
            elif str(exc) != said:
                # Not an outage but a migration yet to run, which may take a while: said
                # once (and on each change), readiness saying it meanwhile.
                log.warning("cassandra_keyspace_missing", error=str(exc))
                said = str(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 8.0)
            continue
        health.set("cassandra", True, "connected")
        return connected
    return None


async def watch_readiness(kernel: Kernel, health: Health, stop: asyncio.Event) -> None:
    """Probes Kafka (a metadata request) and Cassandra (the driver's view of its hosts)."""
    interval = kernel.settings.health.probe_interval_s
    while not stop.is_set():
        kafka_ok = await asyncio.to_thread(kernel.producer.reachable, min(interval, 5.0))
        health.set("kafka", kafka_ok, "metadata answered" if kafka_ok else "no broker answers")
        hosts = kernel.cluster.metadata.all_hosts()
        up = [h for h in hosts if h.is_up]
        health.set("cassandra", bool(up), f"{len(up)} of {len(hosts)} hosts up")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def run_kernel(
    kernel: Kernel, lanes: list[Lane], stop: asyncio.Event, *, health: Health | None = None
) -> None:
    kernel.producer.start()
    try:
        await run_lanes(
            lanes=lanes,
            settings=kernel.settings.kafka,
            producer=kernel.producer,
            stop=stop,
            health=health,
        )
    finally:
        try:
            await kernel.producer.close()
        finally:
            kernel.cluster.shutdown()


def service_main(
    name: str,
    settings_cls: type[CommonSettings],
    lanes_factory: Callable[[Kernel], list[Lane]],
) -> None:
    """The whole of each service's __main__: build the kernel, its lanes, and run them.
    Malformed settings and a health port in use end it with one line and exit 2."""
    from services.common.lifecycle import run_service, service_settings

    settings = service_settings(name, settings_cls)

    async def main(stop: asyncio.Event) -> None:
        health = Health(service=name, required=("kafka", "cassandra"))
        server = HealthServer(health=health, host=settings.health.host, port=settings.health.port)
        if settings.health.enabled:
            await server.start()
        try:
            kernel = await build_kernel(settings, health=health, stop=stop)
            if kernel is None:
                return
            watcher = asyncio.create_task(watch_readiness(kernel, health, stop))
            trimmer = asyncio.create_task(trim_memory(settings.memory_trim_interval_s, stop))
            lanes = lanes_factory(kernel)
            # Everything built so far lives as long as the process: out of the collector's
            # sight, full collections (which land inside renders and sends) scan far less.
            gc.freeze()
            try:
                await run_kernel(kernel, lanes, stop, health=health)
            finally:
                for task in (watcher, trimmer):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await server.close()

    run_service(name, main, event_loop=settings.event_loop)
