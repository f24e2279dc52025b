"""router: accepted requests become per-recipient delivery tasks; due delayed tasks go back
to the sender after a fresh MX lookup."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import structlog

from services.common.avro.records import (
    AcceptedRequest,
    Bounce,
    BounceKind,
    DeliveryTask,
    EmailRequested,
    EventType,
)
from services.common.avro.serde import RecordSerde
from services.common.clock import Clock
from services.common.delay import Retries, delayed_output, true_due
from services.common.kafka.records import Inbound, Output
from services.common.kafka.topics import Topics
from services.common.logging import get_logger
from services.common.priority import Priority
from services.common.reasons import Reason
from services.common.schedule import RetryPolicy, expiry_reason
from services.common.status import StatusEmitter
from services.common.tenants import TenantDirectory
from services.mail.render import (
    Rendered,
    RenderError,
    RenderLimits,
    render,
)
from services.mail.templates import TemplateStore
from services.router.mime import build_mime, has_https_unsubscribe
from services.router.mx import DnsTemporaryFailure, NoRoute
from services.router.pacing import BulkPacing
from services.router.policy import RoutePlanner, Unroutable

log = get_logger(__name__)


class Router:
    """What both lanes share: route one task to the sender, the delay topics or an outcome."""

    def __init__(
        self,
        *,
        serde: RecordSerde,
        topics: Topics,
        status: StatusEmitter,
        planner: RoutePlanner,
        clock: Clock,
        policy: RetryPolicy,
        return_path_local: str,
    ) -> None:
        self.serde = serde
        self.topics = topics
        self.status = status
        self.planner = planner
        self.clock = clock
        self.policy = policy
        self.retries = Retries(policy=policy, status=status, topics=topics, serde=serde)
        self.return_path_local = return_path_local

    async def route(self, task: DeliveryTask) -> list[Output]:
        now = self.clock.now_ms()
        deadline = self.policy.deadline_for(task)
        if now >= deadline:
            reason = expiry_reason(task, self.policy)
            return self.status.for_task(task, EventType.EXPIRED, now, reason=reason)
        if task.not_before is not None and task.not_before > now:
            return [self._delay(task, task.not_before, now)]
        try:
            plan = await self.planner.plan(task)
        except NoRoute as exc:
            return self.status.for_task(
                task,
                EventType.BOUNCED,
                now,
                reason=exc.reason,
                bounce=Bounce(kind=BounceKind.HARD, category=Reason.BAD_DOMAIN),
            )
        except DnsTemporaryFailure as exc:
            log.warning("dns_temporary_failure", recipient=task.recipient, error=str(exc))
            return self.retries.failed(task, now, reason=Reason.DNS_TEMPORARY_FAILURE)
        except Unroutable as exc:
            log.warning("unroutable", reason=exc.reason, error=str(exc))
            return self.retries.failed(task, now, reason=exc.reason)
        routed = dataclasses.replace(
            task,
            mx_hosts=plan.hosts,
            not_before=None,
            egress_pool=plan.egress_pool,
            smarthost=plan.smarthost,
            tls_required=plan.tls_required,
        )
        return [
            Output(
                topic=self.topics.deliver(task.priority),
                key=task.message_id.encode(),
                value=self.serde.encode(routed),
            )
        ]

    def _delay(self, task: DeliveryTask, due_ms: int, now: int) -> Output:
        tier = self.policy.tier_for_delay((due_ms - now) / 1000)
        if task.attempt > 0:
            why = "retry"
        elif task.send_at is not None and task.not_before == task.send_at:
            why = "scheduled"  # send_at ahead; a paced bulk task books its slot when due
        else:
            why = "paced"  # the tenant's bulk rate gave it a later slot (pacing.py)
        log.info("delayed", why=why, wait_s=round((due_ms - now) / 1000, 1), tier_s=tier)
        return delayed_output(
            task=task, tier_s=tier, due_ms=due_ms, topics=self.topics, serde=self.serde
        )


class AcceptedHandler:
    def __init__(
        self,
        *,
        router: Router,
        tenants: TenantDirectory,
        pacing: BulkPacing,
        templates: TemplateStore,
        render_limits: RenderLimits,
        max_message_bytes: int = 6 * 1024 * 1024,
    ) -> None:
        self._max_message_bytes = max_message_bytes
        self._router = router
        self._tenants = tenants
        self._pacing = pacing
        self._templates = templates
        self._render_limits = render_limits

    async def __call__(self, inbound: Inbound) -> Sequence[Output]:
        accepted = self._router.serde.decode(AcceptedRequest, inbound.value)
        request = accepted.request
        with structlog.contextvars.bound_contextvars(
            message_id=request.message_id, tenant_id=request.tenant_id
        ):
            try:
                content = await self._content(request)
            except RenderError as exc:
                log.info("render_rejected", reason=exc.reason, detail=str(exc)[:200])
                return self._reject_all(accepted, exc.reason)
            mime = build_mime(
                request,
                subject=content.subject,
                text=content.text,
                html=content.html,
                accepted_at=accepted.accepted_at,
                recipients=accepted.recipients,
                one_click_unsubscribe=accepted.priority is Priority.BULK
                and has_https_unsubscribe(request.headers),
            )
            if len(mime) > self._max_message_bytes:
                # Encoding grows a request (3x for quoted-printable non-ASCII text, 4/3 for
                # base64 attachments) and templates grow it more: past the limit no delivery
                # task could carry it, so every recipient gets its terminal event now.
                log.info("message_too_large", bytes=len(mime), limit=self._max_message_bytes)
                return self._reject_all(accepted, Reason.MESSAGE_TOO_LARGE)
            sender_domain = request.from_address.rsplit("@", 1)[1]
            tenant = await self._tenants.get(request.tenant_id)
            return_domain = (tenant.return_path_domain if tenant else None) or sender_domain
            outputs: list[Output] = []
            for recipient in accepted.recipients:
                task = DeliveryTask(
                    message_id=request.message_id,
                    tenant_id=request.tenant_id,
                    priority=accepted.priority,
                    recipient=recipient,
                    mail_from=f"{self._router.return_path_local}@{return_domain}",
                    mx_hosts=[],
                    mime=mime,
                    sender_domain=sender_domain,
                    attempt=0,
                    accepted_at=accepted.accepted_at,
                    expires_at=request.expires_at,
                    not_before=request.send_at,
                    send_at=request.send_at,
                    tags=request.tags,
                )
                task = await self._pacing.at_acceptance(task, tenant)
                outputs += await self._router.route(task)
            return outputs

    async def quarantined(self, inbound: Inbound, _error: Exception) -> Sequence[Output]:
        return self._reject_all(
            self._router.serde.decode(AcceptedRequest, inbound.value), Reason.INTERNAL_ERROR
        )

    def _reject_all(self, accepted: AcceptedRequest, reason: Reason) -> list[Output]:
        request, now = accepted.request, self._router.clock.now_ms()
        status = self._router.status
        return [
            output
            for recipient in accepted.recipients
            for output in status.publish(
                status.for_request(
                    request,
                    accepted.priority,
                    EventType.REJECTED,
                    now,
                    recipient=recipient,
                    reason=reason,
                )
            )
        ]

    async def _content(self, request: EmailRequested) -> Rendered:
        """The inline content, or the template rendered with the request's data. Rendering
        runs on a worker thread (it may take up to its time limit) so the lanes keep moving."""
        if request.template is None:
            return Rendered(
                subject=request.subject or "", text=request.text_body, html=request.html_body
            )
        template = await self._templates.resolve(tenant_id=request.tenant_id, ref=request.template)
        if template is None:
            raise RenderError(Reason.TEMPLATE_NOT_FOUND, f"no template {request.template.name}")
        return await asyncio.to_thread(
            render, template, request.template_data_json, limits=self._render_limits
        )


class DelayedHandler:
    """Consumes the delay topics; the runner holds each partition until its head is due."""

    def __init__(self, *, router: Router, pacing: BulkPacing) -> None:
        self._router = router
        self._pacing = pacing

    async def quarantined(self, inbound: Inbound, _error: Exception) -> Sequence[Output]:
        task = self._router.serde.decode(DeliveryTask, inbound.value)
        now = self._router.clock.now_ms()
        return self._router.status.for_task(
            task, EventType.REJECTED, now, reason=Reason.INTERNAL_ERROR
        )

    async def __call__(self, inbound: Inbound) -> Sequence[Output]:
        task = self._router.serde.decode(DeliveryTask, inbound.value)
        with structlog.contextvars.bound_contextvars(
            message_id=task.message_id, tenant_id=task.tenant_id, recipient=task.recipient
        ):
            due = true_due(inbound)
            if task.not_before is None or task.not_before < due:
                task = dataclasses.replace(task, not_before=due)
            if due <= self._router.clock.now_ms():
                task = await self._pacing.when_due(task)
            return await self._router.route(task)
