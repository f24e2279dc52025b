"""MTA-STS (RFC 8461): record and policy parsing, the HTTPS response checks and the resolver's
trust-on-first-use cache, with fake DNS, fetcher and clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.router.config import MtaStsSettings
from services.router.mta_sts import (
    MtaStsResolver,
    PolicyError,
    StsPolicy,
    parse_http_response,
    parse_policy,
    parse_txt,
)
from services.router.mx import DnsTemporaryFailure


def _policy(*patterns: str, mode: str = "enforce") -> StsPolicy:
    return StsPolicy(mode=mode, mx_patterns=patterns, max_age_s=86400, policy_id="1")


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "MX1.Example.COM.", True),
        ("*.Example.com.", "mx1.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.example.com", "mx1.example.org", False),
        ("mx.example.com", "mx.example.com", True),
        ("mx.example.com", "MX.EXAMPLE.COM.", True),
        ("mx.example.com", "mx2.example.com", False),
        ("mx.example.com", "a.mx.example.com", False),
    ],
)
def test_mx_pattern_matching(pattern: str, host: str, expected: bool) -> None:
    assert _policy(pattern).matches(host) is expected


def test_a_host_matching_any_pattern_matches() -> None:
    policy = _policy("mx.example.com", "*.backup.example.net")
    assert policy.matches("b1.backup.example.net")
    assert not _policy().matches("mx.example.com")
    assert policy.enforced and not _policy("x", mode="testing").enforced


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20160831085700Z"], "20160831085700Z"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=STSv1 ;\tid=abc ; "], "abc"),
        (["v=STSv1; id=abc;"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=abc"], "abc"),
        (["v=STSv1; id=abc; ext_1=value!"], "abc"),
        (["v=STSv1; id=" + "a" * 32], "a" * 32),
        (["v=STSv1; id=" + "a" * 33], None),
        (["v=STSv1; id=ab-c"], None),
        (["v=STSv1; id="], None),
        (["v=STSv1"], None),
        (["v=STSv1;"], None),
        (["v=STSv1; ext=1"], None),
        (["v=STSv1; id=a; id=b"], None),
        (["v=STSv1; id=a;; ext=1"], None),
        (["v=STSv1; id=a; bad field"], None),
        (["v=STSv1; id=a", "v=STSv1; id=b"], None),
        (["v=STSv10; id=a"], None),
        (["V=stsv1; id=a"], None),
        (["id=a; v=STSv1"], None),
        (["v=spf1 -all"], None),
        ([], None),
    ],
)
def test_parse_txt(records: list[str], expected: str | None) -> None:
    assert parse_txt(records) == expected


POLICY = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.Example.NET.\nmax_age: 86400\n"


def test_parse_policy() -> None:
    policy = parse_policy(POLICY, policy_id="abc")
    assert policy == StsPolicy(
        mode="enforce",
        mx_patterns=("mail.example.com", "*.example.net"),
        max_age_s=86400,
        policy_id="abc",
    )
    assert policy.enforced


@pytest.mark.parametrize(
    "body",
    [
        POLICY.replace("\n", "\r\n"),
        POLICY.rstrip("\n"),
        "max_age: 86400\nmx:mail.example.com\nmx:   *.example.net\t\nmode: enforce\nversion: STSv1",
        POLICY + "future_key: some value\n",
        "\n" + POLICY + "\n\n",
    ],
    ids=["crlf", "no-final-newline", "any-order-and-spacing", "unknown-key", "blank-lines"],
)
def test_parse_policy_accepts_variants(body: str) -> None:
    assert parse_policy(body, policy_id="abc") == parse_policy(POLICY, policy_id="abc")


def test_parse_policy_mode_none_needs_no_mx_and_max_age_bounds() -> None:
    none = parse_policy("version: STSv1\nmode: none\nmax_age: 0\n", policy_id="x")
    assert none == StsPolicy(mode="none", mx_patterns=(), max_age_s=0, policy_id="x")
    testing = parse_policy(POLICY.replace("enforce", "testing"), policy_id="x")
    assert testing.mode == "testing" and not testing.enforced
    top = parse_policy(POLICY.replace("86400", "31557600"), policy_id="x")
    assert top.max_age_s == 31557600


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (POLICY.replace("version: STSv1\n", ""), "version"),
        (POLICY.replace("STSv1", "STSv2"), "version"),
        (POLICY.replace("version:", "Version:"), "version"),
        (POLICY.replace("mode: enforce\n", ""), "mode"),
        (POLICY.replace("enforce", "reject"), "mode"),
        (POLICY.replace("enforce", "Enforce"), "mode"),
        (POLICY.replace("max_age: 86400\n", ""), "max_age"),
        (POLICY.replace("86400", "31557601"), "max_age"),
        (POLICY.replace("86400", "-1"), "max_age"),
        (POLICY.replace("86400", "1.5"), "max_age"),
        (POLICY.replace("86400", "a day"), "max_age"),
        (POLICY.replace("86400", "12345678901"), "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 86400\n", "no mx"),
        ("version: STSv1\nmode: testing\nmax_age: 86400\n", "no mx"),
        (POLICY + "mode: testing\n", "more than once"),
        (POLICY + "this line has no colon\n", "key: value"),
        (POLICY.replace("mail.example.com", "mail example.com"), "mx"),
        (POLICY.replace("mail.example.com", "mail.*.com"), "mx"),
        (POLICY.replace("mail.example.com", ""), "mx"),
        ("", "version"),
    ],
)
def test_parse_policy_rejects(body: str, complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint):
        parse_policy(body, policy_id="abc")


def _http(
    status: str = "200 OK",
    *,
    content_type: str | None = "text/plain",
    body: bytes = POLICY.encode(),
    chunked: bool = False,
) -> bytes:
    head = [f"HTTP/1.1 {status}"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:])
        )
        payload += b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


@pytest.mark.parametrize(
    "response",
    [
        _http(),
        _http(content_type="text/plain; charset=utf-8"),
        _http(content_type="Text/Plain;Charset=UTF-8"),
        _http(chunked=True),
        # Neither length nor chunks: the body ends with the connection.
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + POLICY.encode(),
        b"HTTP/1.1 100 Continue\r\n\r\n" + _http(),
    ],
    ids=["plain", "charset", "case", "chunked", "close-delimited", "after-100"],
)
def test_parse_http_response_accepts(response: bytes) -> None:
    assert parse_http_response(response, max_bytes=65536) == POLICY


@pytest.mark.parametrize(
    ("response", "complaint"),
    [
        (_http("301 Moved Permanently"), "301"),
        (_http("302 Found"), "302"),
        (_http("404 Not Found"), "404"),
        (_http("500 Internal Server Error"), "500"),
        (_http("204 No Content", body=b""), "204"),
        (_http(content_type="text/html"), "media type"),
        (_http(content_type="text/plainx"), "media type"),
        (_http(content_type=None), "media type"),
        (_http(body=b"x" * 101), "over 100 bytes"),
        (_http(body=b"x" * 101, chunked=True), "over 100 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 101, "over 100 bytes"),
        (_http(body="é".encode("latin-1")), "UTF-8"),
        (_http()[:-5], "closed"),
        (_http()[:20], "closed"),
        (b"", "closed"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "bad HTTP response"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "closed too early"),
    ],
)
def test_parse_http_response_refuses(response: bytes, complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint):
        parse_http_response(response, max_bytes=100)


def test_parse_http_response_body_of_exactly_the_limit_is_fine() -> None:
    assert parse_http_response(_http(body=b"x" * 100), max_bytes=100) == "x" * 100


# The resolver, with fakes.

DOMAIN = "example.org"
TXT_NAME = f"_mta-sts.{DOMAIN}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dns:
    def __init__(self) -> None:
        # name -> TXT answer, None (no record) or an exception to raise
        self.txt_answers: dict[str, tuple[list[str], int] | Exception | None] = {}
        self.txt_queries: list[str] = []
        self.address_queries: list[str] = []

    def publish(self, policy_id: str, *, ttl: int = 300, name: str = TXT_NAME) -> None:
        self.txt_answers[name] = ([f"v=STSv1; id={policy_id}"], ttl)

    async def txt(self, name: str) -> tuple[list[str], int] | None:
        self.txt_queries.append(name)
        answer = self.txt_answers.get(name)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def addresses(self, host: str) -> list[str]:
        self.address_queries.append(host)
        return ["192.0.2.10"]


class Fetcher:
    def __init__(self, body: str = POLICY) -> None:
        self.body = body
        self.error: Exception | None = None
        self.calls: list[tuple[str, list[str]]] = []
        self.gate: asyncio.Event | None = None  # when set up, fetches wait for it
        self.entered = asyncio.Event()

    async def __call__(self, domain: str, addresses: list[str]) -> str:
        self.calls.append((domain, addresses))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.body


def _resolver(**settings: Any) -> tuple[MtaStsResolver, Dns, Fetcher, Clock]:
    dns, fetch, clock = Dns(), Fetcher(), Clock()
    resolver = MtaStsResolver(
        settings=MtaStsSettings(**settings),
        txt=dns.txt,
        addresses=dns.addresses,
        fetch=fetch,
        clock=clock,
    )
    return resolver, dns, fetch, clock


async def test_first_fetch_is_cached_and_reused() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one")
    policy = await resolver.policy("Example.ORG.")
    assert policy == parse_policy(POLICY, policy_id="one")
    assert fetch.calls == [(DOMAIN, ["192.0.2.10"])]
    assert dns.address_queries == [f"mta-sts.{DOMAIN}"]
    clock.now += 299
    assert await resolver.policy(DOMAIN) is policy
    assert len(fetch.calls) == 1
    assert dns.txt_queries == [TXT_NAME]  # the TXT record is cached for its TTL too


async def test_same_id_after_the_txt_ttl_does_not_refetch() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one", ttl=60)
    policy = await resolver.policy(DOMAIN)
    clock.now += 61
    assert await resolver.policy(DOMAIN) is policy
    assert len(dns.txt_queries) == 2 and len(fetch.calls) == 1


async def test_txt_ttl_is_capped() -> None:
    resolver, dns, _, clock = _resolver(max_txt_ttl_s=100)
    dns.publish("one", ttl=86400)
    await resolver.policy(DOMAIN)
    clock.now += 101
    await resolver.policy(DOMAIN)
    assert len(dns.txt_queries) == 2


async def test_new_id_refetches() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one", ttl=60)
    await resolver.policy(DOMAIN)
    dns.publish("two", ttl=60)
    fetch.body = POLICY.replace("enforce", "testing")
    clock.now += 61
    policy = await resolver.policy(DOMAIN)
    assert policy is not None and policy.policy_id == "two" and policy.mode == "testing"
    assert len(fetch.calls) == 2


async def test_expired_policy_is_refetched() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one", ttl=86400)
    first = await resolver.policy(DOMAIN)
    clock.now += 3600
    assert await resolver.policy(DOMAIN) is first
    clock.now += 86400  # past both the TXT cap and the policy's max_age
    second = await resolver.policy(DOMAIN)
    assert second == first and second is not first
    assert len(fetch.calls) == 2


async def test_fetch_failure_keeps_the_cached_policy() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one", ttl=60)
    first = await resolver.policy(DOMAIN)
    dns.publish("two", ttl=60)
    clock.now += 61
    for error in (PolicyError("404"), ConnectionRefusedError(), TimeoutError()):
        fetch.error = error
        clock.now += 61
        with capture_logs() as logs:
            assert await resolver.policy(DOMAIN) is first
        assert [e["event"] for e in logs] == ["mta_sts_fetch_failed"]


async def test_invalid_new_policy_keeps_the_cached_policy() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one", ttl=60)
    first = await resolver.policy(DOMAIN)
    dns.publish("two", ttl=60)
    fetch.body = "version: STSv1\nmode: enforce\n"
    clock.now += 61
    assert await resolver.policy(DOMAIN) is first


async def test_fetch_failure_without_a_cached_policy_is_no_policy() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one")
    fetch.error = PolicyError("policy host answered 404 Not Found")
    assert await resolver.policy(DOMAIN) is None
    fetch.error = None
    # Within the failure backoff the host is not asked again: no lane waits on it twice.
    assert await resolver.policy(DOMAIN) is None
    assert len(fetch.calls) == 1
    # The TXT record is still cached; after the backoff the fetch is retried.
    clock.now += 61
    assert await resolver.policy(DOMAIN) is not None
    assert len(fetch.calls) == 2 and len(dns.txt_queries) == 1


async def test_expired_policy_whose_refetch_fails_is_dropped() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one")
    await resolver.policy(DOMAIN)
    fetch.error = OSError("unreachable")
    clock.now += 86401
    assert await resolver.policy(DOMAIN) is None


async def test_address_lookup_failure_is_a_fetch_failure() -> None:
    resolver, dns, fetch, _ = _resolver()
    dns.publish("one")

    async def failing(host: str) -> list[str]:
        raise DnsTemporaryFailure(f"A {host}: Timeout")

    resolver._addresses = failing
    assert await resolver.policy(DOMAIN) is None
    assert fetch.calls == []


async def test_no_txt_record_is_no_policy_and_remembered() -> None:
    resolver, dns, fetch, clock = _resolver(negative_ttl_s=300)
    assert await resolver.policy(DOMAIN) is None
    clock.now += 299
    assert await resolver.policy(DOMAIN) is None
    assert dns.txt_queries == [TXT_NAME] and fetch.calls == []
    clock.now += 2
    dns.publish("one")
    assert await resolver.policy(DOMAIN) is not None


async def test_vanished_txt_record_keeps_the_cached_policy_until_it_expires() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("one", ttl=60)
    first = await resolver.policy(DOMAIN)
    del dns.txt_answers[TXT_NAME]
    clock.now += 61
    assert await resolver.policy(DOMAIN) is first
    dns.txt_answers[TXT_NAME] = (["v=STSv1; no id here"], 60)  # malformed: the same
    clock.now += 301
    assert await resolver.policy(DOMAIN) is first
    clock.now += 86400
    assert await resolver.policy(DOMAIN) is None
    assert len(fetch.calls) == 1


async def test_malformed_txt_record_is_no_policy() -> None:
    resolver, dns, fetch, _ = _resolver()
    dns.txt_answers[TXT_NAME] = (["v=STSv1; id=a", "v=STSv1; id=b"], 60)
    with capture_logs() as logs:
        assert await resolver.policy(DOMAIN) is None
    assert [e["event"] for e in logs] == ["mta_sts_txt_invalid"]
    assert fetch.calls == []


async def test_dns_temporary_failure_gives_the_cached_policy_or_none() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.txt_answers[TXT_NAME] = DnsTemporaryFailure("TXT: Timeout")
    assert await resolver.policy(DOMAIN) is None
    assert await resolver.policy(DOMAIN) is None
    assert len(dns.txt_queries) == 2  # a failure is not cached
    dns.publish("one", ttl=60)
    first = await resolver.policy(DOMAIN)
    assert first is not None
    dns.txt_answers[TXT_NAME] = DnsTemporaryFailure("TXT: Timeout")
    clock.now += 61
    assert await resolver.policy(DOMAIN) is first
    assert len(fetch.calls) == 1


async def test_mode_none_is_returned_and_cached() -> None:
    resolver, dns, fetch, clock = _resolver()
    dns.publish("off", ttl=60)
    fetch.body = "version: STSv1\nmode: none\nmax_age: 86400\n"
    policy = await resolver.policy(DOMAIN)
    assert policy is not None and policy.mode == "none" and not policy.enforced
    clock.now += 61
    assert await resolver.policy(DOMAIN) is policy
    assert len(fetch.calls) == 1


async def test_concurrent_calls_share_one_fetch() -> None:
    resolver, dns, fetch, _ = _resolver()
    dns.publish("one")
    fetch.gate = asyncio.Event()
    calls = asyncio.gather(*(resolver.policy(DOMAIN) for _ in range(5)))
    await fetch.entered.wait()
    late = asyncio.ensure_future(resolver.policy(DOMAIN))  # while the fetch is in flight
    fetch.gate.set()
    policies = [*await calls, await late]
    assert len(fetch.calls) == 1 and len(dns.txt_queries) == 1
    assert all(p is policies[0] for p in policies) and policies[0] is not None


async def test_one_cancelled_caller_does_not_cancel_the_shared_fetch() -> None:
    resolver, dns, fetch, _ = _resolver()
    dns.publish("one")
    fetch.gate = asyncio.Event()
    impatient = asyncio.ensure_future(resolver.policy(DOMAIN))
    patient = asyncio.ensure_future(resolver.policy(DOMAIN))
    await fetch.entered.wait()
    impatient.cancel()
    fetch.gate.set()
    assert await patient is not None
    assert impatient.cancelled() and len(fetch.calls) == 1


async def test_domains_are_independent() -> None:
    resolver, dns, _, _ = _resolver()
    dns.publish("one")
    assert await resolver.policy(DOMAIN) is not None
    assert await resolver.policy("other.example") is None
    assert dns.txt_queries == [TXT_NAME, "_mta-sts.other.example"]


async def test_disabled_asks_nothing() -> None:
    resolver, dns, fetch, _ = _resolver(enabled=False)
    dns.publish("one")
    assert await resolver.policy(DOMAIN) is None
    assert dns.txt_queries == [] and fetch.calls == []


# The default fetcher, over fake streams: no socket is opened.


class FakeWriter:
    def __init__(self) -> None:
        self.sent = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeNetwork:
    """Stands in for asyncio.open_connection: each address answers with bytes or raises."""

    def __init__(self, answers: dict[str, bytes | Exception]) -> None:
        self.answers = answers
        self.connects: list[tuple[str, int, str]] = []
        self.writers: list[FakeWriter] = []

    async def __call__(
        self, host: str, port: int, *, ssl: Any, server_hostname: str
    ) -> tuple[asyncio.StreamReader, FakeWriter]:
        self.connects.append((host, port, server_hostname))
        answer = self.answers[host]
        if isinstance(answer, Exception):
            raise answer
        reader = asyncio.StreamReader()
        reader.feed_data(answer)
        reader.feed_eof()
        writer = FakeWriter()
        self.writers.append(writer)
        return reader, writer


def _https_resolver(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, bytes | Exception]
) -> tuple[MtaStsResolver, FakeNetwork]:
    network = FakeNetwork(answers)
    monkeypatch.setattr(asyncio, "open_connection", network)
    dns = Dns()
    resolver = MtaStsResolver(
        settings=MtaStsSettings(https_port=8443, max_policy_bytes=1000),
        txt=dns.txt,
        addresses=dns.addresses,
    )
    return resolver, network


async def test_https_fetch_tries_each_address_until_one_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver, network = _https_resolver(
        monkeypatch,
        {"192.0.2.1": ConnectionRefusedError("refused"), "192.0.2.2": _http(chunked=True)},
    )
    body = await resolver._https_fetch(DOMAIN, ["192.0.2.1", "192.0.2.2"])
    assert body == POLICY
    host = f"mta-sts.{DOMAIN}"
    assert network.connects == [("192.0.2.1", 8443, host), ("192.0.2.2", 8443, host)]
    request = network.writers[0].sent
    assert request.startswith(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n")
    assert f"host: {host}\r\n".encode() in request.lower()
    assert b"connection: close\r\n" in request.lower()
    assert b"user-agent: mailstream\r\n" in request.lower()
    assert network.writers[0].closed


async def test_https_fetch_failures_are_policy_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver, _ = _https_resolver(
        monkeypatch,
        {"192.0.2.1": _http("301 Moved Permanently"), "192.0.2.2": _http(body=b"x" * 1001)},
    )
    with pytest.raises(PolicyError, match=r"301.*over 1000 bytes"):
        await resolver._https_fetch(DOMAIN, ["192.0.2.1", "192.0.2.2"])
    with pytest.raises(PolicyError, match="has no address"):
        await resolver._https_fetch(DOMAIN, [])


def test_ssl_context_verifies_and_needs_tls12() -> None:
    resolver, *_ = _resolver()
    context = resolver._ssl_context
    assert context is resolver._ssl_context  # built once
    assert context.check_hostname and context.minimum_version.name == "TLSv1_2"
