"""Consistency levels: parsed from the settings, refused when not the driver's, and carried by
every statement the stores run (checked on a stand-in for the driver's session: no socket)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, get_args

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import TokenAwarePolicy
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement, named_tuple_factory
from pydantic import ValidationError

from services.common.avro.records import Bounce, BounceKind, EmailEvent, EventType, TemplateRef
from services.common.cassandra.session import (
    AsyncSession,
    cluster_options,
    default_profile,
    named_rows,
)
from services.common.config import CassandraSettings, CommonSettings
from services.common.deliveries import Delivery, DeliveryLedger
from services.common.priority import Priority
from services.common.suppressions import Suppress, SuppressionTable
from services.common.tenants import TenantDirectory, TenantSpec, TenantTable
from services.common.timeline import Timeline
from services.event_publisher.config import SuppressionSettings
from services.event_publisher.suppression import SuppressionStore
from services.ingest.idempotency import Claim, IdempotencyStore
from services.mail.templates import TemplateContent, TemplateStore, TemplateTable
from services.sender.keyring import DkimKeyring

LOCAL_QUORUM, LOCAL_SERIAL = ConsistencyLevel.LOCAL_QUORUM, ConsistencyLevel.LOCAL_SERIAL


class _Answer:
    """A ResponseFuture that has its rows already, in pages (one unless given more)."""

    def __init__(self, rows: list[Any], *more_pages: list[Any]) -> None:
        self._pages = [rows, *more_pages]
        self._ok: Any = None

    @property
    def has_more_pages(self) -> bool:
        return len(self._pages) > 1

    def add_callbacks(self, ok: Any, err: Any) -> None:
        self._ok = ok
        ok(self._pages[0])

    def start_fetching_next_page(self) -> None:
        self._pages.pop(0)
        self._ok(self._pages[0])


class _Prepared(PreparedStatement):
    """A prepared statement without column types to bind with: the values are kept as is."""

    def bind(self, values: Any) -> BoundStatement:
        bound = BoundStatement(self)
        bound.values = list(values)
        return bound


class DriverSession:
    """What AsyncSession uses of the driver's Session. Profiles are looked up and cloned by the
    driver's own methods; each query records the statement and the profile it was given, and
    is answered as the driver would, through that profile's row factory."""

    get_execution_profile = Session.get_execution_profile
    _maybe_get_execution_profile = Session._maybe_get_execution_profile
    execution_profile_clone_update = Session.execution_profile_clone_update

    def __init__(self, profile: ExecutionProfile) -> None:
        self.cluster = SimpleNamespace(
            profile_manager=SimpleNamespace(profiles={EXEC_PROFILE_DEFAULT: profile})
        )
        self.ran: list[tuple[PreparedStatement, ExecutionProfile]] = []
        self.prepared: dict[bytes, PreparedStatement] = {}

    def prepare(self, cql: str) -> PreparedStatement:
        statement = _Prepared([], cql.encode(), [], cql, "mailstream", 5, [], None)
        self.prepared[statement.query_id] = statement
        return statement

    def execute_async(self, statement: Any, params: Any, execution_profile: Any) -> _Answer:
        profile = self._maybe_get_execution_profile(execution_profile)
        if isinstance(statement, BatchStatement):
            # A batch goes out at its own levels (none set: the profile's), its statements
            # with it: each is recorded, for the tables it writes, at the batch's levels.
            assert statement.consistency_level is None
            assert statement.serial_consistency_level is None
            for _prepared, query_id, _values in statement._statements_and_parameters:
                self.ran.append((self.prepared[query_id], profile))
            return _Answer([])
        self.ran.append((statement, profile))
        if statement.query_string.endswith("IF NOT EXISTS"):
            return _Answer(profile.row_factory(["[applied]"], [(True,)]))
        return _Answer([])


def _effective(statement: PreparedStatement, profile: ExecutionProfile) -> tuple[int, int]:
    """The levels a query goes out with: the statement's own, else its profile's (as the
    driver's Session._create_response_future chooses them)."""
    cl = statement.consistency_level
    serial = statement.serial_consistency_level
    return (
        profile.consistency_level if cl is None else cl,
        profile.serial_consistency_level if serial is None else serial,
    )


def _table(cql: str) -> str:
    words = cql.split()
    return words[words.index("INTO" if words[0] == "INSERT" else "FROM") + 1]


def _bounce(kind: BounceKind, category: str) -> EmailEvent:
    return EmailEvent(
        event_id="e1",
        message_id="m1",
        tenant_id="acme",
        priority=Priority.TRANSACTIONAL,
        type=EventType.BOUNCED,
        occurred_at=1_700_000_000_000,
        attempt=1,
        recipient="bob@example.com",
        reason=category,
        bounce=Bounce(kind=kind, category=category),
    )


async def _run_every_store(session: AsyncSession) -> None:
    claim = await IdempotencyStore(session=session).claim(
        tenant_id="acme",
        message_id="m1",
        claimed_by="ingest-1",
        priority="transactional",
        recipients=["bob@example.com"],
        accepted_at=0,
    )
    assert claim is Claim.NEW  # the [applied] row came back named by named_rows
    await SuppressionTable(session=session).suppressed("acme", ["bob@example.com"], now_ms=0)
    ledger = DeliveryLedger(session=session)
    await ledger.delivered(tenant_id="acme", message_id="m1", recipient="bob@example.com")
    await ledger.of_message(tenant_id="acme", message_id="m1")
    await ledger.record(
        tenant_id="acme",
        message_id="m1",
        recipient="bob@example.com",
        delivery=Delivery(at_ms=0, attempt=1, mx_host="mx", code=250, reply="ok", tls_version=None),
    )
    settings = SuppressionSettings()
    store = SuppressionStore(session=session, settings=settings)
    await store.on_event(_bounce(BounceKind.SOFT, sorted(settings.soft_categories)[0]))
    await store.suppress(
        Suppress(
            tenant_id="acme", address="bob@example.com", reason="x", created_at=0, expires_at=None
        )
    )
    suppressions = SuppressionTable(session=session)
    await suppressions.get("acme", "bob@example.com")
    await suppressions.listed("acme", limit=10)
    await suppressions.remove("acme", "bob@example.com")
    await TenantDirectory(session=session).get("acme")
    tenants = TenantTable(session=session)
    await tenants.stored()
    await tenants.put(TenantSpec(id="acme", sender_domains=[]))
    await tenants.delete("acme")
    timeline = Timeline(session=session)
    await timeline.record(_bounce(BounceKind.HARD, "invalid_recipient"))
    await timeline.tenants_of("m1")
    await timeline.events("acme", "m1")
    await timeline.by_recipient("bob@example.com", None, 10)
    await DkimKeyring(session=session).signer()
    await TemplateStore(session=session).resolve(tenant_id="acme", ref=TemplateRef(name="n"))
    templates = TemplateTable(session=session)
    await templates.heads()
    await templates.current("acme", "n")
    assert await templates.claim(
        "acme", "n", version=1, default_locale="en", locales={"en"}, changed={"en"}
    )
    content = TemplateContent(locale="en", subject="s", text="t", html=None, required=())
    await templates.put("acme", "n", version=1, default_locale="en", c=content)


async def test_every_store_reads_and_writes_at_local_quorum_the_claim_at_local_serial() -> None:
    driver = DriverSession(default_profile(CassandraSettings()))
    await _run_every_store(AsyncSession(session=driver))  # type: ignore[arg-type]
    assert {_table(s.query_string) for s, _ in driver.ran} == {
        "messages",
        "suppressions",
        "deliveries",
        "soft_bounces",
        "tenants",
        "message_timeline",
        "message_tenants",
        "recipient_timeline",
        "template_versions",
        "templates",
    }
    for statement, profile in driver.ran:
        assert _effective(statement, profile) == (LOCAL_QUORUM, LOCAL_SERIAL), statement
    claims = [s for s, _ in driver.ran if s.query_string.endswith("IF NOT EXISTS")]
    assert [_table(c.query_string) for c in claims] == ["messages", "template_versions"]


async def test_every_page_of_a_result_is_read() -> None:
    """A listing longer than the driver's page (5,000 rows by default) comes back whole."""

    class Paged(DriverSession):
        def execute_async(self, statement: Any, params: Any, execution_profile: Any) -> _Answer:
            return _Answer([("a",)], [("b",), ("c",)], [("d",)])

    session = AsyncSession(session=Paged(default_profile(CassandraSettings())))  # type: ignore[arg-type]
    assert await session.execute("SELECT x FROM t") == [("a",), ("b",), ("c",), ("d",)]


async def test_the_levels_are_the_settings() -> None:
    settings = CassandraSettings(consistency="all", serial_consistency="serial")
    driver = DriverSession(default_profile(settings))
    await _run_every_store(AsyncSession(session=driver))  # type: ignore[arg-type]
    assert {_effective(s, p) for s, p in driver.ran} == {
        (ConsistencyLevel.ALL, ConsistencyLevel.SERIAL)
    }


async def test_one_profile_serves_every_query_and_only_the_row_factory_differs() -> None:
    default = default_profile(CassandraSettings(request_timeout_s=3.5))
    driver = DriverSession(default)
    await _run_every_store(AsyncSession(session=driver))  # type: ignore[arg-type]
    profiles = {id(p): p for _, p in driver.ran}
    assert len(profiles) == 1  # nothing built per query
    (ours,) = profiles.values()
    assert ours.row_factory is named_rows and default.row_factory is named_tuple_factory
    assert ours.load_balancing_policy is default.load_balancing_policy
    assert ours.request_timeout == 3.5


def test_cluster_options_carry_the_levels_in_the_default_profile() -> None:
    options = cluster_options(CassandraSettings(hosts="127.0.0.1", local_dc="dc1"))
    profile = options["execution_profiles"][EXEC_PROFILE_DEFAULT]
    assert (profile.consistency_level, profile.serial_consistency_level) == (
        LOCAL_QUORUM,
        LOCAL_SERIAL,
    )
    assert isinstance(profile.load_balancing_policy, TokenAwarePolicy)
    # The driver's own factory for raw users of the session: the CLI reads was_applied.
    assert profile.row_factory is named_tuple_factory
    # The driver refuses profiles beside a legacy argument (load_balancing_policy=...).
    # Building a Cluster connects nothing: that is Cluster.connect.
    cluster = Cluster(**options)
    try:
        assert cluster.profile_manager.default is profile
    finally:
        cluster.shutdown()


def test_levels_from_the_environment_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILSTREAM_CASSANDRA__CONSISTENCY", raising=False)
    monkeypatch.delenv("MAILSTREAM_CASSANDRA__SERIAL_CONSISTENCY", raising=False)
    defaults = CommonSettings().cassandra
    assert (defaults.consistency, defaults.serial_consistency) == ("LOCAL_QUORUM", "LOCAL_SERIAL")
    monkeypatch.setenv("MAILSTREAM_CASSANDRA__CONSISTENCY", " local_one")
    monkeypatch.setenv("MAILSTREAM_CASSANDRA__SERIAL_CONSISTENCY", "Serial")
    cassandra = CommonSettings().cassandra
    assert (cassandra.consistency, cassandra.serial_consistency) == ("LOCAL_ONE", "SERIAL")


@pytest.mark.parametrize(
    ("field", "name", "allowed"),
    [
        ("consistency", "LOCAL_QUOROM", "'LOCAL_QUORUM'"),  # a typo
        ("consistency", "ANY", "'LOCAL_QUORUM'"),  # writes only
        ("consistency", "EACH_QUORUM", "'LOCAL_QUORUM'"),  # refused for reads by older Cassandras
        ("consistency", "LOCAL_SERIAL", "'LOCAL_QUORUM'"),  # conditional statements only
        ("consistency", "", "'LOCAL_QUORUM'"),
        ("serial_consistency", "LOCAL_QUORUM", "'LOCAL_SERIAL'"),
        ("serial_consistency", "SERIALIZABLE", "'LOCAL_SERIAL'"),
    ],
)
def test_a_bad_level_name_is_refused_with_the_names_allowed(
    field: str, name: str, allowed: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        CassandraSettings(**{field: name})
    message = str(refused.value)
    assert field in message and allowed in message


def test_a_bad_level_in_the_environment_stops_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTREAM_CASSANDRA__CONSISTENCY", "QUORUMS")
    with pytest.raises(ValidationError, match=r"cassandra\.consistency"):
        CommonSettings()


def test_the_names_offered_are_the_drivers() -> None:
    fields = CassandraSettings.model_fields
    plain = get_args(fields["consistency"].annotation)
    serial = get_args(fields["serial_consistency"].annotation)
    names = ConsistencyLevel.name_to_value
    assert set(plain) | set(serial) <= set(names)
    assert not any(ConsistencyLevel.is_serial(names[n]) for n in plain)
    assert all(ConsistencyLevel.is_serial(names[n]) for n in serial)
