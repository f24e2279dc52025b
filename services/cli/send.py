"""mailstream send: publish one EmailRequested from the command line."""

from __future__ import annotations

import click

from services.cli.settings import load
from services.client import EmailClient, Priority, TemplateRef, new_request
from services.common.errors import MailstreamError


class UnencodableRequest(MailstreamError):
    """A request no EmailRequested can carry, such as text that is not UTF-8."""


@click.command(help="Publish an email request (inline content or a template).")
@click.option("--tenant", required=True)
@click.option("--from", "from_address", required=True)
@click.option("--to", "to", required=True, multiple=True)
@click.option("--subject")
@click.option("--text")
@click.option("--html")
@click.option("--template", help="Template name (with --data as JSON).")
@click.option("--data", "data_json", help="Template data as a JSON object.")
@click.option("--message-id", help="Idempotency key (default: a new UUID).")
@click.option(
    "--priority",
    type=click.Choice([p.slug for p in Priority]),
    default="transactional",
    show_default=True,
)
def send(
    tenant: str,
    from_address: str,
    to: tuple[str, ...],
    subject: str | None,
    text: str | None,
    html: str | None,
    template: str | None,
    data_json: str | None,
    message_id: str | None,
    priority: str,
) -> None:
    _check_text(
        {
            "--tenant": [tenant],
            "--from": [from_address],
            "--to": list(to),
            "--subject": [subject],
            "--text": [text],
            "--html": [html],
            "--template": [template],
            "--data": [data_json],
            "--message-id": [message_id],
        }
    )
    request = new_request(
        tenant_id=tenant,
        from_address=from_address,
        to=list(to),
        message_id=message_id,
        subject=subject,
        text_body=text,
        html_body=html,
        template=TemplateRef(name=template) if template else None,
        template_data_json=data_json,
    )
    with EmailClient(kafka=load().kafka) as client:
        try:
            payload = client.encode(request)
        except (TypeError, ValueError) as exc:  # fastavro's kinds for a value it cannot write
            raise UnencodableRequest(f"cannot encode the request: {exc}") from None
        client.publish_raw(payload, key=request.message_id, priority=Priority(priority.upper()))
        client.flush()
    click.echo(request.message_id)


def _check_text(options: dict[str, list[str | None]]) -> None:
    """Avro strings are UTF-8: an argument of other bytes (Python keeps them as surrogates)
    would fail deep in the encoder, so name the option instead."""
    for option, values in options.items():
        for value in values:
            try:
                (value or "").encode("utf-8")
            except UnicodeEncodeError as exc:
                shown = ascii(value[max(exc.start - 10, 0) : exc.end + 10] if value else "")
                raise UnencodableRequest(f"{option}: not UTF-8 text, near {shown}") from None
