"""MX resolution with dnspython: preference order, implicit MX, null MX, TTL-honouring cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from services.common.avro.records import MxHost
from services.common.bounded import MISSING, BoundedMap
from services.common.single_flight import SingleFlight
from services.router.config import DnsSettings

# How long "this domain takes no mail" (NXDOMAIN, null MX, no address) is remembered.
NO_ROUTE_TTL_S = 60.0


class NoRoute(Exception):
    """The domain can never receive mail: a permanent failure with a reason code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DnsTemporaryFailure(Exception):
    """SERVFAIL, timeout or no answer from any server: try again later."""


@dataclass(frozen=True)
class MxRoute:
    hosts: list[MxHost]  # in preference order, one entry per address


class MxResolver:
    def __init__(
        self, *, settings: DnsSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if settings.nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [s.strip() for s in settings.nameservers.split(",")]
            self._resolver.port = settings.port
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = settings.timeout_s
        self._max_ttl = settings.max_cache_ttl_s
        # A route, or the reason code of a NoRoute: a cached exception would keep the frames
        # of its traceback alive, and grow it at every raise.
        self._cache: BoundedMap[str, MxRoute | str] = BoundedMap(
            max_entries=settings.max_cache_entries, clock=clock
        )
        # Lookups under way, by domain: a burst of mail to one domain (a backlog, a TTL of
        # 0) waits for one query.
        self._pending: SingleFlight[str, MxRoute] = SingleFlight()

    async def resolve(self, domain: str) -> MxRoute:
        domain = domain.lower().rstrip(".")
        hit = self._cache.get(domain)
        if isinstance(hit, str):
            raise NoRoute(hit)
        if hit is not MISSING:
            return hit
        return await self._pending.run(domain, lambda: self._resolve_and_cache(domain))

    async def _resolve_and_cache(self, domain: str) -> MxRoute:
        try:
            route, ttl = await self._lookup(domain)
        except NoRoute as exc:
            self._cache.put(domain, exc.reason, ttl_s=NO_ROUTE_TTL_S)
            raise
        self._cache.put(domain, route, ttl_s=min(ttl, self._max_ttl))
        return route

    async def addresses(self, host: str) -> list[str]:
        """A host's addresses (a smarthost, an MTA-STS policy host); [] when it has none."""
        return (await self._addresses(host.lower().rstrip(".")))[0]

    async def txt(self, name: str) -> tuple[list[str], int] | None:
        """The name's TXT strings (each record's chunks joined) and TTL; None when it has
        none. Not cached here: callers cache what they derive from it."""
        try:
            answer = await self._resolver.resolve(name, "TXT")
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsTemporaryFailure(f"TXT {name}: {type(exc).__name__}") from exc
        ttl = answer.rrset.ttl if answer.rrset is not None else 300
        texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return texts, ttl

    async def _lookup(self, domain: str) -> tuple[MxRoute, int]:
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise NoRoute("no_such_domain") from None
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(domain)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsTemporaryFailure(f"MX {domain}: {type(exc).__name__}") from exc
        records = sorted(answer, key=lambda r: r.preference)
        if len(records) == 1 and str(records[0].exchange) == ".":
            raise NoRoute("null_mx")  # RFC 7505: the domain accepts no mail
        names = [str(r.exchange).rstrip(".") for r in records if str(r.exchange) != "."]
        resolved = await asyncio.gather(*(self._addresses(name) for name in names))
        hosts = [
            MxHost(host=name, address=a)
            for name, (addrs, _) in zip(names, resolved, strict=True)
            for a in addrs
        ]
        if not hosts:
            # Likely a broken zone that may be fixed: retried until the message's max age.
            raise DnsTemporaryFailure(f"no MX host of {domain} has an address")
        ttl = min(
            [
                answer.rrset.ttl if answer.rrset is not None else 300,
                *(t for addrs, t in resolved if addrs),
            ]
        )
        return MxRoute(hosts), ttl

    async def _implicit_mx(self, domain: str) -> tuple[MxRoute, int]:
        """RFC 5321 5.1: no MX records, so the domain's own address record is the MX."""
        addresses, ttl = await self._addresses(domain)
        if not addresses:
            raise NoRoute("no_mx")
        return MxRoute([MxHost(host=domain, address=a) for a in addresses]), ttl

    async def _addresses(self, host: str) -> tuple[list[str], int]:
        """The host's IPv4 addresses, else its IPv6 ones; [] when it has none."""
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                raise DnsTemporaryFailure(f"{rdtype} {host}: {type(exc).__name__}") from exc
            ttl = answer.rrset.ttl if answer.rrset is not None else 300
            return [r.address for r in answer], ttl
        return [], 300
