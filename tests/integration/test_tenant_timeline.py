"""The timeline is a tenant's own: two tenants that use one message_id keep two timelines, and
migration 0005 moves rows of the old layout (keyed by message_id or address alone) into it."""

from __future__ import annotations

import datetime as dt
import uuid

from services.client import EmailClient, new_request
from services.common.avro.records import EmailEvent, EventType
from services.common.cassandra.migrations import load_migrations, migrate
from services.common.cassandra.session import connect
from services.common.config import CommonSettings
from tests.integration.harness import TopicCollector, events_for, mailstream


def _delivered(items: list[EmailEvent], mid: str, tenant: str) -> int:
    return sum(
        e.type is EventType.DELIVERED and e.tenant_id == tenant for e in events_for(items, mid)
    )


def _rows(out: str) -> list[str]:
    return [line for line in out.splitlines()[1:] if line.strip()]


def test_two_tenants_with_one_message_id_each_trace_only_their_own(
    client: EmailClient, events: TopicCollector, env: dict[str, str]
) -> None:
    mid = f"shared-{uuid.uuid4().hex[:8]}"
    both = f"both-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    acme_only = f"acme-only-{uuid.uuid4().hex[:6]}@inbox.mailstream.test"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to=[both, acme_only],
            message_id=mid,
            text_body="from acme",
        )
    )
    client.send(
        new_request(
            tenant_id="other",
            from_address="hello@other.mailstream.test",
            to=both,
            message_id=mid,
            text_body="from other",
        )
    )
    events.wait_for(
        "both tenants' deliveries",
        lambda xs: _delivered(xs, mid, "acme") == 2 and _delivered(xs, mid, "other") == 1,
    )

    acme = mailstream(env, "trace", mid, "--tenant", "acme", check=True).stdout
    other = mailstream(env, "trace", mid, "--tenant", "other", check=True).stdout
    assert all(" acme " in row and " other " not in row for row in _rows(acme)), acme
    assert all(" other " in row and " acme " not in row for row in _rows(other)), other
    assert [r.split()[2] for r in _rows(acme)].count("ACCEPTED") == 2
    assert [r.split()[2] for r in _rows(other)].count("ACCEPTED") == 1
    assert acme_only in acme and acme_only not in other
    assert len(_rows(other)) == 2  # ACCEPTED and DELIVERED of its one recipient

    # Without --tenant the id is ambiguous: the command names the tenants and shows nothing.
    ambiguous = mailstream(env, "trace", mid)
    assert ambiguous.returncode != 0 and not ambiguous.stdout
    assert "'acme'" in ambiguous.stderr and "'other'" in ambiguous.stderr
    assert "--tenant" in ambiguous.stderr

    # By recipient: every tenant's mail to the address, each row naming its tenant...
    everyone = mailstream(env, "trace", "--recipient", both, check=True).stdout
    assert {r.split()[3] for r in _rows(everyone)} == {"acme", "other"}
    # ...or one tenant's only.
    scoped = mailstream(env, "trace", "--recipient", both, "--tenant", "other", check=True)
    assert {r.split()[3] for r in _rows(scoped.stdout)} == {"other"}
    assert len(_rows(scoped.stdout)) == 2


def test_a_message_id_of_one_tenant_is_traced_without_tenant(
    client: EmailClient, events: TopicCollector, env: dict[str, str]
) -> None:
    mid = f"single-{uuid.uuid4().hex[:8]}"
    client.send(
        new_request(
            tenant_id="other",
            from_address="hello@other.mailstream.test",
            to="solo@inbox.mailstream.test",
            message_id=mid,
            text_body="x",
        )
    )
    out = mailstream(env, "trace", mid, "--wait-for", "delivered", check=True).stdout
    assert "DELIVERED" in out and all(" other " in row for row in _rows(out))
    missing = mailstream(env, "trace", mid, "--tenant", "acme")
    assert missing.returncode != 0
    assert "of tenant 'acme'" in missing.stderr and "'other'" in missing.stderr


def test_migration_5_moves_old_layout_rows_into_the_tenant_timeline(
    settings: CommonSettings, env: dict[str, str]
) -> None:
    keyspace = f"mig_{uuid.uuid4().hex[:10]}"
    # Schema changes wait on a machine shared with other suites: more than the 10 s default.
    timeout = 120.0
    cassandra = settings.cassandra.model_copy(
        update={"keyspace": keyspace, "request_timeout_s": timeout}
    )
    cluster, session = connect(cassandra)
    try:
        before = [m for m in load_migrations() if m.version < 5]
        migrate(session, cassandra, migrations=before)
        session.set_keyspace(keyspace)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        old_rows = [  # tenant, message, event, recipient, type, age
            ("acme", "m-1", "e1", "x@inbox.mailstream.test", "ACCEPTED", dt.timedelta(hours=2)),
            ("acme", "m-1", "e2", "x@inbox.mailstream.test", "DELIVERED", dt.timedelta(hours=1)),
            ("other", "m-1", "e3", "y@inbox.mailstream.test", "ACCEPTED", dt.timedelta(hours=1)),
            ("acme", "m-old", "e4", "x@inbox.mailstream.test", "ACCEPTED", dt.timedelta(days=45)),
        ]
        for tenant, message, event, recipient, kind, age in old_rows:
            session.execute(
                "INSERT INTO message_events (message_id, occurred_at, event_id, tenant_id,"
                " priority, recipient, type, attempt) VALUES (%s, %s, %s, %s, %s, %s, %s, 0)",
                (message, now - age, event, tenant, "TRANSACTIONAL", recipient, kind),
            )
            session.execute(
                "INSERT INTO recipient_messages (recipient, occurred_at, message_id, tenant_id,"
                " type) VALUES (%s, %s, %s, %s, %s)",
                (recipient, now - age, message, tenant, kind),
            )

        ours = {
            **env,
            "MAILSTREAM_CASSANDRA__KEYSPACE": keyspace,
            "MAILSTREAM_CASSANDRA__REQUEST_TIMEOUT_S": str(timeout),
        }
        done = mailstream(ours, "db", "migrate", check=True).stdout
        assert "0005_tenant_timeline (copied 3 events and 3 by-recipient rows;" in done
        assert "2 past the timeline TTL" in done  # m-old's event and its by-recipient row
        assert "retention set on" in done and "message_timeline" in done

        acme = mailstream(ours, "trace", "m-1", "--tenant", "acme", check=True).stdout
        assert [r.split()[2] for r in _rows(acme)] == ["ACCEPTED", "DELIVERED"]
        other = mailstream(ours, "trace", "m-1", "--tenant", "other", check=True).stdout
        assert [r.split()[2] for r in _rows(other)] == ["ACCEPTED"]
        assert "y@inbox.mailstream.test" in other and "x@inbox" not in other
        assert mailstream(ours, "trace", "m-old", "--tenant", "acme").returncode != 0
        by_address = mailstream(ours, "trace", "--recipient", "x@inbox.mailstream.test").stdout
        assert [r.split()[3] for r in _rows(by_address)] == ["acme", "acme"]

        # A copy expires 30 days after its event occurred, not 30 days after the migration.
        (row,) = session.execute(
            "SELECT ttl(type) AS ttl FROM message_timeline"
            " WHERE tenant_id = 'acme' AND message_id = 'm-1' AND occurred_at = %s"
            " AND event_id = 'e1'",
            (now - dt.timedelta(hours=2),),
        )
        assert 30 * 86400 - 2 * 3600 - 120 < row.ttl <= 30 * 86400 - 2 * 3600
        again = mailstream(ours, "db", "migrate", check=True).stdout
        assert "up to date" in again and "retention set" not in again
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
