"""The operator commands' Cassandra session, on a keyspace `mailstream db migrate` made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cassandra.cluster import Session

from services.cli.settings import load
from services.common.cassandra.session import connect
from services.common.errors import ConfigError, KeyspaceMissing


@contextmanager
def keyspace_session() -> Iterator[Session]:
    """ConfigError, one line, when the keyspace is missing: a service waits for the migrate
    job, an operator's command has nothing to wait for."""
    settings = load().cassandra
    try:
        cluster, session = connect(settings, keyspace=settings.keyspace)
    except KeyspaceMissing as exc:
        raise ConfigError(str(exc)) from None
    try:
        yield session
    finally:
        cluster.shutdown()
