"""MX resolution with dnspython: preference, implicit and null MX, TTL cache, resolver outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from services.common.avro.records import MxHost
from services.common.bounded import MISSING, BoundedMap
from services.common.errors import TransientError
from services.common.logging import get_logger
from services.common.reasons import Reason
from services.common.single_flight import SingleFlight
from services.router.config import DnsSettings

log = get_logger(__name__)

# How long "this domain takes no mail" (NXDOMAIN, null MX, no address) is remembered.
NO_ROUTE_TTL_S = 60.0


class NoRoute(Exception):
    """The domain can never receive mail: a permanent failure with a reason code."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason = reason


class DnsTemporaryFailure(Exception):
    """A failure for now of one name (SERVFAIL, or a timeout while the resolver answers
    others): a fact about that domain, so its mail is deferred and tried again later."""


class ResolverUnavailable(TransientError):
    """The resolver itself answers nothing, not even a probe: an outage of our own, so the
    lane waits for it rather than deferring (and in the end expiring) every message."""


class DnsClient(Protocol):
    """What MxResolver asks of dnspython's async resolver (a fake one in unit tests)."""

    async def resolve(
        self, qname: str, rdtype: str, *, lifetime: float | None = None
    ) -> dns.resolver.Answer: ...


@dataclass(frozen=True)
class MxRoute:
    hosts: list[MxHost]  # in preference order, one entry per address


def _system_resolver(settings: DnsSettings) -> dns.asyncresolver.Resolver:
    if settings.nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [s.strip() for s in settings.nameservers.split(",")]
        resolver.port = settings.port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = settings.timeout_s
    return resolver


def _some_server_answered(exc: dns.exception.DNSException) -> bool:
    """Whether a nameserver sent any response (SERVFAIL, REFUSED...) before the query failed:
    dnspython lists (server, tcp, port, error, response) per try in the `errors` it gives."""
    errors = exc.kwargs.get("errors") or []
    return any(isinstance(e, tuple) and len(e) >= 5 and e[4] is not None for e in errors)


class MxResolver:
    def __init__(
        self,
        *,
        settings: DnsSettings,
        clock: Callable[[], float] = time.monotonic,
        client: DnsClient | None = None,
    ) -> None:
        self._resolver: DnsClient = client if client is not None else _system_resolver(settings)
        self._settings = settings
        self._clock = clock
        self._max_ttl = settings.max_cache_ttl_s
        # A route, or the reason code of a NoRoute: a cached exception would keep the frames
        # of its traceback alive, and grow it at every raise.
        self._cache: BoundedMap[str, MxRoute | Reason] = BoundedMap(
            max_entries=settings.max_cache_entries, clock=clock
        )
        # Lookups under way, by domain: a burst of mail to one domain (a backlog, a TTL of
        # 0) waits for one query.
        self._pending: SingleFlight[str, MxRoute] = SingleFlight()
        # The last probe of the resolver: (when it was sent, whether it was answered).
        self._probed: tuple[float, bool] | None = None
        self._probing: SingleFlight[None, bool] = SingleFlight()

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
            answer = await self._query(name, "TXT")
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return None
        ttl = answer.rrset.ttl if answer.rrset is not None else 300
        texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return texts, ttl

    async def _lookup(self, domain: str) -> tuple[MxRoute, int]:
        try:
            answer = await self._query(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise NoRoute(Reason.NO_SUCH_DOMAIN) from None
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(domain)
        records = sorted(answer, key=lambda r: r.preference)
        if len(records) == 1 and str(records[0].exchange) == ".":
            raise NoRoute(Reason.NULL_MX)  # RFC 7505: the domain accepts no mail
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
            raise NoRoute(Reason.NO_MX)
        return MxRoute([MxHost(host=domain, address=a) for a in addresses]), ttl

    async def _addresses(self, host: str) -> tuple[list[str], int]:
        """The host's IPv4 addresses, else its IPv6 ones; [] when it has none."""
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            ttl = answer.rrset.ttl if answer.rrset is not None else 300
            return [r.address for r in answer], ttl
        return [], 300

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """The answer, or NXDOMAIN / NoAnswer for the caller to read. A query that fails for
        now is the name's failure (DnsTemporaryFailure) when some server responded to it, or
        the resolver answers a probe; else the resolver is down (ResolverUnavailable). So a
        slow domain only ever defers its own mail and never holds a lane: only a probe that
        goes unanswered does."""
        began = self._clock()
        try:
            return await self._resolver.resolve(name, rdtype)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            what = f"{rdtype} {name}: {type(exc).__name__}"
            if _some_server_answered(exc) or await self._resolver_answers(since=began):
                raise DnsTemporaryFailure(what) from exc
            cfg = self._settings
            where = f"{cfg.nameservers} port {cfg.port}" if cfg.nameservers else "of resolv.conf"
            raise ResolverUnavailable(
                f"the DNS resolver {where} does not answer: {what}, nor a probe of"
                f" {cfg.probe_name!r} {cfg.probe_type} within {cfg.probe_timeout_s}s"
            ) from exc

    async def _resolver_answers(self, *, since: float) -> bool:
        """Whether the resolver answers the probe query, with any rcode (REFUSED or SERVFAIL
        for the probe name is an answer too). A burst of timeouts waits for one probe. Its
        "no" stands for probe_cache_s; its "yes" only for queries sent before it: a resolver
        that answered before a query began may have gone down since."""
        probed = self._probed
        if probed is not None and self._clock() - probed[0] < self._settings.probe_cache_s:
            sent_at, answers = probed
            if not answers or sent_at >= since:
                return answers
        return await self._probing.run(None, self._probe)

    async def _probe(self) -> bool:
        cfg = self._settings
        sent_at = self._clock()
        try:
            await self._resolver.resolve(
                cfg.probe_name, cfg.probe_type, lifetime=cfg.probe_timeout_s
            )
            answers = True
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            answers = True
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            answers = _some_server_answered(exc)
        was_down = self._probed is not None and not self._probed[1]
        self._probed = (sent_at, answers)
        if answers and was_down:
            log.info("dns_resolver_answers_again", probe=cfg.probe_name)
        elif not answers and not was_down:
            log.warning("dns_resolver_unavailable", probe=cfg.probe_name, type=cfg.probe_type)
        return answers
