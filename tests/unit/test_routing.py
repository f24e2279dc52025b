"""Routing policy: the tenants file's routes, the sender's connect path and the planner."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.common.avro.records import DeliveryTask, MxHost
from services.common.priority import Priority
from services.common.routing import EgressPool, RouteSpec, RoutingSettings, TenantRouting
from services.common.tenants import Tenant
from services.router.mta_sts import StsPolicy
from services.router.mx import MxRoute
from services.router.policy import RoutePlanner, Unroutable
from services.sender.egress import Egress, UnknownRoute
from services.sender.tls import TlsPolicy

ROUTING = RoutingSettings(
    egress_pools={"warm": EgressPool(source_addresses=("192.0.2.1", "192.0.2.2"))},
    smarthosts={"relay": {"host": "relay.example", "port": 2587, "username": "u", "password": "p"}},
)


def _task(**fields: Any) -> DeliveryTask:
    base: dict[str, Any] = {
        "message_id": "m1",
        "tenant_id": "acme",
        "priority": Priority.TRANSACTIONAL,
        "recipient": "bob@example.org",
        "mail_from": "bounces@acme.example",
        "mx_hosts": [],
        "mime": b"",
        "sender_domain": "acme.example",
        "attempt": 0,
        "accepted_at": 0,
    }
    return DeliveryTask(**{**base, **fields})


def test_a_route_names_exactly_one_target() -> None:
    with pytest.raises(ValidationError):
        RouteSpec()
    with pytest.raises(ValidationError):
        RouteSpec(egress_pool="a", smarthost="b")
    with pytest.raises(ValidationError):
        TenantRouting.model_validate({"urgent": {"egress_pool": "a"}})


def test_priority_route_beats_the_default() -> None:
    routing = TenantRouting(
        default=RouteSpec(egress_pool="shared"), bulk=RouteSpec(smarthost="relay")
    )
    assert routing.for_priority(Priority.BULK) == RouteSpec(smarthost="relay")
    assert routing.for_priority(Priority.CRITICAL) == RouteSpec(egress_pool="shared")
    assert TenantRouting().for_priority(Priority.CRITICAL) is None


def test_egress_pool_addresses_are_validated_ip_addresses() -> None:
    assert EgressPool(source_addresses=(" 2001:db8::1 ",)).source_addresses == ("2001:db8::1",)
    with pytest.raises(ValidationError):
        EgressPool(source_addresses=("mx.example",))
    with pytest.raises(ValidationError):
        EgressPool(source_addresses=())


TLS = TlsPolicy.parse(required_domains="strict.example", opportunistic=True, ca_file=None)


def test_connect_path_of_a_pool_takes_turns_over_its_addresses() -> None:
    egress = Egress(routing=ROUTING, tls=TLS)
    path = egress.path_for(_task(egress_pool="warm"))
    assert path.route == "pool:warm" and path.tls == "opportunistic"
    assert [egress.source_address(path) for _ in range(3)] == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.1",
    ]
    assert egress.source_address(egress.path_for(_task())) is None


def test_connect_path_tls_follows_mta_sts_and_required_domains() -> None:
    egress = Egress(routing=ROUTING, tls=TLS)
    assert egress.path_for(_task(tls_required=True)).tls == "required"
    assert egress.path_for(_task(recipient="a@strict.example")).tls == "required"
    plain = TlsPolicy.parse(required_domains="", opportunistic=False, ca_file=None)
    assert Egress(routing=ROUTING, tls=plain).path_for(_task()).tls == "none"


def test_connect_path_of_a_smarthost_carries_its_login() -> None:
    path = Egress(routing=ROUTING, tls=TLS).path_for(_task(smarthost="relay"))
    assert (path.route, path.tls, path.username, path.password) == (
        "smarthost:relay",
        "required",
        "u",
        "p",
    )


def test_unknown_route_in_the_sender_is_an_error() -> None:
    egress = Egress(routing=ROUTING, tls=TLS)
    with pytest.raises(UnknownRoute):
        egress.path_for(_task(egress_pool="cold"))
    with pytest.raises(UnknownRoute):
        egress.path_for(_task(smarthost="elsewhere"))


class FakeMx:
    def __init__(self, hosts: list[MxHost]) -> None:
        self.hosts = hosts
        self.resolved: list[str] = []

    async def resolve(self, domain: str) -> MxRoute:
        self.resolved.append(domain)
        return MxRoute(self.hosts)

    async def addresses(self, host: str) -> list[str]:
        return ["198.51.100.7"] if host == "relay.example" else []


class FakeTenants:
    def __init__(self, tenant: Tenant | None) -> None:
        self.tenant = tenant

    async def get(self, tenant_id: str) -> Tenant | None:
        return self.tenant


class FakeSts:
    def __init__(self, policy: StsPolicy | None) -> None:
        self._policy = policy

    async def policy(self, domain: str) -> StsPolicy | None:
        return self._policy


MX = [MxHost(host="mx1.example.org", address="203.0.113.1"), MxHost("mx.other.net", "203.0.113.2")]


def _planner(
    routing: TenantRouting | None = None,
    policy: StsPolicy | None = None,
    default_pool: str | None = None,
) -> tuple[RoutePlanner, FakeMx]:
    mx = FakeMx(MX)
    tenant = Tenant("acme", frozenset({"acme.example"}), routing=routing or TenantRouting())
    settings = ROUTING.model_copy(update={"default_egress_pool": default_pool})
    planner = RoutePlanner(
        mx=mx,  # type: ignore[arg-type]
        tenants=FakeTenants(tenant),  # type: ignore[arg-type]
        routing=settings,
        sts=FakeSts(policy),  # type: ignore[arg-type]
    )
    return planner, mx


async def test_plan_without_routing_uses_the_mx_hosts_and_the_default_pool() -> None:
    planner, mx = _planner(default_pool="warm")
    plan = await planner.plan(_task())
    assert plan.hosts == MX and plan.egress_pool == "warm" and not plan.tls_required
    assert mx.resolved == ["example.org"]


async def test_plan_to_a_smarthost_skips_the_recipient_mx() -> None:
    planner, mx = _planner(TenantRouting(default=RouteSpec(smarthost="relay")))
    plan = await planner.plan(_task())
    assert plan.smarthost == "relay" and plan.egress_pool is None
    assert plan.hosts == [MxHost("relay.example", "198.51.100.7", 2587)]
    assert mx.resolved == []


async def test_plan_with_an_undefined_route_is_unroutable() -> None:
    for spec in (RouteSpec(smarthost="nope"), RouteSpec(egress_pool="nope")):
        planner, _ = _planner(TenantRouting(default=spec))
        with pytest.raises(Unroutable) as raised:
            await planner.plan(_task())
        assert raised.value.reason == "route_unavailable"


def _policy(mode: str, *patterns: str) -> StsPolicy:
    return StsPolicy(mode=mode, mx_patterns=patterns, max_age_s=86400, policy_id="1")


async def test_enforced_mta_sts_keeps_matching_hosts_and_requires_tls() -> None:
    planner, _ = _planner(policy=_policy("enforce", "*.example.org"))
    plan = await planner.plan(_task())
    assert plan.hosts == MX[:1] and plan.tls_required


async def test_enforced_mta_sts_without_a_matching_host_is_unroutable() -> None:
    planner, _ = _planner(policy=_policy("enforce", "*.elsewhere.test"))
    with pytest.raises(Unroutable) as raised:
        await planner.plan(_task())
    assert raised.value.reason == "mta_sts_mx_mismatch"


async def test_testing_and_none_mta_sts_change_nothing() -> None:
    for policy in (_policy("testing", "*.elsewhere.test"), _policy("none")):
        planner, _ = _planner(policy=policy)
        plan = await planner.plan(_task())
        assert plan.hosts == MX and not plan.tls_required
