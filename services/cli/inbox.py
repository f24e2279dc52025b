"""mailstream inbox serve|list|show: a local SMTP server that keeps what it receives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import time
from pathlib import Path
from typing import Any

import click
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.cli.output import table
from services.common.config import REPO_ROOT
from services.common.errors import ConfigError
from services.common.lifecycle import os_reason

DEFAULT_DIR = REPO_ROOT / ".state" / "inbox"


class InboxHandler:
    """Stores each message as NNNNNN.eml with its envelope in NNNNNN.json."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._seq = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        self._seq += 1
        stem = self.folder / f"{self._seq:06d}"
        data = envelope.original_content or b""
        stem.with_suffix(".eml").write_bytes(data)
        stem.with_suffix(".json").write_text(
            json.dumps(
                {
                    "received_at": time.time(),
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "peer": str(session.peer),
                    "bytes": len(data),
                }
            )
        )
        return "250 2.0.0 Ok: stored"


async def _serve(host: str, port: int, folder: Path) -> None:
    handler = InboxHandler(folder)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: SMTP(
                handler,
                hostname="inbox.mailstream.test",
                enable_SMTPUTF8=True,
                decode_data=False,
                data_size_limit=50 * 1024 * 1024,
            ),
            host=host,
            port=port,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {os_reason(exc)} (--host, --port)"
        ) from None
    click.echo(f"inbox listening on {host}:{port}, storing in {folder}")
    async with server:
        await server.serve_forever()


def _messages(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, json.loads(p.with_suffix(".json").read_text()))
        for p in sorted(folder.glob("*.eml"))
        if p.with_suffix(".json").exists()
    ]


@click.group(help="The local development inbox.")
def inbox() -> None:
    pass


@inbox.command(help="Run the inbox SMTP server in the foreground.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True)
@click.option("--dir", "folder", default=DEFAULT_DIR, type=click.Path(path_type=Path))
def serve(host: str, port: int, folder: Path) -> None:
    asyncio.run(_serve(host, port, folder))


@inbox.command(name="list", help="List received messages.")
@click.option("--dir", "folder", default=DEFAULT_DIR, type=click.Path(path_type=Path))
def list_messages(folder: Path) -> None:
    shown = []
    for path, meta in _messages(folder):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        when = time.strftime("%H:%M:%S", time.localtime(meta["received_at"]))
        shown.append((path.stem, when, ",".join(meta["rcpt_tos"]), msg["Subject"]))
    table(["N", "RECEIVED", "TO", "SUBJECT"], shown)


@inbox.command(help="Print one received message (default: the latest).")
@click.argument("number", required=False)
@click.option("--dir", "folder", default=DEFAULT_DIR, type=click.Path(path_type=Path))
def show(number: str | None, folder: Path) -> None:
    messages = _messages(folder)
    if not messages:
        raise click.ClickException(f"the inbox at {folder} is empty")
    chosen = (
        messages[-1]
        if number is None
        else next((m for m in messages if m[0].stem.lstrip("0") == number.lstrip("0")), None)
    )
    if chosen is None:
        raise click.ClickException(f"no message {number}")
    path, meta = chosen
    click.echo(f"envelope: MAIL FROM:<{meta['mail_from']}> RCPT TO:{meta['rcpt_tos']}")
    click.echo(path.read_bytes().decode("utf-8", "replace"))
