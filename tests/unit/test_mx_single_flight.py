"""Concurrent MX lookups of one domain share one query; its failure reaches every waiter."""

from __future__ import annotations

import asyncio

import pytest

from services.common.avro.records import MxHost
from services.router.config import DnsSettings
from services.router.mx import DnsTemporaryFailure, MxResolver, MxRoute


class Counting(MxResolver):
    def __init__(self, *, fail: bool = False) -> None:
        super().__init__(settings=DnsSettings(nameservers="127.0.0.1", port=9))
        self.lookups = 0
        self.fail = fail

    async def _lookup(self, domain: str) -> tuple[MxRoute, int]:
        self.lookups += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise DnsTemporaryFailure(f"MX {domain}: Timeout")
        return MxRoute([MxHost(host=f"mx.{domain}", address="192.0.2.1")]), 0


async def test_a_burst_for_one_domain_sends_one_query() -> None:
    resolver = Counting()
    routes = await asyncio.gather(*(resolver.resolve("Example.org") for _ in range(500)))
    assert resolver.lookups == 1
    assert {r.hosts[0].host for r in routes} == {"mx.example.org"}
    await resolver.resolve("example.org")  # TTL 0: nothing cached, a new query
    assert resolver.lookups == 2


async def test_a_failed_lookup_fails_every_waiter_and_is_retried_next_time() -> None:
    resolver = Counting(fail=True)
    results = await asyncio.gather(
        *(resolver.resolve("example.org") for _ in range(50)), return_exceptions=True
    )
    assert resolver.lookups == 1
    assert all(isinstance(r, DnsTemporaryFailure) for r in results)
    with pytest.raises(DnsTemporaryFailure):
        await resolver.resolve("example.org")
    assert resolver.lookups == 2
