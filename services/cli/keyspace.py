"""The operator commands' Cassandra session, on a keyspace `mailstream db migrate` made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.cli.settings import load
from services.common.cassandra.session import AsyncSession, connect
from services.common.errors import ConfigError, KeyspaceMissing


@contextmanager
def keyspace_session() -> Iterator[AsyncSession]:
    """The session the table owners take (services/common, services/mail), for commands that
    await them with asyncio.run. Each statement runs once: an operator's command reports a
    failure at once instead of retrying, and its one LWT (a template version's claim) is never
    retried into a claim it cannot tell from a rival's.

    ConfigError, one line, when the keyspace is missing: a service waits for the migrate
    job, an operator's command has nothing to wait for."""
    settings = load().cassandra
    try:
        cluster, session = connect(settings, keyspace=settings.keyspace)
    except KeyspaceMissing as exc:
        raise ConfigError(str(exc)) from None
    try:
        yield AsyncSession(session=session, attempts=1)
    finally:
        cluster.shutdown()
