"""The tenants the services know, read from Cassandra and cached briefly."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.common.bounded import MISSING, BoundedMap
from services.common.cassandra.session import AsyncSession
from services.common.routing import TenantRouting


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    sender_domains: frozenset[str]
    # From the tenants file's `limits`, e.g. {"bulk_per_second": 50}.
    limits: dict[str, float] = field(default_factory=dict)
    routing: TenantRouting = field(default_factory=TenantRouting)
    # The envelope sender's domain (bounces come back there); None: the From domain.
    return_path_domain: str | None = None


# The longest id or name looked up by key: request fields reach these lookups, and Cassandra
# refuses an empty key or one over 64 KiB (a crash, and a crash loop on the same record).
MAX_KEY_OCTETS = 256


# Tenants cached at once, known or not: tenant ids arrive in requests, so without a bound
# random ones would grow the cache. Past it the least recently seen is read again when next
# needed. A tenant of two sender domains takes about 1.3 kB: some 13 MB at the bound.
MAX_CACHED_TENANTS = 10_000


class TenantDirectory:
    def __init__(
        self,
        *,
        session: AsyncSession,
        ttl_s: float = 10.0,
        max_entries: int = MAX_CACHED_TENANTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._ttl_s = ttl_s
        self._cache: BoundedMap[str, Tenant | None] = BoundedMap(
            max_entries=max_entries, clock=clock
        )

    async def get(self, tenant_id: str) -> Tenant | None:
        if not tenant_id or len(tenant_id.encode("utf-8", "surrogatepass")) > MAX_KEY_OCTETS:
            return None  # no such tenant can exist, and Cassandra refuses such a key
        hit = self._cache.get(tenant_id)
        if hit is not MISSING:
            return hit
        rows = await self._session.execute(
            "SELECT tenant_id, sender_domains, spec_json FROM tenants WHERE tenant_id = ?",
            (tenant_id,),
        )
        tenant = None
        if rows:
            spec = json.loads(rows[0].spec_json or "{}")
            tenant = Tenant(
                rows[0].tenant_id,
                frozenset(d.lower() for d in rows[0].sender_domains or ()),
                {k: float(v) for k, v in (spec.get("limits") or {}).items()},
                TenantRouting.model_validate(spec.get("routing") or {}),
                spec.get("return_path_domain"),
            )
        # Unknown tenants are cached for a second only, so a tenant just applied is seen soon.
        ttl_s = self._ttl_s if tenant is not None else min(self._ttl_s, 1.0)
        self._cache.put(tenant_id, tenant, ttl_s=ttl_s)
        return tenant
