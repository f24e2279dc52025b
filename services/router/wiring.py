"""Composition root of the router: a lane per priority plus one lane over the delay topics."""

from __future__ import annotations

from services.common.delay import make_due_at
from services.common.kafka.runner import Lane
from services.common.kernel import Kernel
from services.common.priority import PRIORITIES, Priority
from services.common.schedule import RetryPolicy
from services.common.tenants import TenantDirectory
from services.mail.render import RenderLimits
from services.mail.templates import TemplateStore
from services.router.config import RouterSettings
from services.router.handler import AcceptedHandler, DelayedHandler, Router
from services.router.mta_sts import MtaStsResolver
from services.router.mx import MxResolver
from services.router.pacing import BulkPacing, Pacer
from services.router.policy import RoutePlanner


def build_lanes(kernel: Kernel) -> list[Lane]:
    settings = kernel.settings
    assert isinstance(settings, RouterSettings)
    topics = kernel.topics
    tenants = TenantDirectory(session=kernel.cassandra)
    mx = MxResolver(settings=settings.dns)
    sts = (
        MtaStsResolver(settings=settings.mta_sts, txt=mx.txt, addresses=mx.addresses)
        if settings.mta_sts.enabled
        else None
    )
    router = Router(
        serde=kernel.serde,
        topics=topics,
        status=kernel.status,
        planner=RoutePlanner(mx=mx, tenants=tenants, routing=settings.routing, sts=sts),
        clock=kernel.clock,
        policy=RetryPolicy.from_settings(settings),
        return_path_local=settings.router.return_path_local,
    )
    pacing = BulkPacing(pacer=Pacer(), tenants=tenants, clock=kernel.clock)
    accepted = AcceptedHandler(
        router=router,
        pacing=pacing,
        tenants=tenants,
        templates=TemplateStore(session=kernel.cassandra),
        render_limits=RenderLimits(
            max_time_ms=settings.router.render_time_limit_ms,
            max_part_chars=settings.router.render_max_chars,
        ),
        max_message_bytes=settings.router.max_message_bytes,
    )
    lanes = [
        Lane(
            name=f"router-{p.slug}",
            group_id=f"{topics.prefix}mailstream-router-{p.slug}",
            topics=[topics.route(p)],
            handler=accepted,
            dlq_topic=topics.internal_dlq,
            on_quarantine=accepted.quarantined,
            max_in_flight=settings.kafka.lane_window(p),
            priority=p,
        )
        for p in PRIORITIES
    ]
    delayed = DelayedHandler(router=router, pacing=pacing)

    def delay_lane(name: str, group: str, delays: list[str], priority: Priority | None) -> Lane:
        return Lane(
            name=name,
            group_id=f"{topics.prefix}{group}",
            topics=delays,
            handler=delayed,
            dlq_topic=topics.internal_dlq,
            on_quarantine=delayed.quarantined,
            due_at=make_due_at(topics),
            max_in_flight=settings.kafka.lane_window(priority) if priority else None,
            priority=priority,
        )

    lanes += [
        delay_lane(
            f"router-delay-{p.slug}", f"mailstream-router-delay-{p.slug}", topics.delays(p), p
        )
        for p in PRIORITIES
    ]
    lanes.append(
        delay_lane("router-delay-legacy", "mailstream-router-delay", topics.legacy_delays, None)
    )
    return lanes
