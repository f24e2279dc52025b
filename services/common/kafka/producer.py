"""An idempotent confluent-kafka producer whose deliveries are asyncio futures."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.common.errors import DeliveryFailed, FatalError, OutputRefused
from services.common.handoff import LoopHandoff
from services.common.kafka.records import Output
from services.common.logging import get_logger

log = get_logger(__name__)
_REPLACE_EVERY_S = 60.0


class AsyncProducer:
    """One per process. A background thread per client serves delivery callbacks; what they
    settle reaches the event loop through a LoopHandoff (one wake-up per burst of reports),
    so an awaited produce resolves as soon as the broker acknowledges it (acks=all).

    Given `urgent_config`, urgent outputs (those of critical lanes) go through a second
    client of their own: librdkafka's linger is one per client, and the few milliseconds
    that make the bulk of the traffic cheap are most of a Kafka hop for a lone OTP."""

    def __init__(self, *, config: dict[str, Any], urgent_config: dict[str, Any] | None = None):
        # Without an urgent configuration, urgent outputs share the one client.
        self._kinds = (False,) if urgent_config is None else (False, True)
        self._configs = {False: config, True: urgent_config or config}
        self._clients = {kind: Producer(self._configs[kind]) for kind in self._kinds}
        self._clients.setdefault(True, self._clients[False])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoff: LoopHandoff | None = None
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        # Producers replaced after a delivery timed out, polled until their purged
        # messages have reported (then dropped). Appended on the loop, read by a poll thread.
        self._retired: list[Any] = []
        self._replaced_at = {False: 0.0, True: 0.0}

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handoff = LoopHandoff(self._loop)
        for urgent in self._kinds:
            name = "producer-poll-urgent" if urgent else "producer-poll"
            thread = threading.Thread(target=self._serve, args=(urgent,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, urgent: bool) -> None:
        while not self._closing.is_set():
            self._clients[urgent].poll(0.05)
            if urgent:
                continue
            for old in list(self._retired):
                old.poll(0)
                if len(old) == 0:
                    self._retired.remove(old)

    def _live(self, client: Any) -> bool:
        return any(client is c for c in self._clients.values())

    def _delivered(
        self, future: asyncio.Future[None], client: Any, err: KafkaError | None, _msg: Message
    ) -> None:
        # On whichever thread serves the reports: a poll thread, or flush's.
        assert self._handoff is not None
        if err is not None and not self._live(client):
            # A retired client's last reports: a failed wait, to be tried again, whatever
            # librdkafka says of the client it gave up.
            self._handoff.post(_settle_failed, future, err)
            return
        self._handoff.post(_settle, future, err)
        if err is not None and err.code() == KafkaError._MSG_TIMED_OUT:
            self._handoff.post(self._replace, client)

    def _replace(self, client: Any) -> None:
        """On the loop, after a delivery timed out: a new client in place of this one.

        librdkafka's idempotent producer can stay wedged after its broker restarted with
        requests in flight: every message after that times out too, though the broker is
        back (seen in the chaos test that restarts the broker under load), and the lanes
        would wait for ever. Outputs queued in the old client are purged (their waits fail,
        and their records are handled again, as after any failed delivery); the next ones
        go to the new client, which asks the broker for a new producer id. At most once a
        minute per client: during a real outage the new client waits like the old one."""
        now = time.monotonic()
        kinds = [k for k in self._kinds if self._clients[k] is client]
        if not kinds or now - self._replaced_at[kinds[0]] < _REPLACE_EVERY_S:
            return
        (urgent,) = kinds
        self._replaced_at[urgent] = now
        fresh = Producer(self._configs[urgent])
        for kind in (False, True):  # both, when they share it
            if self._clients[kind] is client:
                self._clients[kind] = fresh
        log.warning("producer_replaced", reason="delivery timed out", urgent=urgent,
                    queued=len(client))  # fmt: skip
        # What waits in its queue fails now; what is in flight reports (or times out) as
        # the old client is polled until it holds nothing.
        client.purge(in_queue=True, in_flight=False, blocking=False)
        self._retired.append(client)

    def reachable(self, timeout_s: float) -> bool:
        """Whether a broker answers a metadata request now (blocking: call off the loop)."""
        try:
            self._clients[False].list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    async def produce(self, output: Output, *, urgent: bool = False) -> None:
        await (await self._enqueue(output, urgent))

    async def produce_all(self, outputs: list[Output], *, urgent: bool = False) -> None:
        """Queues every output in order, then waits for all their acknowledgements."""
        futures = [await self._enqueue(o, urgent) for o in outputs]
        if len(futures) == 1:
            await futures[0]
        elif futures:
            await asyncio.gather(*futures)

    async def _enqueue(self, output: Output, urgent: bool) -> asyncio.Future[None]:
        loop = self._loop
        assert loop is not None, "AsyncProducer.start() was not called"
        future: asyncio.Future[None] = loop.create_future()
        while True:
            client = self._clients[urgent]
            try:
                client.produce(
                    output.topic,
                    value=output.value,
                    key=output.key,
                    headers=output.headers,  # type: ignore[arg-type]
                    on_delivery=functools.partial(self._delivered, future, client),
                )
                return future
            except BufferError:  # local queue full: let the poll thread drain it
                await asyncio.sleep(0.01)
            except KafkaException as exc:  # refused before sending (e.g. over the size limit)
                raise delivery_error(exc.args[0]) from exc

    async def flush(self, timeout_s: float = 30.0) -> None:
        remaining = 0
        for urgent in self._kinds:
            remaining += await asyncio.to_thread(self._clients[urgent].flush, timeout_s)
        if remaining:
            raise DeliveryFailed(f"{remaining} messages undelivered after flush")

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            self._closing.set()
            for thread in self._threads:
                await asyncio.to_thread(thread.join, 2.0)


# Delivery errors that the same record would meet again however long the lane waited.
_REFUSED = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._INVALID_ARG,
    }
)


def delivery_error(err: KafkaError) -> Exception:
    """The fate of an undelivered output: fatal for the process, refused for the record, or
    (anything else: brokers down, timeouts, leaders moving) a wait for the infrastructure."""
    text = f"{err.name()}: {err.str()}"
    if err.fatal():
        return FatalError(text)
    if err.code() in _REFUSED:
        return OutputRefused(text)
    return DeliveryFailed(text)


def _settle_failed(future: asyncio.Future[None], err: KafkaError) -> None:
    if not future.done():
        future.set_exception(DeliveryFailed(f"{err.name()}: {err.str()}"))


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(delivery_error(err))
