"""Composition root of the sender: a lane per priority over one shared SMTP pool."""

from __future__ import annotations

from services.common.deliveries import DeliveryLedger
from services.common.kafka.runner import Lane
from services.common.kernel import Kernel
from services.common.priority import PRIORITIES
from services.common.schedule import RetryPolicy
from services.sender.config import SenderSettings
from services.sender.egress import Egress
from services.sender.handler import SenderHandler
from services.sender.keyring import DkimKeyring
from services.sender.shaping import DEFAULT_CLASSES, Shaper
from services.sender.smtp import SmtpPool
from services.sender.tls import TlsPolicy


def build_lanes(kernel: Kernel) -> list[Lane]:
    settings = kernel.settings
    assert isinstance(settings, SenderSettings)
    topics = kernel.topics
    tls = TlsPolicy.parse(
        required_domains=settings.smtp.tls_required_domains,
        opportunistic=settings.smtp.opportunistic_tls,
        ca_file=settings.smtp.tls_ca_file,
    )
    egress = Egress(routing=settings.routing, tls=tls)
    handler = SenderHandler(
        serde=kernel.serde,
        topics=topics,
        status=kernel.status,
        pool=SmtpPool(
            settings=settings.smtp,
            tls=tls,
            shaper=Shaper(classes=[*settings.smtp.provider_classes_extra, *DEFAULT_CLASSES]),
            egress=egress,
        ),
        ledger=DeliveryLedger(session=kernel.cassandra),
        clock=kernel.clock,
        policy=RetryPolicy.from_settings(settings),
        egress=egress,
        keyring=DkimKeyring(session=kernel.cassandra, refresh_s=settings.smtp.dkim_refresh_s),
    )
    return [
        Lane(
            name=f"sender-{p.slug}",
            group_id=f"{topics.prefix}mailstream-sender-{p.slug}",
            topics=[topics.deliver(p)],
            handler=handler,
            dlq_topic=topics.internal_dlq,
            on_quarantine=handler.quarantined,
            max_in_flight=settings.kafka.lane_window(p),
            # Per lane, not one budget shared: critical never waits for bulk's bytes, and a
            # lane outranked by a busier one keeps 2 in flight anyway (Precedence).
            max_in_flight_bytes=settings.kafka.max_in_flight_bytes,
            priority=p,
        )
        for p in PRIORITIES
    ]
