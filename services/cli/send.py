"""mailstream send: publish one EmailRequested from the command line."""

from __future__ import annotations

import click

from services.cli.settings import load
from services.client import EmailClient, Priority, TemplateRef, new_request


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
        client.send(request, priority=Priority(priority.upper()))
    click.echo(request.message_id)
