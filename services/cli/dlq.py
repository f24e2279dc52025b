"""mailstream dlq list|replay: dead letters, the requests ingest could not decode and the records
a service quarantined, and sending them again."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import click
from confluent_kafka import KafkaException, Producer

from services.cli.output import progress, table
from services.cli.settings import load
from services.common.errors import MailstreamError
from services.common.kafka import headers
from services.common.kafka.records import Inbound
from services.common.kafka.runner import scan_topic
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics


class DlqError(MailstreamError):
    """The dead-letter topic could not be read or a replay not delivered."""


# Headers that say why a record is a dead letter: not carried onto its replay.
_VERDICT = (headers.LANE, headers.ATTEMPTS)
_PAGE = 200  # rows per table when listing, so a long topic is never held in memory


def _header(letter: Inbound, name: str) -> str:
    value = dict(letter.headers).get(name)
    return value.decode("utf-8", "replace") if value is not None else ""


def _scan(internal: bool) -> tuple[str, int, Iterator[Inbound]]:
    settings = load()
    topics = Topics(settings.kafka.topic_prefix, settings.delay_tiers_s)
    topic = topics.internal_dlq if internal else topics.requests_dlq
    try:
        total, letters = scan_topic(settings.kafka, topic)
    except KafkaException as exc:
        raise DlqError(f"cannot read {topic}: {exc}") from exc
    return topic, total, letters


_INTERNAL = click.option(
    "--internal",
    is_flag=True,
    help="The internal dead-letter topic: records a service quarantined after its handling "
    "kept failing (each recipient got REJECTED internal_error), instead of the requests "
    "ingest could not decode.",
)


@click.group(
    help="Dead letters: requests that could not be decoded (email.requested.dlq), and with "
    "--internal the records a service quarantined (mailstream.internal.dlq), kept byte for byte."
)
def dlq() -> None:
    pass


@dlq.command("list", help="Show dead letters: where each came from and why it failed.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000_000))
@_INTERNAL
def list_(limit: int, internal: bool) -> None:
    topic, total, letters = _scan(internal)
    columns = ["PARTITION:OFFSET", "FROM", "BYTES", "ERROR"]
    if internal:
        columns[2:2] = ["LANE", "TRIES", "DIGEST"]
    page: list[tuple[object, ...]] = []
    shown = 0
    for letter in itertools.islice(letters, limit):
        origin = ":".join(
            _header(letter, h)
            for h in (headers.ORIGINAL_TOPIC, headers.ORIGINAL_PARTITION, headers.ORIGINAL_OFFSET)
        )
        error = f"{_header(letter, headers.ERROR_CLASS)}: {_header(letter, headers.ERROR_MESSAGE)}"
        row: list[object] = [f"{letter.partition}:{letter.offset}", origin]
        if internal:
            row += [
                _header(letter, headers.LANE),
                _header(letter, headers.ATTEMPTS),
                _header(letter, headers.TRACEBACK_DIGEST),
            ]
        page.append((*row, len(letter.value), error[:200]))
        shown += 1
        if len(page) == _PAGE:
            table(columns, page, right=["BYTES", "TRIES"])
            page = []
    if page or not shown:
        table(columns, page, right=["BYTES", "TRIES"])
    more = f" (the first {shown} shown)" if shown < total else ""
    click.echo(f"{total} dead letters in {topic}{more}")


@dlq.command(help="Publish dead letters again, unchanged, to the topic each came from.")
@click.option(
    "--offset",
    "offsets",
    multiple=True,
    metavar="PARTITION:OFFSET",
    help="A dead letter to replay (repeatable), as `dlq list` shows it.",
)
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; publish nothing.")
@_INTERNAL
def replay(offsets: tuple[str, ...], everything: bool, dry_run: bool, internal: bool) -> None:
    """After a fix (a new schema version, a producer bug mended, a service upgraded), the same
    bytes go back to their original topic; ingest's idempotency and the sender's ledger keep
    what was already done from being done twice."""
    if bool(offsets) == everything:
        raise click.UsageError("give --offset PARTITION:OFFSET (repeatable) or --all")
    wanted = set()
    for spec in offsets:
        partition, _, offset = spec.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise click.BadParameter(f"{spec!r} is not PARTITION:OFFSET", param_hint="--offset")
        wanted.add((int(partition), int(offset)))
    topic, total, letters = _scan(internal)
    settings = load()
    producer = None if dry_run else Producer(producer_config(settings.kafka))
    failures: list[str] = []
    found: set[tuple[int, int]] = set()
    replayed = 0
    label = "replaying" if producer else "checking"
    for letter in progress(letters, label, total=total):
        where = (letter.partition, letter.offset)
        if not everything:
            if where not in wanted:
                continue
            found.add(where)
        target = _header(letter, headers.ORIGINAL_TOPIC)
        if not target:
            raise DlqError(f"{letter.partition}:{letter.offset} has no {headers.ORIGINAL_TOPIC}")
        verb = "would replay" if dry_run else "replaying"
        click.echo(f"{verb} {letter.partition}:{letter.offset} -> {target}")
        replayed += 1
        if producer is not None:
            _republish(producer, letter, topic, target, failures)
        if not everything and found == wanted:
            break
    missing = wanted - found
    if missing:
        raise DlqError(f"no dead letter at {sorted(missing)} in {topic}")
    if producer is not None and producer.flush(30) != 0:
        failures.append("not every replayed record was acknowledged within 30 s")
    if failures:
        raise DlqError("; ".join(failures))
    click.echo(f"{replayed} dead letters {'to replay' if dry_run else 'replayed'}")


def _republish(
    producer: Producer, letter: Inbound, topic: str, target: str, failures: list[str]
) -> None:
    kept = [
        (k, v)
        for k, v in letter.headers
        if not k.startswith(("error.", "original.")) and k not in _VERDICT
    ]
    where = f"{letter.partition}:{letter.offset}"

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(f"{where}: {err}")

    while True:
        try:
            producer.produce(
                target,
                value=letter.value,
                key=letter.key,
                headers=[*kept, (headers.REPLAYED_FROM, f"{topic}:{where}".encode())],
                on_delivery=delivered,
            )
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
