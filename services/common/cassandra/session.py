"""The Cassandra session: built once per process, queries awaited as asyncio futures."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ssl
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from cassandra import OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, _clean_column_name

from services.common.config import CassandraSettings
from services.common.errors import TransientError
from services.common.retry import with_retries

# Driver errors that mean "Cassandra is unavailable for now", turned into TransientError.
TRANSIENT = (NoHostAvailable, OperationTimedOut, Unavailable, WriteTimeout, ReadTimeout)


def cluster_options(settings: CassandraSettings) -> dict[str, Any]:
    """The driver's Cluster arguments: contact points, auth and TLS from the settings."""
    kwargs: dict[str, Any] = {
        "contact_points": settings.host_list,
        "port": settings.port,
        "connect_timeout": settings.connect_timeout_s,
        "protocol_version": 5,
        "load_balancing_policy": TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
        ),
    }
    if settings.username and settings.password:
        kwargs["auth_provider"] = PlainTextAuthProvider(
            username=settings.username, password=settings.password.get_secret_value()
        )
    if settings.ssl_ca_file:
        context = ssl.create_default_context(cafile=settings.ssl_ca_file)
        # Contact points are often addresses, not names: the CA is what is verified.
        context.check_hostname = False
        if settings.ssl_cert_file:  # client certificates (require_client_auth: true)
            context.load_cert_chain(settings.ssl_cert_file, settings.ssl_key_file)
        kwargs["ssl_context"] = context
    return kwargs


def connect(settings: CassandraSettings, *, keyspace: str | None = None) -> tuple[Cluster, Session]:
    cluster = Cluster(**cluster_options(settings))
    try:
        session = cluster.connect(keyspace)
    except TRANSIENT as exc:
        cluster.shutdown()
        raise TransientError(
            f"cannot reach Cassandra at {settings.hosts}:{settings.port}: {exc}"
        ) from exc
    session.default_timeout = settings.request_timeout_s
    return cluster, session


@functools.lru_cache(maxsize=512)
def _row_class(columns: tuple[str, ...]) -> Any:
    return namedtuple("Row", [_clean_column_name(c) for c in columns], rename=True)


def named_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The driver's default named_tuple_factory, with one Row class per column list instead of
    a new namedtuple class for every result (70 us of CPU per query with rows, a tenth of
    ingest's CPU in a throughput run)."""
    row = _row_class(tuple(columns))
    return [row(*values) for values in rows]


class AsyncSession:
    """Wraps a driver session: prepared statements cached, execute_async awaited, rows named
    by `named_rows` (so ResultSet.was_applied, which knows only the driver's own factories,
    is for sessions used without this wrapper)."""

    def __init__(self, *, session: Session, attempts: int = 5) -> None:
        session.row_factory = named_rows
        self._session = session
        self._attempts = attempts
        self._prepared: dict[str, PreparedStatement] = {}

    @property
    def raw(self) -> Session:
        return self._session

    def prepare(self, cql: str) -> PreparedStatement:
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self._session.prepare(cql)
            self._prepared[cql] = stmt
        return stmt

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Runs a statement, retrying transient errors a bounded number of times before
        raising TransientError. Safe because every statement mailstream runs is idempotent
        (an LWT claim retried after a timeout finds its own claim: see ingest/idempotency)."""
        return await with_retries(
            "cassandra", lambda: self._execute_once(cql, params), attempts=self._attempts
        )

    async def _execute_once(self, cql: str, params: tuple[Any, ...]) -> list[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        try:
            response = self._session.execute_async(self.prepare(cql), params)
        except TRANSIENT as exc:
            raise TransientError(str(exc)) from exc

        def ok(rows: Any) -> None:
            loop.call_soon_threadsafe(_set, future, list(rows or []))

        def err(exc: BaseException) -> None:
            wrapped = (
                TransientError(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, TRANSIENT)
                else exc
            )
            loop.call_soon_threadsafe(_fail, future, wrapped)

        # Pages beyond the first are not followed: every query here reads a bounded set.
        response.add_callbacks(ok, err)
        return await future


def _set(future: asyncio.Future[list[Any]], rows: list[Any]) -> None:
    if not future.done():
        future.set_result(rows)


def _fail(future: asyncio.Future[list[Any]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


_EPOCH = dt.datetime(1970, 1, 1)


def ms_from_cql(value: dt.datetime) -> int:
    """The driver returns timestamps as naive UTC datetimes."""
    return (value.replace(tzinfo=None) - _EPOCH) // dt.timedelta(milliseconds=1)
