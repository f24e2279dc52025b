"""mailstream dlq list|replay: the records ingest could not decode, and sending them again."""

from __future__ import annotations

import click
from confluent_kafka import KafkaException, Producer

from services.cli.output import progress, table
from services.cli.settings import load
from services.common.errors import MailstreamError
from services.common.kafka import headers
from services.common.kafka.records import Inbound
from services.common.kafka.runner import read_topic
from services.common.kafka.settings import producer_config
from services.common.kafka.topics import Topics


class DlqError(MailstreamError):
    """The dead-letter topic could not be read or a replay not delivered."""


def _header(letter: Inbound, name: str) -> str:
    value = dict(letter.headers).get(name)
    return value.decode("utf-8", "replace") if value is not None else ""


def _letters(limit: int) -> tuple[str, list[Inbound]]:
    settings = load()
    topic = Topics(settings.kafka.topic_prefix, settings.delay_tiers_s).requests_dlq
    try:
        return topic, read_topic(settings.kafka, topic, limit=limit)
    except KafkaException as exc:
        raise DlqError(f"cannot read {topic}: {exc}") from exc


@click.group(help="Dead letters: requests that could not be decoded, kept byte for byte.")
def dlq() -> None:
    pass


@dlq.command("list", help="Show dead letters: where each came from and why it failed.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
def list_(limit: int) -> None:
    topic, letters = _letters(limit)
    shown = []
    for letter in letters:
        origin = ":".join(
            _header(letter, h)
            for h in (headers.ORIGINAL_TOPIC, headers.ORIGINAL_PARTITION, headers.ORIGINAL_OFFSET)
        )
        error = f"{_header(letter, headers.ERROR_CLASS)}: {_header(letter, headers.ERROR_MESSAGE)}"
        where = f"{letter.partition}:{letter.offset}"
        shown.append((where, origin, len(letter.value), error[:200]))
    table(["PARTITION:OFFSET", "FROM", "BYTES", "ERROR"], shown, right=["BYTES"])
    click.echo(f"{len(letters)} dead letters in {topic}")


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
def replay(offsets: tuple[str, ...], everything: bool, dry_run: bool) -> None:
    """After a fix (a new schema version, a producer bug mended), the same bytes go back to
    their original topic; ingest's idempotency keeps a request that was already accepted
    from being delivered twice."""
    if bool(offsets) == everything:
        raise click.UsageError("give --offset PARTITION:OFFSET (repeatable) or --all")
    wanted = set()
    for spec in offsets:
        partition, _, offset = spec.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise click.BadParameter(f"{spec!r} is not PARTITION:OFFSET", param_hint="--offset")
        wanted.add((int(partition), int(offset)))
    topic, letters = _letters(1_000_000)
    chosen = [d for d in letters if everything or (d.partition, d.offset) in wanted]
    missing = wanted - {(d.partition, d.offset) for d in chosen}
    if missing:
        raise DlqError(f"no dead letter at {sorted(missing)} in {topic}")
    settings = load()
    producer = None if dry_run else Producer(producer_config(settings.kafka))
    failures: list[str] = []
    for letter in progress(chosen, "replaying" if producer else "checking"):
        target = _header(letter, headers.ORIGINAL_TOPIC)
        if not target:
            raise DlqError(f"{letter.partition}:{letter.offset} has no {headers.ORIGINAL_TOPIC}")
        verb = "would replay" if dry_run else "replaying"
        click.echo(f"{verb} {letter.partition}:{letter.offset} -> {target}")
        if producer is None:
            continue
        kept = [(k, v) for k, v in letter.headers if not k.startswith(("error.", "original."))]

        def delivered(
            err: object, _msg: object, where: str = f"{letter.partition}:{letter.offset}"
        ) -> None:
            if err is not None:
                failures.append(f"{where}: {err}")

        producer.produce(
            target,
            value=letter.value,
            key=letter.key,
            headers=[
                *kept,
                (headers.REPLAYED_FROM, f"{topic}:{letter.partition}:{letter.offset}".encode()),
            ],
            on_delivery=delivered,
        )
    if producer is not None and producer.flush(30) != 0:
        failures.append("not every replayed record was acknowledged within 30 s")
    if failures:
        raise DlqError("; ".join(failures))
    click.echo(f"{len(chosen)} dead letters {'to replay' if dry_run else 'replayed'}")
