"""MTA-STS (RFC 8461): a recipient domain's policy, from DNS and HTTPS, trusted on first use."""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11

from services.common.bounded import MISSING, BoundedMap
from services.common.logging import get_logger
from services.common.single_flight import SingleFlight
from services.router.config import MtaStsSettings
from services.router.mx import DnsTemporaryFailure

log = get_logger(__name__)

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_MAX_AGE_S = 31_557_600  # RFC 8461 §3.2: about one year
MODES = ("enforce", "testing", "none")

# RFC 8461 §3.1 ABNF of the TXT record's fields after "v=STSv1".
_TXT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_TXT_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_TXT_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
# An MX pattern: a host name, or "*." and a domain (RFC 8461 §3.2 `["*."] Domain`).
_MX_PATTERN = re.compile(r"(\*\.)?([a-z0-9_-]+\.)*[a-z0-9_-]+")


class PolicyError(Exception):
    """No valid policy could be had: fetch, HTTP or policy syntax failure."""


@dataclass(frozen=True)
class StsPolicy:
    mode: str  # "enforce" | "testing" | "none"
    mx_patterns: tuple[str, ...]
    max_age_s: int
    policy_id: str  # the TXT id it was fetched under

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"

    def matches(self, mx_host: str) -> bool:
        """RFC 8461 §4.1: a wildcard stands for exactly one leftmost label."""
        host = mx_host.lower().rstrip(".")
        for raw in self.mx_patterns:
            pattern = raw.lower().rstrip(".")
            if pattern.startswith("*."):
                label, dot, parent = host.partition(".")
                if label and dot and parent == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_txt(records: list[str]) -> str | None:
    """The policy id of the `_mta-sts` TXT strings (RFC 8461 §3.1); None when there is not
    exactly one STSv1 record or it is malformed: the domain then has no policy to fetch."""
    sts = [r for r in records if r.split(";", 1)[0].rstrip(" \t") == "v=STSv1"]
    if len(sts) != 1:
        return None
    fields = [f.strip(" \t") for f in sts[0].split(";")[1:]]
    if fields and fields[-1] == "":
        fields.pop()  # one trailing delimiter is allowed
    ids: list[str] = []
    for f in fields:
        name, eq, value = f.partition("=")
        if name == "id" and eq and _TXT_ID.fullmatch(value):
            ids.append(value)
        elif name == "id" or not (
            eq and _TXT_EXT_NAME.fullmatch(name) and _TXT_EXT_VALUE.fullmatch(value)
        ):
            return None
    return ids[0] if len(ids) == 1 else None


def parse_policy(body: str, *, policy_id: str) -> StsPolicy:
    """An HTTPS policy body (RFC 8461 §3.2); raises PolicyError when it is not valid."""
    single: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(body.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip(" \t"):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise PolicyError(f"policy line {number} is not 'key: value'")
        value = value.strip(" \t")
        if key == "mx":
            pattern = value.lower().rstrip(".")
            if not _MX_PATTERN.fullmatch(pattern):
                raise PolicyError(f"policy mx {value!r} is not a host name or *.domain")
            mx.append(pattern)
        elif key in ("version", "mode", "max_age"):
            if key in single:
                # Two values of one field: taking either could be what an attacker wants.
                raise PolicyError(f"policy field {key!r} appears more than once")
            single[key] = value
        # Unknown keys are extensions, ignored (RFC 8461 §3.2).
    if single.get("version") != "STSv1":
        raise PolicyError(f"policy version {single.get('version')!r} is not 'STSv1'")
    mode = single.get("mode")
    if mode not in MODES:
        raise PolicyError(f"policy mode {mode!r} is not one of {', '.join(MODES)}")
    max_age = single.get("max_age")
    if max_age is None or not _MAX_AGE.fullmatch(max_age) or int(max_age) > MAX_MAX_AGE_S:
        raise PolicyError(f"policy max_age {max_age!r} is not an integer 0..{MAX_MAX_AGE_S}")
    if not mx and mode != "none":
        raise PolicyError(f"policy in mode {mode!r} has no mx")
    return StsPolicy(mode=mode, mx_patterns=tuple(mx), max_age_s=int(max_age), policy_id=policy_id)


class _ResponseReader:
    """One policy request and its response, parsed with h11 as the bytes arrive, so that a
    body over the limit is refused without reading the rest. h11 bounds the headers (16 KiB)."""

    def __init__(self, *, host: str, max_bytes: int) -> None:
        self._conn = h11.Connection(h11.CLIENT)
        self._max_bytes = max_bytes
        self._body = bytearray()
        self.done = False
        request = h11.Request(
            method="GET",
            target=POLICY_PATH,
            headers=[("Host", host), ("User-Agent", "mailstream"), ("Connection", "close")],
        )
        self.request = (self._conn.send(request) or b"") + (
            self._conn.send(h11.EndOfMessage()) or b""
        )

    def feed(self, data: bytes) -> None:
        """Takes the next bytes of the response; b"" is the end of the stream."""
        self._conn.receive_data(data)
        while not self.done:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                if not data:  # what was read before parsed: the close came too early
                    raise PolicyError(f"the connection closed too early: {exc}") from exc
                raise PolicyError(f"bad HTTP response: {exc}") from exc
            if event is h11.NEED_DATA:
                if not data:
                    raise PolicyError("the connection closed too early")
                return
            if isinstance(event, h11.Response):
                _check_head(event, max_bytes=self._max_bytes)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._max_bytes:
                    raise PolicyError(f"policy is over {self._max_bytes} bytes")
            elif isinstance(event, h11.EndOfMessage):
                self.done = True
            elif isinstance(event, h11.ConnectionClosed):
                raise PolicyError("the connection closed too early")
            # InformationalResponse (1xx) precedes the real response: skipped.

    def text(self) -> str:
        if not self.done:
            raise PolicyError("the response is incomplete")
        try:
            return self._body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy is not UTF-8: {exc}") from exc


def _check_head(response: h11.Response, *, max_bytes: int) -> None:
    if response.status_code != 200:
        # Redirects included: RFC 8461 §3.3 forbids following them.
        reason = response.reason.decode("latin-1")
        raise PolicyError(f"policy host answered {response.status_code} {reason}".rstrip())
    types = [v.decode("latin-1") for k, v in response.headers if k == b"content-type"]
    media = types[0].split(";", 1)[0].strip().lower() if len(types) == 1 else None
    if media != "text/plain":
        raise PolicyError(f"policy media type is {', '.join(types) or 'missing'}, not text/plain")
    lengths = [v for k, v in response.headers if k == b"content-length"]
    if lengths and int(lengths[0]) > max_bytes:  # h11 has checked it is a number
        raise PolicyError(f"policy is over {max_bytes} bytes ({int(lengths[0])})")


def parse_http_response(data: bytes, *, max_bytes: int) -> str:
    """The policy text of a complete HTTP response to a GET of the policy; raises PolicyError
    unless it is a 200 of text/plain, at most max_bytes, in UTF-8."""
    # The request only sets h11 up to expect the response to a GET; it is not sent.
    reader = _ResponseReader(host="mta-sts.invalid", max_bytes=max_bytes)
    reader.feed(data)
    if not reader.done:
        reader.feed(b"")
    return reader.text()


class MtaStsResolver:
    """Policies by domain (RFC 8461 §5.1). A policy that cannot be had never holds mail back,
    but one fetched before stays in force until its max_age runs out, whatever DNS says now:
    a missing TXT record may be an attacker's doing. Our own resolver answering nothing is
    no failure of the domain's: the lane waits for it (ResolverUnavailable) as for MX."""

    def __init__(
        self,
        *,
        settings: MtaStsSettings,
        txt: Callable[[str], Awaitable[tuple[list[str], int] | None]],
        addresses: Callable[[str], Awaitable[list[str]]],
        fetch: Callable[[str, list[str]], Awaitable[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._txt = txt
        self._addresses = addresses
        self._fetch = fetch if fetch is not None else self._https_fetch
        # Each of max_cache_entries domains at most, the least recently mailed forgotten
        # first. A policy forgotten before its max_age is fetched again when next needed:
        # trust on first use starts over for that domain.
        size = settings.max_cache_entries
        # domain -> the TXT record's id (None: no usable record), for the record's TTL
        self._ids: BoundedMap[str, str | None] = BoundedMap(max_entries=size, clock=clock)
        # domain -> policy, for its max_age
        self._policies: BoundedMap[str, StsPolicy] = BoundedMap(max_entries=size, clock=clock)
        self._in_flight: SingleFlight[str, StsPolicy | None] = SingleFlight()
        # domain -> TXT id of a fetch that failed: not retried for failure_backoff_s.
        self._failed: BoundedMap[str, str] = BoundedMap(max_entries=size, clock=clock)

    async def policy(self, domain: str) -> StsPolicy | None:
        """The domain's policy in force; None when it has none (or none could be had)."""
        if not self._settings.enabled:
            return None
        domain = domain.lower().rstrip(".")
        if not self._in_flight.under_way(domain):
            policy_id = self._ids.get(domain)
            if policy_id is not MISSING:
                cached = self._cached(domain)
                if policy_id is None or (cached is not None and cached.policy_id == policy_id):
                    return cached  # the cached TXT record settles it, as for most calls
        return await self._in_flight.run(domain, lambda: self._resolve(domain))

    def _cached(self, domain: str) -> StsPolicy | None:
        policy = self._policies.get(domain)
        return None if policy is MISSING else policy

    async def _resolve(self, domain: str) -> StsPolicy | None:
        policy_id = await self._policy_id(domain)
        cached = self._cached(domain)
        if policy_id is None or (cached is not None and cached.policy_id == policy_id):
            return cached
        if self._failed.get(domain) == policy_id:
            return cached  # it failed a moment ago: no lane waits on the same slow host again
        try:
            addresses = await self._addresses(f"mta-sts.{domain}")
            policy = parse_policy(await self._fetch(domain, addresses), policy_id=policy_id)
        except (PolicyError, OSError, TimeoutError, DnsTemporaryFailure) as exc:
            # ResolverUnavailable passes, as in _policy_id: not the policy host's failure.
            log.warning(
                "mta_sts_fetch_failed",
                domain=domain,
                policy_id=policy_id,
                error=str(exc) or type(exc).__name__,
                cached=cached.policy_id if cached is not None else None,
            )
            self._failed.put(domain, policy_id, ttl_s=self._settings.failure_backoff_s)
            return cached
        self._policies.put(domain, policy, ttl_s=policy.max_age_s)
        return policy

    async def _policy_id(self, domain: str) -> str | None:
        """The id of the domain's `_mta-sts` TXT record, cached by its TTL; None when there is
        no usable record or DNS fails now."""

        hit = self._ids.get(domain)
        if hit is not MISSING:
            return hit
        try:
            answer = await self._txt(f"_mta-sts.{domain}")
        except DnsTemporaryFailure as exc:
            # Not cached: the next message asks DNS again. ResolverUnavailable (our resolver
            # answers nothing) is not caught: the lane waits, as for an MX lookup. Going on
            # without the policy would send, over opportunistic TLS, mail the domain asked to
            # get only over verified TLS, for no fault of the domain's.
            log.warning("mta_sts_dns_temporary_failure", domain=domain, error=str(exc))
            return None
        if answer is None:
            self._ids.put(domain, None, ttl_s=self._settings.negative_ttl_s)
            return None
        records, ttl = answer
        policy_id = parse_txt(records)
        if policy_id is None:
            log.warning("mta_sts_txt_invalid", domain=domain, records=records)
        self._ids.put(domain, policy_id, ttl_s=min(ttl, self._settings.max_txt_ttl_s))
        return policy_id

    @functools.cached_property
    def _ssl_context(self) -> ssl.SSLContext:
        """Built once: loading the CA store for every fetch costs tens of ms."""
        context = ssl.create_default_context(cafile=self._settings.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    async def _https_fetch(self, domain: str, addresses: list[str]) -> str:
        """The policy body from https://mta-sts.<domain>/.well-known/mta-sts.txt, trying the
        host's addresses in turn; raises PolicyError when none gives a valid response."""
        host = f"mta-sts.{domain}"
        if not addresses:
            raise PolicyError(f"{host} has no address")
        errors: list[str] = []
        try:
            async with asyncio.timeout(self._settings.fetch_timeout_s):
                for address in addresses:
                    try:
                        return await self._fetch_from(host, address)
                    except (PolicyError, OSError) as exc:  # ssl.SSLError is an OSError
                        errors.append(f"{address}: {str(exc) or type(exc).__name__}")
        except TimeoutError:
            errors.append(f"timed out after {self._settings.fetch_timeout_s}s")
        raise PolicyError(f"no policy from {host}: {'; '.join(errors)}")

    async def _fetch_from(self, host: str, address: str) -> str:
        reader, writer = await asyncio.open_connection(
            address, self._settings.https_port, ssl=self._ssl_context, server_hostname=host
        )
        try:
            response = _ResponseReader(host=host, max_bytes=self._settings.max_policy_bytes)
            writer.write(response.request)
            await writer.drain()
            while not response.done:
                response.feed(await reader.read(65536))
            return response.text()
        finally:
            # Not waiting for the TLS close: the policy is in hand, or will never be.
            writer.close()
