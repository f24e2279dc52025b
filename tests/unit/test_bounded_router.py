"""The router's caches keyed by traffic (MX routes, MTA-STS, pacing, templates, tenants) stay at
their bound however many distinct keys arrive, with fake DNS, fetcher and Cassandra."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.avro.records import MxHost, TemplateRef
from services.common.tenants import TenantDirectory
from services.mail.templates import TemplateStore
from services.router.config import DnsSettings, MtaStsSettings
from services.router.mta_sts import MtaStsResolver, PolicyError
from services.router.mx import MxResolver, MxRoute, NoRoute
from services.router.pacing import Pacer

N = 1_000  # distinct keys fed: ten times each bound below
MAX = 100


class FakeMx(MxResolver):
    """Every domain resolves (an hour's TTL) but those starting with "no", which take no mail."""

    def __init__(self) -> None:
        super().__init__(
            settings=DnsSettings(nameservers="127.0.0.1", port=9, max_cache_entries=MAX)
        )
        self.lookups: list[str] = []

    async def _lookup(self, domain: str) -> tuple[MxRoute, int]:
        self.lookups.append(domain)
        if domain.startswith("no"):
            raise NoRoute("null_mx")
        return MxRoute([MxHost(host=f"mx.{domain}", address="192.0.2.1")]), 3600


async def test_mx_cache_keeps_the_most_recently_mailed_domains() -> None:
    resolver = FakeMx()
    for i in range(N):
        await resolver.resolve(f"d{i}.example")
    assert len(resolver._cache) == MAX
    await resolver.resolve(f"d{N - 1}.example")  # still cached
    assert len(resolver.lookups) == N
    await resolver.resolve("d0.example")  # forgotten, so looked up again
    assert len(resolver.lookups) == N + 1


async def test_a_cached_no_route_raises_a_fresh_exception_each_time() -> None:
    resolver = FakeMx()
    raised = []
    for _ in range(3):
        with pytest.raises(NoRoute) as err:
            await resolver.resolve("nomail.example")
        raised.append(err.value)
    assert resolver.lookups == ["nomail.example"]
    assert {e.reason for e in raised} == {"null_mx"}
    assert len({id(e) for e in raised}) == 3  # no traceback grows on one cached instance


def _sts(*, fetch_fails: bool) -> MtaStsResolver:
    async def txt(name: str) -> tuple[list[str], int]:
        return ["v=STSv1; id=1"], 3600

    async def addresses(host: str) -> list[str]:
        return ["192.0.2.1"]

    async def fetch(domain: str, addresses: list[str]) -> str:
        if fetch_fails:
            raise PolicyError("no policy")
        return f"version: STSv1\nmode: enforce\nmx: mx.{domain}\nmax_age: 86400\n"

    return MtaStsResolver(
        settings=MtaStsSettings(max_cache_entries=MAX), txt=txt, addresses=addresses, fetch=fetch
    )


@pytest.mark.parametrize("fetch_fails", [False, True])
async def test_mta_sts_caches_keep_their_bound(fetch_fails: bool) -> None:
    resolver = _sts(fetch_fails=fetch_fails)
    for i in range(N):
        policy = await resolver.policy(f"d{i}.example")
        assert (policy is None) is fetch_fails
    assert len(resolver._ids) == MAX
    assert len(resolver._policies) == (0 if fetch_fails else MAX)
    assert len(resolver._failed) == (MAX if fetch_fails else 0)


def test_pacer_remembers_at_most_its_bound_of_tenants() -> None:
    pacer = Pacer(max_tenants=MAX)
    for i in range(N):
        pacer.slot(f"t{i}", rate_per_s=1, now_ms=0)
    assert len(pacer._next) == MAX
    assert pacer.slot(f"t{N - 1}", rate_per_s=1, now_ms=0) == 1000  # still paced
    # Forgotten: as if its slot were in the past, the message may go now.
    assert pacer.slot("t0", rate_per_s=1, now_ms=0) == 0


class NoRows:
    def __init__(self) -> None:
        self.queries = 0

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.queries += 1
        return []


async def test_template_cache_keeps_its_bound() -> None:
    session = NoRows()
    store = TemplateStore(session=session, max_entries=MAX)  # type: ignore[arg-type]
    for i in range(N):
        assert await store.resolve(tenant_id="acme", ref=TemplateRef(name=f"n{i}")) is None
    assert len(store._cache) == MAX
    assert session.queries == N


async def test_tenant_directory_keeps_its_bound() -> None:
    session = NoRows()
    now = [0.0]
    tenants = TenantDirectory(
        session=session,  # type: ignore[arg-type]
        max_entries=MAX,
        clock=lambda: now[0],
    )
    for i in range(N):
        assert await tenants.get(f"t{i}") is None
    assert len(tenants._cache) == MAX
    await tenants.get(f"t{N - 1}")
    assert session.queries == N  # an unknown tenant is cached ...
    now[0] += 1.0
    await tenants.get(f"t{N - 1}")
    assert session.queries == N + 1  # ... for one second


async def test_concurrent_lookups_leave_no_flight_behind() -> None:
    resolver = FakeMx()
    await asyncio.gather(*(resolver.resolve(f"d{i % 50}.example") for i in range(N)))
    assert len(resolver.lookups) == 50
    assert not any(resolver._pending.under_way(f"d{i}.example") for i in range(50))
