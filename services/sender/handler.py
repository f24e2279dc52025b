"""sender: one SMTP transaction per task, classified into an outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from services.common.avro.records import Bounce, DeliveryTask, EventType, SmtpReply
from services.common.avro.serde import RecordSerde
from services.common.clock import Clock
from services.common.delay import Retries
from services.common.deliveries import Delivery, DeliveryLedger
from services.common.errors import TransientError
from services.common.kafka import lease
from services.common.kafka.records import Inbound, Output
from services.common.kafka.topics import Topics
from services.common.logging import get_logger
from services.common.metrics import ACCEPTED_TO_DELIVERED, SMTP_OUTCOMES
from services.common.reasons import Reason
from services.common.retry import Backoff
from services.common.schedule import RetryPolicy
from services.common.status import StatusEmitter
from services.mail.dkim import DkimSigner
from services.sender.egress import Egress, UnknownRoute
from services.sender.keyring import DkimKeyring
from services.sender.outcome import Outcome, classify, enhanced_code
from services.sender.smtp import Attempt, SmtpPool

log = get_logger(__name__)
# Tries of a ledger write that fails with other than an outage, before the outcome stands
# without its record.
_LEDGER_TRIES = 5


class SenderHandler:
    def __init__(
        self,
        *,
        serde: RecordSerde,
        topics: Topics,
        status: StatusEmitter,
        pool: SmtpPool,
        ledger: DeliveryLedger,
        clock: Clock,
        policy: RetryPolicy,
        keyring: DkimKeyring,
        egress: Egress,
    ) -> None:
        self._serde = serde
        self._topics = topics
        self._status = status
        self._pool = pool
        self._ledger = ledger
        self._clock = clock
        self._retries = Retries(policy=policy, status=status, topics=topics, serde=serde)
        self._keyring = keyring
        self._egress = egress
        # Tasks being delivered now, by (tenant, message, recipient). A redelivered copy of a
        # task (an upstream service redid uncommitted work) can arrive while the first copy is
        # still in flight, before the ledger knows of it: the copy waits, then sees the ledger.
        self._in_flight: dict[tuple[str, str, str], asyncio.Event] = {}
        # Set while every 250 so far is in the ledger. A 250 whose record cannot be written
        # yet keeps retrying the write, and no new SMTP transaction starts meanwhile: each
        # would be one more message sent twice if the process died before the writes land.
        self._ledger_current = asyncio.Event()
        self._ledger_current.set()
        self._unrecorded = 0

    async def __call__(self, inbound: Inbound) -> Sequence[Output]:
        task = self._serde.decode(DeliveryTask, inbound.value)
        key = (task.tenant_id, task.message_id, task.recipient)
        with structlog.contextvars.bound_contextvars(
            message_id=task.message_id, tenant_id=task.tenant_id, recipient=task.recipient
        ):
            while (busy := self._in_flight.get(key)) is not None:
                await busy.wait()
            done = self._in_flight[key] = asyncio.Event()
            try:
                return await self._deliver(task)
            finally:
                del self._in_flight[key]
                done.set()

    async def quarantined(self, inbound: Inbound, _error: Exception) -> Sequence[Output]:
        """A task given up on: DELIVERED if the ledger has its 250 (what failed came after
        it), else REJECTED: it is never sent by this record again."""
        task = self._serde.decode(DeliveryTask, inbound.value)
        done = await self._ledger.delivered(
            tenant_id=task.tenant_id, message_id=task.message_id, recipient=task.recipient
        )
        if done is not None:
            return self._delivered_event(task, done)
        now = self._clock.now_ms()
        return self._status.for_task(task, EventType.REJECTED, now, reason=Reason.INTERNAL_ERROR)

    async def _deliver(self, task: DeliveryTask) -> list[Output]:
        done = await self._ledger.delivered(
            tenant_id=task.tenant_id, message_id=task.message_id, recipient=task.recipient
        )
        if done is not None:
            # Sent before, by this process or one that died before its DELIVERED status was
            # acknowledged: publish that same event again (same attempt, same event_id), never
            # the mail. Without it such a recipient would never reach a terminal event.
            log.info("already_delivered_republished", attempt=done.attempt)
            return self._delivered_event(task, done)
        signer = await self._keyring.signer(task.sender_domain)
        unusable = self._keyring.unusable(task.sender_domain)
        if unusable is not None:
            # Sending now would send it unsigned, or signed by fewer keys than configured.
            log.warning("dkim_key_unavailable", domain=task.sender_domain, detail=unusable)
            now = self._clock.now_ms()
            return self._retries.failed(task, now, reason=Reason.DKIM_KEY_UNAVAILABLE)
        attempt = await self._attempt(task, signer)
        now = self._clock.now_ms()
        number = task.attempt + 1
        verdict = classify(
            attempt.code,
            attempt.text,
            connection_error=attempt.connection_error,
            stage=attempt.stage,
        )
        labels = (verdict.outcome.value, verdict.category, attempt.provider, task.priority.value)
        SMTP_OUTCOMES.labels(*labels).inc()
        reply = SmtpReply(
            code=attempt.code or 0,
            text=attempt.text,
            enhanced_code=enhanced_code(attempt.text),
            mx_host=attempt.mx_host,
            tls_version=attempt.tls_version,
        )
        if verdict.outcome is Outcome.DELIVERED:
            delivery = Delivery(
                at_ms=now,
                attempt=number,
                mx_host=attempt.mx_host,
                code=attempt.code,
                reply=attempt.text,
                tls_version=attempt.tls_version,
            )
            await self._record(task, delivery)
            log.info("delivered", mx_host=attempt.mx_host, attempt=number)
            ACCEPTED_TO_DELIVERED.labels(task.priority.value, attempt.provider).observe(
                max(0, now - task.accepted_at) / 1000
            )
            return self._delivered_event(task, delivery)
        if verdict.outcome is Outcome.BOUNCED:
            log.info("bounced", code=attempt.code, category=verdict.category)
            assert verdict.bounce_kind is not None
            return self._status.for_task(
                task,
                EventType.BOUNCED,
                now,
                attempt=number,
                smtp=reply,
                reason=Reason(verdict.category),
                bounce=Bounce(kind=verdict.bounce_kind, category=verdict.category),
            )
        return self._retries.failed(
            task,
            now,
            reason=Reason(verdict.category),
            smtp=reply,
            retry_after_s=verdict.retry_after_s,
        )

    async def _record(self, task: DeliveryTask, delivery: Delivery) -> None:
        """Writes the 250 to the ledger, retrying until it lands: once the MX has the message,
        the task must never be sent again, and only the ledger says so to a redelivery."""
        backoff = Backoff(first_s=0.2, max_s=10.0)
        failures = 0
        try:
            while True:
                try:
                    await self._ledger.record(
                        tenant_id=task.tenant_id,
                        message_id=task.message_id,
                        recipient=task.recipient,
                        delivery=delivery,
                    )
                    return
                except Exception as exc:
                    if failures == 0:
                        self._unrecorded += 1
                        self._ledger_current.clear()
                    failures += 1
                    if not isinstance(exc, TransientError) and failures >= _LEDGER_TRIES:
                        # Not an outage, and it will not pass: the outcome is known all the
                        # same, and only a redelivery of this very task could send it again.
                        log.error("ledger_write_failed", attempt=failures, exc_info=exc)
                        return
                    delay = backoff.next()
                    log.warning(
                        "ledger_write_waiting",
                        attempt=failures,
                        error_class=type(exc).__name__,
                        error=str(exc)[:300],
                        retry_in_s=delay,
                    )
                    await asyncio.sleep(delay)
        finally:
            if failures:
                self._unrecorded -= 1
                if self._unrecorded == 0:
                    self._ledger_current.set()

    def _delivered_event(self, task: DeliveryTask, delivery: Delivery) -> list[Output]:
        reply = SmtpReply(
            code=delivery.code or 250,
            text=delivery.reply,
            enhanced_code=enhanced_code(delivery.reply),
            mx_host=delivery.mx_host,
            tls_version=delivery.tls_version,
        )
        return self._status.for_task(
            task,
            EventType.DELIVERED,
            delivery.at_ms,
            attempt=delivery.attempt if delivery.attempt is not None else task.attempt + 1,
            smtp=reply,
        )

    async def _attempt(self, task: DeliveryTask, signer: DkimSigner) -> Attempt:
        """Tries the MX hosts in preference order, moving on only when a host gave no reply."""
        last = Attempt(mx_host="", code=None, text="no MX host to try", connection_error="routing")
        try:
            path = self._egress.path_for(task)
        except UnknownRoute as exc:
            log.error("unknown_route", error=str(exc))
            return Attempt(mx_host="", code=None, text=str(exc), connection_error="routing")
        data = signer.sign(task.mime, domain=task.sender_domain)
        await self._ledger_current.wait()
        for mx in task.mx_hosts:
            lease.ensure_owned()  # a revoked task sends nothing: its new owner will
            last = await self._pool.send(
                mx=mx,
                mail_from=task.mail_from,
                recipient=task.recipient,
                data=data,
                rank=task.priority.rank,
                path=path,
            )
            if last.code is not None and last.connection_error is None:
                return last
            log.info("mx_unreachable", mx_host=mx.host, address=mx.address, error=last.text)
        return last
