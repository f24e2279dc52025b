"""The Cassandra session: built once per process, queries awaited as asyncio futures."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import ssl
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import BatchStatement, BatchType, PreparedStatement, _clean_column_name

from services.common.cassandra.coalesce import Coalescer
from services.common.config import CassandraSettings
from services.common.errors import KeyspaceMissing, TransientError
from services.common.handoff import LoopHandoff
from services.common.retry import with_retries

# Driver errors that mean "Cassandra is unavailable for now", turned into TransientError: no
# host, timeouts, too few replicas alive, replicas failing the request (a node going down
# mid-write), a connection closing under the request, a node overloaded or still joining.
TRANSIENT = (
    NoHostAvailable,
    OperationTimedOut,
    Unavailable,
    WriteTimeout,
    ReadTimeout,
    CoordinationFailure,
    ConnectionException,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
)


def default_profile(settings: CassandraSettings) -> ExecutionProfile:
    """What every statement runs with, the services' and the CLI's alike.

    One consistency level for every table, read and write: LOCAL_QUORUM unless configured.
    At replication factor 3 a read then meets a replica of every acknowledged write (2 + 2 > 3),
    and with one replica down of three everything still works; at factor 1 it is one replica.
    - messages (the claim): its Paxos round at LOCAL_SERIAL, among this datacenter's replicas
      (SERIAL would cross datacenters on every request: right only if ingest ran in two at once
      on the same requests), its commit at the consistency level.
    - deliveries: a redelivered task, on whichever sender, must see what was delivered.
    - suppressions, soft_bounces: written by the event publisher and the CLI, read by ingest
      and by the publisher's own count.
    - tenants, template_versions, templates: written by the CLI, read by the services. A read
      that missed an apply rejects mail for good (unknown tenant, template not found), and
      these reads are cached, so a quorum costs nothing measurable.
    - message_events, recipient_messages (the timeline): the publisher's most frequent write.
      LOCAL_ONE would spare the wait for a second replica but buy no availability (the same
      publisher needs a quorum for suppressions), and `mailstream trace` could then miss
      events just written (1 + 2 = 3, not more than 3).
    """
    return ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
        serial_consistency_level=ConsistencyLevel.name_to_value[settings.serial_consistency],
        request_timeout=settings.request_timeout_s,
    )


def cluster_options(settings: CassandraSettings) -> dict[str, Any]:
    """The driver's Cluster arguments: contact points, auth, TLS and the default profile."""
    kwargs: dict[str, Any] = {
        "contact_points": settings.host_list,
        "port": settings.port,
        "connect_timeout": settings.connect_timeout_s,
        "protocol_version": 5,
        "execution_profiles": {EXEC_PROFILE_DEFAULT: default_profile(settings)},
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
    """KeyspaceMissing when Cassandra answers but has no such keyspace: the driver then says
    only that it could connect to no server "using keyspace", as if Cassandra were down."""
    cluster = Cluster(**cluster_options(settings))
    try:
        session = cluster.connect(keyspace)
    except TRANSIENT as exc:
        # The control connection read the schema before the session failed: "system" is in
        # every cluster's, so its absence means Cassandra was not reached at all.
        known = cluster.metadata.keyspaces if cluster.metadata is not None else {}
        missing = keyspace is not None and "system" in known and keyspace not in known
        cluster.shutdown()
        if missing:
            raise KeyspaceMissing(
                f"keyspace {keyspace!r} does not exist: run 'mailstream db migrate'"
            ) from exc
        raise TransientError(
            f"cannot reach Cassandra at {settings.hosts}:{settings.port}: {exc}"
        ) from exc
    return cluster, session


Statement = tuple[str, tuple[Any, ...]]  # CQL and its parameters

# A coalesced batch, by the values' own sizes (_size), and of a bounded number of callers.
# Cassandra's measure of a batch adds its rows' overhead: 16 KiB of values measured up to
# 25 KiB in a throughput run, well under batch_size_fail_threshold (50 KiB by default).
# Above 5 KiB or 10 partitions Cassandra warns (see _ExpectedWarnings).
_BATCH_BYTES = 16 * 1024
_BATCH_PARTS = 64


def _size(params: tuple[Any, ...]) -> int:
    """About what a row's values weigh in a batch."""
    total = 16
    for value in params:
        if isinstance(value, str):
            total += len(value) if value.isascii() else 4 * len(value)
        elif isinstance(value, (list, tuple, set)):
            total += sum(len(v) if isinstance(v, str) else 8 for v in value)
        else:
            total += 8
    return total


class _ExpectedWarnings(logging.Filter):
    """Cassandra warns of every batch over 5 KiB or across more than 10 partitions. These
    are the coalesced writes (write_all) doing what they are for: fewer requests. Any other
    server warning is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().removeprefix("Server warning: ")
        return not text.startswith(("Unlogged batch covering", "Batch for ["))


logging.getLogger("cassandra.protocol").addFilter(_ExpectedWarnings())


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
    by `named_rows`. The session itself keeps the driver's row factory, so ResultSet.was_applied,
    which knows only the driver's own factories, still works for its users without this wrapper
    (the CLI)."""

    def __init__(self, *, session: Session, attempts: int = 5) -> None:
        # The session's default profile (levels, timeout, load balancing: default_profile)
        # with rows named by named_rows; one object, passed as is to every query.
        self._profile = session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT, row_factory=named_rows
        )
        self._session = session
        self._attempts = attempts
        self._prepared: dict[str, PreparedStatement] = {}
        self._handoff: LoopHandoff | None = None
        self._writes: Coalescer[None, list[Statement], None] = Coalescer(
            self._write_groups,
            max_parts=_BATCH_PARTS,
            max_weight=_BATCH_BYTES,
            weight=lambda group: sum(_size(params) for _, params in group),
        )

    def _handoff_to(self, loop: asyncio.AbstractEventLoop) -> LoopHandoff:
        """The driver's I/O thread settles results through this (one per loop: the CLI runs
        a loop per command)."""
        handoff = self._handoff
        if handoff is None or handoff.loop is not loop:
            handoff = self._handoff = LoopHandoff(loop)
        return handoff

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

    async def write_all(self, statements: Sequence[Statement]) -> None:
        """Runs idempotent writes, in one unlogged batch with the writes of other callers in
        the same turn of the event loop (services/common/cassandra/coalesce.py), each batch
        under _BATCH_BYTES. Nothing is atomic about it: the rows may be in any partitions,
        and a batch retried after a timeout writes the same rows again."""
        chunks: list[list[Statement]] = []
        weight = 0
        for statement in statements:
            size = _size(statement[1])
            if not chunks or weight + size > _BATCH_BYTES:
                chunks.append([])
                weight = 0
            chunks[-1].append(statement)
            weight += size
        await asyncio.gather(*(self._writes(None, chunk) for chunk in chunks))

    async def _write_groups(self, _key: None, groups: Sequence[list[Statement]]) -> list[None]:
        await self.execute_batch([statement for group in groups for statement in group])
        return [None] * len(groups)

    async def execute_batch(self, statements: Sequence[Statement]) -> None:
        """Runs idempotent writes as one unlogged batch: one request instead of one each (the
        rows may be in different partitions; nothing is atomic about it, and a batch retried
        after a timeout writes the same rows again). Keep batches small: Cassandra refuses one
        over batch_size_fail_threshold (50 KiB by default)."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for cql, params in statements:
            batch.add(self.prepare(cql), params)
        await with_retries("cassandra", lambda: self._run_once(batch), attempts=self._attempts)

    async def _execute_once(self, cql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._run_once(self.prepare(cql), params)

    async def _run_once(self, statement: Any, params: tuple[Any, ...] | None = None) -> list[Any]:
        loop = asyncio.get_running_loop()
        handoff = self._handoff_to(loop)
        future: asyncio.Future[list[Any]] = loop.create_future()
        try:
            response = self._session.execute_async(
                statement, params, execution_profile=self._profile
            )
        except TRANSIENT as exc:
            raise TransientError(str(exc)) from exc

        rows: list[Any] = []

        def ok(page: Any) -> None:
            # Every page is read (the driver calls back once per page): most queries read
            # one, while listings (every tenant, every template) may read more.
            rows.extend(page or ())
            if response.has_more_pages:
                response.start_fetching_next_page()
            else:
                handoff.post(_set, future, rows)

        def err(exc: BaseException) -> None:
            wrapped = (
                TransientError(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, TRANSIENT)
                else exc
            )
            handoff.post(_fail, future, wrapped)

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


def cql_from_ms(ms: int) -> dt.datetime:
    """Epoch ms as the driver returns a timestamp (a naive UTC datetime)."""
    return _EPOCH + dt.timedelta(milliseconds=ms)
