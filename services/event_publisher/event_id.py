"""Deterministic event ids: a republished event carries the same id."""

from __future__ import annotations

import uuid

from services.common.avro.records import StatusUpdate

_NAMESPACE = uuid.UUID("6f1c3f0e-6a43-4b8e-9a0e-6d61696c7374")


def event_id(update: StatusUpdate) -> str:
    parts = (
        update.tenant_id,
        update.message_id,
        update.recipient or "",
        update.type.value,
        str(update.attempt),
    )
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
