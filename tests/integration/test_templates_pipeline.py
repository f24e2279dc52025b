"""Templated requests through the whole pipeline: versions applied with the CLI, locale
fallback, HTML autoescape, and rendering failures as REJECTED events."""

from __future__ import annotations

import json
import uuid
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from services.client import EmailClient, TemplateRef, new_request
from services.common.avro.records import EventType
from tests.integration.harness import (
    RecordingSmtp,
    TopicCollector,
    mailstream,
    until_terminal,
)

TEMPLATES = """
templates:
  - tenant: acme
    name: welcome
    locale: en
    default_locale: en
    required: [name]
    subject: "Welcome, {{ name }}"
    text: "Hello {{ name }}, thanks for joining."
    html: "<p>Hello <b>{{ name }}</b>, thanks for joining.</p>"
  - tenant: acme
    name: welcome
    locale: pt
    default_locale: en
    required: [name]
    subject: "Bem-vindo, {{ name }}"
    text: "Olá {{ name }}, obrigado por entrar."
  - tenant: acme
    name: escape
    locale: en
    default_locale: en
    subject: "hi"
    text: "{{ ''.__class__.__mro__[1].__subclasses__() }}"
"""


@pytest.fixture(scope="module")
def applied(
    env: dict[str, str], provisioned: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path: Path = tmp_path_factory.mktemp("templates") / "templates.yaml"
    path.write_text(TEMPLATES)
    mailstream(env, "templates", "apply", "-f", str(path), check=True)


def _send(client: EmailClient, ref: TemplateRef, data: dict[str, object] | None) -> str:
    mid = f"tpl-{uuid.uuid4().hex[:10]}"
    client.send(
        new_request(
            tenant_id="acme",
            from_address="hello@acme.mailstream.test",
            to="tpl@inbox.mailstream.test",
            message_id=mid,
            template=ref,
            template_data_json=json.dumps(data) if data is not None else None,
            headers={"X-Test-Id": mid},
        )
    )
    return mid


def _received(smtp: RecordingSmtp, mid: str) -> EmailMessage:
    raw = next(m.data for m in smtp.messages if f"X-Test-Id: {mid}".encode() in m.data)
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_locale_falls_back_from_pt_br_to_pt(
    applied: None, client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = _send(client, TemplateRef(name="welcome", locale="pt-BR"), {"name": "Ana"})
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    message = _received(smtp, mid)
    assert message["Subject"] == "Bem-vindo, Ana"
    assert message.get_content().strip() == "Olá Ana, obrigado por entrar."


def test_default_locale_and_html_autoescape(
    applied: None, client: EmailClient, events: TopicCollector, smtp: RecordingSmtp
) -> None:
    mid = _send(client, TemplateRef(name="welcome", locale="fr"), {"name": "<Bob & Co>"})
    assert until_terminal(events, mid)[-1].type is EventType.DELIVERED
    message = _received(smtp, mid)
    assert message["Subject"] == "Welcome, <Bob & Co>"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Hello <Bob & Co>," in text.get_content()
    assert "<b>&lt;Bob &amp; Co&gt;</b>" in html.get_content()


@pytest.mark.parametrize(
    ("ref", "data", "reason"),
    [
        (TemplateRef(name="welcome"), {}, "template_data_missing"),
        (TemplateRef(name="welcome"), None, "template_data_missing"),
        (TemplateRef(name="nosuch"), {"name": "x"}, "template_not_found"),
        (TemplateRef(name="welcome", version=99), {"name": "x"}, "template_not_found"),
        (TemplateRef(name="escape"), {}, "render_failed"),
    ],
)
def test_rendering_failures_reject_each_recipient(
    applied: None,
    client: EmailClient,
    events: TopicCollector,
    smtp: RecordingSmtp,
    ref: TemplateRef,
    data: dict[str, object] | None,
    reason: str,
) -> None:
    mid = _send(client, ref, data)
    mine = until_terminal(events, mid)
    assert [(e.type, e.reason, e.recipient) for e in mine] == [
        (EventType.ACCEPTED, None, "tpl@inbox.mailstream.test"),
        (EventType.REJECTED, reason, "tpl@inbox.mailstream.test"),
    ]
    assert not any(mid.encode() in m.data for m in smtp.messages)
