"""The operator commands' Cassandra session, on a keyspace `mailstream db migrate` made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cassandra.cluster import Session

from services.cli.settings import load
from services.common.cassandra.session import connect
from services.common.errors import ConfigError


@contextmanager
def keyspace_session() -> Iterator[Session]:
    """ConfigError, one line, when the keyspace is missing: the driver says only that it
    could connect to no server "using keyspace", as if Cassandra were down."""
    settings = load().cassandra
    cluster, session = connect(settings)
    try:
        if settings.keyspace not in cluster.metadata.keyspaces:
            raise ConfigError(
                f"keyspace {settings.keyspace!r} does not exist: run 'mailstream db migrate'"
            )
        session.set_keyspace(settings.keyspace)
        yield session
    finally:
        cluster.shutdown()
