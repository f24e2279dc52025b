"""A resolver that answers nothing makes the lane wait (ResolverUnavailable); a domain that
fails or is slow while the resolver answers a probe is that domain's DnsTemporaryFailure."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.resolver
import pytest

from services.common.errors import TransientError
from services.router.config import DnsSettings, MtaStsSettings
from services.router.mta_sts import MtaStsResolver
from services.router.mx import DnsTemporaryFailure, MxResolver, ResolverUnavailable

SETTINGS = DnsSettings(nameservers="192.0.2.53", port=5353, probe_cache_s=2.0)


class Answer(list[Any]):
    """What the resolver reads of a dnspython Answer: its records and their TTL."""

    def __init__(self, records: list[Any], ttl: int = 300) -> None:
        super().__init__(records)
        self.rrset = type("RRset", (), {"ttl": ttl})()


class Mx:
    def __init__(self, preference: int, exchange: str) -> None:
        self.preference = preference
        self.exchange = exchange


class A:
    def __init__(self, address: str) -> None:
        self.address = address


def timeout() -> dns.exception.Timeout:
    return dns.resolver.LifetimeTimeout(
        timeout=1.0, errors=[("192.0.2.53", False, 5353, dns.exception.Timeout(), None)]
    )


def responded(name: str, rdtype: str, rcode: int) -> dns.resolver.NoNameservers:
    """What dnspython raises when the only server answered with rcode (SERVFAIL, REFUSED)."""
    query = dns.message.make_query(name, rdtype)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    text = dns.rcode.to_text(rcode)
    return dns.resolver.NoNameservers(
        request=query, errors=[("192.0.2.53", False, 5353, text, response)]
    )


class FakeDns:
    """Zones in memory. down: nothing answers (every query times out, the probe too); slow:
    names whose queries time out while the resolver answers others."""

    def __init__(self) -> None:
        self.down = False
        self.slow: set[str] = set()
        self.servfail: set[str] = set()
        self.probes = 0
        self.queries: list[tuple[str, str]] = []

    async def resolve(self, qname: str, rdtype: str, *, lifetime: float | None = None) -> Any:
        await asyncio.sleep(0)
        if (qname, rdtype) == (".", "NS"):
            self.probes += 1
            assert lifetime == SETTINGS.probe_timeout_s
            if self.down:
                raise timeout()
            raise responded(".", "NS", dns.rcode.REFUSED)  # no recursion here: still an answer
        self.queries.append((qname, rdtype))
        if self.down or qname in self.slow:
            raise timeout()
        if qname in self.servfail:
            raise responded(qname, rdtype, dns.rcode.SERVFAIL)
        if rdtype == "MX":
            return Answer([Mx(10, f"mx.{qname}.")])
        if rdtype == "A" and qname.startswith("mx."):
            return Answer([A("192.0.2.25")])
        raise dns.resolver.NoAnswer()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def resolver(dns_: FakeDns, clock: Clock | None = None) -> MxResolver:
    return MxResolver(settings=SETTINGS, client=dns_, clock=clock or Clock())


async def test_a_resolver_that_answers_nothing_is_an_outage_to_wait_out() -> None:
    fake = FakeDns()
    fake.down = True
    with pytest.raises(ResolverUnavailable) as caught:
        await resolver(fake).resolve("example.org")
    assert isinstance(caught.value, TransientError)
    assert not isinstance(caught.value, DnsTemporaryFailure)
    assert str(caught.value) == (
        "the DNS resolver 192.0.2.53 port 5353 does not answer: MX example.org: LifetimeTimeout,"
        " nor a probe of '.' NS within 2.0s"
    )
    assert fake.probes == 1


async def test_a_slow_domain_is_deferred_not_waited_for() -> None:
    """The poison pill the probe prevents: one domain's timeouts must not hold the lane."""
    fake = FakeDns()
    fake.slow.add("slow.example")
    mx = resolver(fake)
    for _ in range(3):
        with pytest.raises(DnsTemporaryFailure, match=r"^MX slow\.example: LifetimeTimeout$"):
            await mx.resolve("slow.example")
    assert (await mx.resolve("fine.example")).hosts[0].address == "192.0.2.25"


async def test_a_servfail_is_the_domains_and_needs_no_probe() -> None:
    fake = FakeDns()
    fake.servfail.add("broken.example")
    with pytest.raises(DnsTemporaryFailure, match="NoNameservers"):
        await resolver(fake).resolve("broken.example")
    assert fake.probes == 0


async def test_a_burst_of_timeouts_probes_once_until_the_probe_is_stale() -> None:
    fake, clock = FakeDns(), Clock()
    fake.down = True
    mx = resolver(fake, clock)
    results = await asyncio.gather(
        *(mx.resolve(f"d{i}.example") for i in range(200)), return_exceptions=True
    )
    assert all(isinstance(r, ResolverUnavailable) for r in results)
    assert fake.probes == 1
    clock.now += 1.0
    with pytest.raises(ResolverUnavailable):
        await mx.resolve("later.example")
    assert fake.probes == 1  # "no answer" still stands
    clock.now += 1.5
    with pytest.raises(ResolverUnavailable):
        await mx.resolve("later.example")
    assert fake.probes == 2


async def test_an_answered_probe_vouches_only_for_queries_sent_before_it() -> None:
    fake, clock = FakeDns(), Clock()
    fake.slow.add("slow.example")
    mx = resolver(fake, clock)
    with pytest.raises(DnsTemporaryFailure):
        await mx.resolve("slow.example")
    assert fake.probes == 1
    clock.now += 0.5  # the resolver goes down a moment after answering the probe
    fake.down = True
    with pytest.raises(ResolverUnavailable):
        await mx.resolve("other.example")
    assert fake.probes == 2


async def test_mail_routes_again_once_the_resolver_is_back() -> None:
    fake, clock = FakeDns(), Clock()
    fake.down = True
    mx = resolver(fake, clock)
    with pytest.raises(ResolverUnavailable):
        await mx.resolve("example.org")
    fake.down = False
    clock.now += 0.1  # within the probe's cache: the query itself now succeeds
    route = await mx.resolve("example.org")
    assert [h.host for h in route.hosts] == ["mx.example.org"]
    fake.slow.add("slow.example")
    clock.now += 5.0
    with pytest.raises(DnsTemporaryFailure):
        await mx.resolve("slow.example")


def sts(mx: MxResolver) -> MtaStsResolver:
    async def no_fetch(domain: str, addresses: list[str]) -> str:
        raise AssertionError(f"no policy fetch expected for {domain}")

    return MtaStsResolver(
        settings=MtaStsSettings(), txt=mx.txt, addresses=mx.addresses, fetch=no_fetch
    )


async def test_mta_sts_waits_for_the_resolver_but_not_for_a_slow_domain() -> None:
    fake, clock = FakeDns(), Clock()
    fake.slow.add("_mta-sts.slow.example")
    policies = sts(resolver(fake, clock))
    assert await policies.policy("slow.example") is None  # no policy had: mail is not held
    clock.now += 1.0
    fake.down = True
    with pytest.raises(ResolverUnavailable):
        await policies.policy("example.org")


def test_the_probe_settings_are_validated() -> None:
    assert DnsSettings(probe_type="soa").probe_type == "SOA"
    with pytest.raises(ValueError, match="not a DNS record type"):
        DnsSettings(probe_type="nope")
    with pytest.raises(ValueError, match="not a DNS name"):
        DnsSettings(probe_name="a..b")
