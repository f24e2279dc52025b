"""The one consume -> process -> produce -> commit engine. Only this module polls Kafka.

Each lane is one consumer group over a set of topics with one handler. A message's offset
becomes committable only when every output of it, and of every earlier message of its
partition, is acknowledged by the broker; offsets are committed every commit interval, on
shutdown and before a revoke completes. Three kinds of error, one fate each, and no single
record can stop a lane:
- undecodable data (InvalidData) goes to the lane's dead-letter topic at once;
- an infrastructure failure (TransientError: Kafka, Cassandra or DNS unavailable) makes the
  record wait and try again, without limit: the partition waits, readiness says why, nothing
  is skipped and the process does not exit;
- any other exception is retried a bounded number of times, then the record is quarantined:
  its bytes go untouched to the internal dead-letter topic, its recipients get their terminal
  events (the lane's Quarantine), and the lane goes on with the next record.
Only a fatal client error stops the service, without committing what it was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from services.common.clock import Clock, SystemClock
from services.common.config import KafkaSettings
from services.common.errors import FatalError, Fenced, InvalidData, TransientError
from services.common.health import Health
from services.common.kafka import headers, lease
from services.common.kafka.dlq import dead_letter
from services.common.kafka.offsets import OffsetTracker, TopicPartitionKey
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import DueAt, Handler, Inbound, Output, Quarantine
from services.common.kafka.settings import consumer_config
from services.common.logging import get_logger
from services.common.metrics import (
    CONSUMED,
    CONSUMER_LAG,
    DEAD_LETTERS,
    HANDLE_SECONDS,
    INFRA_WAITS,
    LANE_FAILURES,
    PRODUCED,
    QUARANTINED,
)
from services.common.priority import Priority
from services.common.retry import Backoff

log = get_logger(__name__)
T = TypeVar("T")
_WAIT_S = 0.1  # the longest a consumer call blocks, so stop and pauses are seen promptly
_REJOIN_S = 60.0  # out of its group this long with the broker up: a new consumer


@dataclass(frozen=True)
class Lane:
    """One consumer group: which topics, which handler, where dead letters go."""

    name: str
    group_id: str
    topics: list[str]
    handler: Handler
    dlq_topic: str
    due_at: DueAt | None = None
    max_in_flight: int | None = None
    # Record bytes (inbound values) the lane may hold in flight; None: only the count bounds
    # it. Over it, the lane takes nothing until some finish; with nothing in flight it always
    # takes what is fetched, so one record larger than the budget is never stuck. A fetch
    # taken while under it can pass it by that fetch, which the prefetch bounds.
    max_in_flight_bytes: int | None = None
    # Handle records with the same key on a partition one after another (in offset order),
    # e.g. the steps of one message, whose public events must not overtake each other.
    key_ordered: bool = False
    # The priority of everything this lane carries, if it carries one only (see Precedence).
    priority: Priority | None = None
    # The terminal events of a record given up on; None: its records carry no recipient.
    on_quarantine: Quarantine | None = None
    # Where quarantined records go (None: dlq_topic). Ingest's dlq_topic is the public one
    # for undecodable requests; what it gives up on after decoding is internal.
    quarantine_topic: str | None = None


class Precedence:
    """Strict priority between the lanes of one process. While a more urgent lane is active
    (it has work in flight and took a new message within the last `hold_s`), a less urgent
    lane keeps at most `outranked_window` messages in flight. The event loop, the Cassandra
    session and the CPU are shared: every bulk step queued ahead of a critical one delays it.
    The hold keeps a critical lane stuck on a slow peer from throttling the rest for long."""

    def __init__(self, *, outranked_window: int, hold_s: float) -> None:
        self._outranked_window = outranked_window
        self._hold_s = hold_s
        self._runners: list[LaneRunner] = []

    def join(self, runner: LaneRunner) -> None:
        self._runners.append(runner)

    def window(self, runner: LaneRunner, full: int) -> int:
        rank = runner.rank
        if rank is None:
            return full
        now = time.monotonic()
        for other in self._runners:
            if other.rank is not None and other.rank < rank and other.active(now, self._hold_s):
                return min(full, self._outranked_window)
        return full


class LaneRunner:
    def __init__(
        self,
        *,
        lane: Lane,
        settings: KafkaSettings,
        producer: AsyncProducer,
        stop: asyncio.Event,
        clock: Clock | None = None,
        precedence: Precedence | None = None,
        health: Health | None = None,
    ) -> None:
        self._lane = lane
        self._health = health
        self._loop: asyncio.AbstractEventLoop | None = None
        # Bumped at every assignment and revoke of a partition: a record's lease holds while
        # its partition's generation is the one it began in.
        self._generation: dict[TopicPartitionKey, int] = {}
        self._by_partition: dict[TopicPartitionKey, set[asyncio.Task[bool]]] = {}
        self._leases: dict[asyncio.Task[bool], lease.Lease] = {}  # of the tasks that began
        self._waiting = 0  # records waiting for the infrastructure now
        self._precedence = precedence
        if precedence is not None:
            precedence.join(self)
        self._last_take = 0.0  # monotonic time this lane last began a message
        self._settings = settings
        self._producer = producer
        # A critical lane's outputs go through the producer's unlingered client.
        self._urgent = lane.priority is Priority.CRITICAL
        self._stop = stop
        self._clock = clock or SystemClock()
        self._max_in_flight = lane.max_in_flight or settings.max_in_flight
        self._tracker = OffsetTracker()
        self._assigned: set[TopicPartitionKey] = set()
        self._paused: dict[TopicPartitionKey, tuple[int, int]] = {}  # tp -> (offset, due ms)
        self._committed: dict[TopicPartitionKey, int] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        self._bytes_in_flight = 0  # the inbound values of _tasks
        # The last task begun per (partition, key), when the lane is key-ordered.
        self._key_tail: dict[tuple[str, int, bytes | None], asyncio.Task[bool]] = {}
        self._room = asyncio.Event()
        self._failure: BaseException | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"consumer-{lane.name}")
        self._consumer: Consumer | None = None
        self._lag_labels: set[tuple[str, str]] = set()  # (topic, partition) with a lag gauge
        # The first offset fetched per partition since it was assigned: the group's committed
        # offset then, until this lane commits one of its own.
        self._first_seen: dict[TopicPartitionKey, int] = {}
        self._out_since: float | None = None  # monotonic time it was last seen out of its group

    @property
    def rank(self) -> int | None:
        return self._lane.priority.rank if self._lane.priority is not None else None

    def active(self, now: float, hold_s: float) -> bool:
        return bool(self._tasks) and now - self._last_take < hold_s

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Every consumer call runs on the lane's own thread: librdkafka consumers are not
        meant to be shared across threads, and a blocking poll must not stall the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _make_consumer(self) -> Consumer:
        conf = consumer_config(self._settings, group_id=self._lane.group_id)
        consumer = Consumer(conf)
        consumer.subscribe(
            self._lane.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        return consumer

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = await self._call(self._make_consumer)
        log.info("lane_started", lane=self._lane.name, topics=self._lane.topics)
        try:
            await self._consume_until_stopped()
        finally:
            await self._shutdown()
        if self._failure is not None:
            raise self._failure

    async def _consume_until_stopped(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_commit = last_lag = time.monotonic()
        while not self._stop.is_set() and self._failure is None:
            if time.monotonic() - last_lag >= self._settings.lag_interval_s:
                await self._call(self._measure_lag, consumer)
                last_lag = time.monotonic()
                if await self._call(self._out_of_group, consumer):
                    consumer = await self._replace_consumer(consumer)
            await self._resume_due()
            if self._free() <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), _WAIT_S)
                continue
            messages = await self._fetch(consumer)
            await self._dispatch(messages)
            if time.monotonic() - last_commit >= self._settings.commit_interval_s:
                await self._commit()
                last_commit = time.monotonic()

    def _out_of_group(self, consumer: Consumer) -> bool:
        """On the consumer thread: whether this consumer has been out of its group (no
        member id: not joined, whether or not it would get partitions) for longer than
        _REJOIN_S while the infrastructure is up. librdkafka 2.16 can leave a consumer
        unable to reach its group coordinator after the broker restarted (its requests
        wait in the coordinator connection's queue and time out, again and again): the lane
        would then never consume again. A new consumer joins afresh."""
        now = time.monotonic()
        if consumer.memberid() or not self._infrastructure_up():
            self._out_since = None
            return False
        if self._out_since is None:
            self._out_since = now
        return now - self._out_since > _REJOIN_S

    async def _replace_consumer(self, old: Consumer) -> Consumer:
        log.warning("consumer_replaced", lane=self._lane.name, out_of_group_s=_REJOIN_S)
        self._out_since = None
        # Nothing is assigned to it, so nothing of it is in flight; its close may wait on
        # the coordinator it cannot reach, so it closes on a thread of its own.
        self._drop(list(self._assigned))
        threading.Thread(target=_close_quietly, args=(old,), daemon=True).start()
        self._consumer = await self._call(self._make_consumer)
        return self._consumer

    def _free(self) -> int:
        """How many more messages this lane may take now."""
        budget = self._lane.max_in_flight_bytes
        if budget is not None and self._tasks and self._bytes_in_flight >= budget:
            return 0
        window = self._max_in_flight
        if self._precedence is not None:
            window = self._precedence.window(self, window)
        return min(window - len(self._tasks), self._settings.consume_batch)

    async def _fetch(self, consumer: Consumer) -> list[Message]:
        """What is queued, up to the free room; else wait for one message, and top it up to
        the room there is after the wait (a more urgent lane may have become active in it).
        librdkafka's batch consume waits out its whole timeout unless the batch fills, which
        added up to 100 ms per hop to an idle pipeline."""
        messages: list[Message] = await self._call(consumer.consume, self._free(), 0)
        if messages:
            return messages
        return await self._call(self._wait_and_top_up, consumer)

    def _wait_and_top_up(self, consumer: Consumer) -> list[Message]:
        """On the consumer thread: one message or _WAIT_S, then what else is queued, in one
        hand-off to the thread (two cost an idle hop 0.2-0.3 ms more). The room is read
        here, after the wait; the lane's counts it reads are the loop's, read whole."""
        messages: list[Message] = consumer.consume(1, _WAIT_S)
        more = self._free() - len(messages)
        if messages and more > 0:
            before = {_tp(m): self._generation.get(_tp(m), 0) for m in messages}
            topped = consumer.consume(more, 0)
            # A rebalance served inside the top-up may have taken a partition of the first
            # batch away (and given it back): those messages belong to the old assignment.
            # The new one reads them again from the committed offset, so handling these too
            # would do the work twice (a sender: a second DELIVERED, at worst a second send).
            messages = [m for m in messages if self._generation.get(_tp(m), 0) == before[_tp(m)]]
            messages += topped
        return messages

    async def _dispatch(self, messages: list[Message]) -> None:
        now = self._clock.now_ms()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consumer_error", lane=self._lane.name, error=str(error))
                continue
            inbound = _inbound(message)
            tp = (inbound.topic, inbound.partition)
            self._first_seen.setdefault(tp, inbound.offset)
            if tp in self._paused:
                continue  # fetched before the pause; re-read from the paused offset later
            due = self._due(inbound)
            if due is not None and due > now:
                await self._pause_until(tp, inbound.offset, due)
                continue
            self._tracker.begin(tp, inbound.offset)
            self._last_take = time.monotonic()
            previous = None
            if self._lane.key_ordered:
                previous = self._key_tail.get((*tp, inbound.key))
            task = asyncio.create_task(self._process(tp, inbound, after=previous))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._hold_bytes(task, len(inbound.value))
            held = self._by_partition.setdefault(tp, set())
            held.add(task)
            task.add_done_callback(held.discard)
            task.add_done_callback(self._forget_lease)
            if self._lane.key_ordered:
                self._track_tail((*tp, inbound.key), task)

    def _forget_lease(self, task: asyncio.Task[bool]) -> None:
        self._leases.pop(task, None)

    def _hold_bytes(self, task: asyncio.Task[bool], size: int) -> None:
        self._bytes_in_flight += size

        def release(_done: asyncio.Task[bool]) -> None:
            self._bytes_in_flight -= size

        task.add_done_callback(release)

    def _due(self, inbound: Inbound) -> int | None:
        """A delay record's due time; one whose header cannot be read is due now (its handler
        then meets whatever else is wrong with it) rather than stopping the lane."""
        if self._lane.due_at is None:
            return None
        try:
            return self._lane.due_at(inbound)
        except Exception as exc:
            log.warning("due_at_unreadable", lane=self._lane.name, error=str(exc)[:200])
            return None

    def _track_tail(self, key: tuple[str, int, bytes | None], task: asyncio.Task[bool]) -> None:
        self._key_tail[key] = task

        def forget(done: asyncio.Task[bool]) -> None:
            if self._key_tail.get(key) is done:
                del self._key_tail[key]

        task.add_done_callback(forget)

    async def _process(
        self, tp: TopicPartitionKey, inbound: Inbound, *, after: asyncio.Task[bool] | None = None
    ) -> bool:
        """Handles one record until it is settled (its outputs acknowledged, its offset
        committable): True. False when it was abandoned unsettled (its partition was revoked,
        or the service is stopping while it waits): the next owner of the offset redoes it."""
        try:
            if after is not None:
                # A key's records settle in offset order; behind an abandoned one, abandon too.
                await asyncio.wait([after])
                if after.cancelled() or after.exception() is not None or not after.result():
                    return False
            generation = self._generation.get(tp, 0)
            held = lease.hold(lambda: self._owns(tp, generation))
            if (me := asyncio.current_task()) is not None:
                self._leases[me] = held
            CONSUMED.labels(self._lane.name, inbound.topic).inc()
            began = time.monotonic()
            produced = await self._settle(tp, generation, inbound)
        except Exception as exc:  # fatal: stop without committing; a restart redoes this
            LANE_FAILURES.labels(self._lane.name).inc()
            if self._failure is None:
                self._failure = exc
                log.error(
                    "lane_failed",
                    lane=self._lane.name,
                    topic=inbound.topic,
                    offset=inbound.offset,
                    exc_info=exc,
                )
            self._stop.set()
            return False
        finally:
            self._room.set()
        if produced is None:
            return False
        PRODUCED.labels(self._lane.name).inc(produced)
        HANDLE_SECONDS.labels(self._lane.name).observe(time.monotonic() - began)
        self._tracker.done(tp, inbound.offset)
        return True

    async def _settle(self, tp: TopicPartitionKey, generation: int, inbound: Inbound) -> int | None:
        """The number of outputs produced, or None when abandoned (see _process)."""
        settings = self._settings
        backoff = Backoff(
            first_s=settings.infra_backoff_first_s, max_s=settings.infra_backoff_max_s
        )
        failures = 0
        last: Exception | None = None
        waiting = False
        try:
            while True:
                if not self._owns(tp, generation):
                    log.info("record_fenced", lane=self._lane.name, partition=tp[1],
                             offset=inbound.offset)  # fmt: skip
                    return None
                try:
                    if last is not None and failures >= settings.handler_attempts:
                        outputs = await self._quarantine(inbound, last, failures)
                    else:
                        outputs = await self._outputs(inbound)
                    for stage in sorted({o.stage for o in outputs}):
                        await self._producer.produce_all(
                            [o for o in outputs if o.stage == stage], urgent=self._urgent
                        )
                except (FatalError, asyncio.CancelledError):
                    raise
                except Fenced:
                    log.info("record_fenced", lane=self._lane.name, partition=tp[1],
                             offset=inbound.offset)  # fmt: skip
                    return None
                except Exception as exc:
                    if not isinstance(exc, TransientError) and self._infrastructure_up():
                        failures += 1
                        last = exc
                        self._handler_failed(inbound, exc, failures)
                        if failures < settings.handler_attempts:
                            await self._pause(0.5 * failures)
                        continue
                    # Infrastructure: wait as long as it takes. An unclassified error while
                    # Kafka or Cassandra is known to be down is taken for the outage's.
                    if not waiting:
                        waiting = True
                        self._wait_begins(exc)
                    delay = backoff.next()
                    INFRA_WAITS.labels(self._lane.name, type(exc).__name__).inc()
                    log.warning(
                        "infrastructure_wait",
                        lane=self._lane.name,
                        partition=tp[1],
                        offset=inbound.offset,
                        error_class=type(exc).__name__,
                        error=str(exc)[:300],
                        retry_in_s=delay,
                    )
                    if await self._pause(delay):
                        return None  # stopping: left uncommitted, redone after the restart
                    continue
                if last is not None and failures >= settings.handler_attempts:
                    self._quarantined(inbound, last, failures)
                return len(outputs)
        finally:
            if waiting:
                self._wait_ends()

    async def _outputs(self, inbound: Inbound) -> list[Output]:
        try:
            return list(await self._lane.handler(inbound))
        except InvalidData as exc:
            DEAD_LETTERS.labels(self._lane.name).inc()
            log.warning(
                "dead_lettered",
                lane=self._lane.name,
                topic=inbound.topic,
                partition=inbound.partition,
                offset=inbound.offset,
                error_class=type(exc).__name__,
                error=str(exc)[:300],
            )
            return [dead_letter(inbound, exc, topic=self._lane.dlq_topic)]

    async def _quarantine(self, inbound: Inbound, error: Exception, attempts: int) -> list[Output]:
        """The record untouched on the quarantine topic, and its recipients' terminal events."""
        events: list[Output] = []
        if self._lane.on_quarantine is not None:
            try:
                events = list(await self._lane.on_quarantine(inbound, error))
            except (TransientError, FatalError):
                raise
            except Exception as exc:  # the record is past reading: its letter must still go
                log.error("quarantine_events_failed", lane=self._lane.name, exc_info=exc)
        letter = dead_letter(
            inbound,
            error,
            topic=self._lane.quarantine_topic or self._lane.dlq_topic,
            extra=[
                (headers.LANE, self._lane.name.encode()),
                (headers.ATTEMPTS, str(attempts).encode()),
                (headers.TRACEBACK_DIGEST, _digest(error).encode()),
            ],
        )
        return [letter, *events]

    def _handler_failed(self, inbound: Inbound, error: Exception, failures: int) -> None:
        log.warning(
            "handler_failed",
            lane=self._lane.name,
            message_id=_text(inbound.key),
            partition=inbound.partition,
            offset=inbound.offset,
            attempt=failures,
            of=self._settings.handler_attempts,
            error_class=type(error).__name__,
            error=str(error)[:300],
        )

    def _quarantined(self, inbound: Inbound, error: Exception, attempts: int) -> None:
        QUARANTINED.labels(self._lane.name, type(error).__name__).inc()
        log.error(
            "record_quarantined",
            lane=self._lane.name,
            message_id=_text(inbound.key),
            topic=inbound.topic,
            partition=inbound.partition,
            offset=inbound.offset,
            attempts=attempts,
            error_class=type(error).__name__,
            traceback_digest=_digest(error),
            exc_info=error,
        )

    def _infrastructure_up(self) -> bool:
        health = self._health
        return health is None or (health.holds("kafka") and health.holds("cassandra"))

    def _wait_begins(self, error: Exception) -> None:
        self._waiting += 1
        if self._health is not None:
            detail = f"waiting for the infrastructure: {type(error).__name__}: {error}"
            self._health.set(f"lane-{self._lane.name}", False, detail[:300])

    def _wait_ends(self) -> None:
        self._waiting -= 1
        if self._waiting == 0 and self._health is not None:
            self._health.set(f"lane-{self._lane.name}", True, "consuming")

    async def _pause(self, seconds: float) -> bool:
        """Sleeps, or returns early (True) once the service is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    def _owns(self, tp: TopicPartitionKey, generation: int) -> bool:
        return self._generation.get(tp) == generation and tp in self._assigned

    async def _pause_until(self, tp: TopicPartitionKey, offset: int, due_ms: int) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._paused[tp] = (offset, due_ms)
        await self._call(consumer.pause, [TopicPartition(tp[0], tp[1])])

    async def _resume_due(self) -> None:
        if not self._paused:
            return
        consumer = self._consumer
        assert consumer is not None
        now = self._clock.now_ms()
        for tp, (offset, due) in list(self._paused.items()):
            if due > now:
                continue
            del self._paused[tp]

            def resume(tp: TopicPartitionKey = tp, offset: int = offset) -> None:
                consumer.resume([TopicPartition(tp[0], tp[1])])
                # Messages behind the paused one may have been fetched and dropped: re-read.
                consumer.seek(TopicPartition(tp[0], tp[1], offset))

            await self._call(resume)

    async def _commit(self, tps: list[TopicPartitionKey] | None = None) -> None:
        consumer = self._consumer
        assert consumer is not None
        await self._call(self._commit_now, consumer, tps)

    def _commit_now(self, consumer: Consumer, tps: list[TopicPartitionKey] | None) -> None:
        """Runs on the consumer thread (also from inside rebalance callbacks)."""
        wanted = tps if tps is not None else list(self._assigned)
        offsets = self._tracker.committable(wanted)
        changed = [
            TopicPartition(t, p, o)
            for (t, p), o in offsets.items()
            if self._committed.get((t, p)) != o
        ]
        if not changed:
            return
        try:
            consumer.commit(offsets=changed, asynchronous=False)
        except KafkaException as exc:  # e.g. mid-rebalance: the new owner redoes the work
            log.warning("commit_failed", lane=self._lane.name, error=str(exc))
            return
        for tp in changed:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def _measure_lag(self, consumer: Consumer) -> None:
        """On the consumer thread: each held partition's records after the group's committed
        offset, from the high watermark of the latest fetch (no request to the broker).
        librdkafka's statistics would give the same, but a consumer with statistics on that
        starts while the broker is down can fail to join its group once the broker is back."""
        seen: set[tuple[str, str]] = set()
        for topic, partition in self._assigned:
            tp = (topic, partition)
            base = self._committed.get(tp, self._first_seen.get(tp))
            if base is None:
                continue  # nothing fetched or committed yet: the next round knows more
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high < 0:
                continue
            labels = (topic, str(partition))
            CONSUMER_LAG.labels(self._lane.name, *labels).set(max(0, high - base))
            seen.add(labels)
        for gone in self._lag_labels - seen:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self._lane.name, *gone)
        self._lag_labels = seen

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            tp = (p.topic, p.partition)
            self._generation[tp] = self._generation.get(tp, 0) + 1
            self._assigned.add(tp)
        log.info("partitions_assigned", lane=self._lane.name, partitions=_names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """On the consumer thread, before the partitions go to another member: what is in
        flight on them finishes (for at most the drain timeout) and is committed, so the new
        owner does not redo work this process is still doing; what is left is fenced."""
        tps = [(p.topic, p.partition) for p in partitions]
        log.info("partitions_revoked", lane=self._lane.name, partitions=_names(partitions))
        if self._failure is None:
            self._drain_revoked(tps)
            self._commit_now(consumer, tps)
        self._drop(tps)

    def _drain_revoked(self, tps: list[TopicPartitionKey]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        timeout = self._settings.revoke_drain_timeout_s
        held = [t for tp in tps for t in self._by_partition.get(tp, ())]
        began = time.monotonic()
        try:
            left = asyncio.run_coroutine_threadsafe(self._finish(held, timeout, tps), loop).result(
                timeout + self._settings.started_send_grace_s + 5
            )
        except Exception as exc:  # the loop is closing: nothing more runs on it anyway
            log.warning("revoke_drain_failed", lane=self._lane.name, error=repr(exc))
            return
        if left:
            log.warning("revoke_drain_timed_out", lane=self._lane.name, fenced=left)
        elif time.monotonic() - began > 0.5:
            log.info("revoke_drained", lane=self._lane.name, seconds=time.monotonic() - began)

    async def _finish(
        self,
        tasks: list[asyncio.Task[bool]],
        timeout_s: float,
        tps: list[TopicPartitionKey] | None = None,
    ) -> int:
        """Waits up to timeout_s for tasks to finish. Then ends the leases on tps (None: on
        every partition), so that what has not begun its side effect never will, and waits
        up to the started-send grace for those that have (lease.claim): their outcome is then
        recorded and committable before the partition changes hands. Returns how many
        tasks were left when the drain time was up."""
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        left = [t for t in tasks if not t.done()]
        if not left:
            return 0
        for tp in list(self._generation) if tps is None else tps:
            self._generation[tp] = self._generation.get(tp, 0) + 1
        started = [t for t in left if (h := self._leases.get(t)) is not None and h.claimed]
        if started:
            log.info("waiting_for_started_sends", lane=self._lane.name, sends=len(started))
            await asyncio.wait(started, timeout=self._settings.started_send_grace_s)
            if unfinished := sum(1 for t in started if not t.done()):
                # Each may have reached the MX without its record: a possible duplicate.
                log.error("started_sends_abandoned", lane=self._lane.name, sends=unfinished)
        return len(left)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group moved on without us (e.g. the session expired while the broker was away):
        # nothing is committed, the new owner redoes what was in flight.
        log.warning("partitions_lost", lane=self._lane.name, partitions=_names(partitions))
        self._drop([(p.topic, p.partition) for p in partitions])

    def _drop(self, tps: list[TopicPartitionKey]) -> None:
        self._tracker.forget(tps)
        for tp in tps:
            self._generation[tp] = self._generation.get(tp, 0) + 1  # ends every lease on it
            self._assigned.discard(tp)
            self._paused.pop(tp, None)
            self._committed.pop(tp, None)
            self._first_seen.pop(tp, None)

    async def _shutdown(self) -> None:
        consumer = self._consumer
        if self._failure is None and self._tasks:
            await self._finish(list(self._tasks), self._settings.drain_timeout_s)
        if self._failure is None and consumer is not None:
            await self._commit()
        for task in list(self._tasks):
            task.cancel()
        if consumer is not None:
            await self._call(consumer.close)
        self._executor.shutdown(wait=False)
        log.info("lane_stopped", lane=self._lane.name, failed=self._failure is not None)


def _close_quietly(consumer: Consumer) -> None:
    with contextlib.suppress(Exception):
        consumer.close()


def _digest(error: BaseException) -> str:
    """Which failure this is, stable across records: the exception's class and the places in
    the code it passed (not the message, which carries the record's own values)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = "|".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.name}:{f.lineno}" for f in frames)
    return hashlib.sha256(f"{type(error).__qualname__}|{where}".encode()).hexdigest()[:16]


def _text(key: bytes | None) -> str | None:
    return key.decode("utf-8", "replace")[:200] if key is not None else None


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{p.topic}[{p.partition}]" for p in partitions]


def _tp(message: Message) -> TopicPartitionKey:
    return (message.topic() or "", message.partition() or 0)


def _inbound(message: Message) -> Inbound:
    _kind, ts = message.timestamp()
    raw = message.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    key, value = message.key(), message.value()
    return Inbound(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.encode() if isinstance(key, str) else key,
        value=(value.encode() if isinstance(value, str) else value) or b"",
        timestamp_ms=ts,
        headers=[(str(k), _as_bytes(v)) for k, v in pairs],
    )


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else b""


def scan_topic(
    settings: KafkaSettings, topic: str, *, timeout_s: float = 10.0
) -> tuple[int, Iterator[Inbound]]:
    """The records a topic holds now, for operator commands: how many, and an iterator over
    them a partition at a time in offset order, so a long topic is never held in memory.
    Assigned, not subscribed, and nothing committed: reading moves no consumer group. Each
    partition is read up to its high watermark as it was when the scan began."""
    consumer = Consumer(consumer_config(settings, group_id=f"{settings.client_id}-reader"))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise KafkaException(found.error if found else f"no topic {topic}")
        ranges: list[tuple[int, int, int]] = []
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high > low:
                ranges.append((partition, low, high))
    except BaseException:
        consumer.close()
        raise

    def records() -> Iterator[Inbound]:
        try:
            for partition, low, high in ranges:
                consumer.assign([TopicPartition(topic, partition, low)])
                deadline = time.monotonic() + timeout_s
                position = low
                while position < high and time.monotonic() < deadline:
                    for message in consumer.consume(500, 0.5):
                        if message.error() is not None:
                            continue
                        inbound = _inbound(message)
                        if inbound.offset >= high:
                            continue
                        position = inbound.offset + 1
                        deadline = time.monotonic() + timeout_s
                        yield inbound
        finally:
            consumer.close()

    return sum(high - low for _, low, high in ranges), records()


async def run_lanes(
    *,
    lanes: list[Lane],
    settings: KafkaSettings,
    producer: AsyncProducer,
    stop: asyncio.Event,
    health: Health | None = None,
) -> None:
    """Runs lanes side by side until stop is set or one fails fatally; a failure stops them
    all, the others committing what they finished, and is raised once all have stopped."""
    precedence = Precedence(
        outranked_window=settings.outranked_max_in_flight, hold_s=settings.precedence_hold_s
    )
    runners = [
        LaneRunner(
            lane=lane,
            settings=settings,
            producer=producer,
            stop=stop,
            precedence=precedence,
            health=health,
        )
        for lane in lanes
    ]
    results = await asyncio.gather(*(r.run() for r in runners), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
