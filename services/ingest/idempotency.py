"""(tenant, message_id) claimed once with a Cassandra lightweight transaction."""

from __future__ import annotations

import enum

from services.common.cassandra.session import AsyncSession


class Claim(enum.Enum):
    NEW = "new"  # first time this (tenant, message_id) is seen
    REPLAY = "replay"  # the same Kafka record again, after a crash: finish its work
    DUPLICATE = "duplicate"  # another request with a used message_id: drop it


class IdempotencyStore:
    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def claim(
        self,
        *,
        tenant_id: str,
        message_id: str,
        claimed_by: str,
        priority: str,
        recipients: list[str],
        accepted_at: int,
    ) -> Claim:
        # Paxos at LOCAL_SERIAL, commit at LOCAL_QUORUM: the session's levels (default_profile).
        rows = await self._session.execute(
            "INSERT INTO messages (tenant_id, message_id, claimed_by, priority, recipients,"
            " accepted_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            (tenant_id, message_id, claimed_by, priority, recipients, accepted_at),
        )
        row = rows[0]
        if row.applied:
            return Claim.NEW
        return Claim.REPLAY if row.claimed_by == claimed_by else Claim.DUPLICATE
