"""`mailstream templates` against the real Cassandra, and TemplateStore reading what it stored."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from services.common.avro.records import TemplateRef
from services.common.cassandra.session import AsyncSession, connect
from services.common.config import CommonSettings
from services.mail.templates import StoredTemplate, TemplateStore
from tests.integration.harness import mailstream

pytestmark = pytest.mark.integration

TEMPLATES = """
templates:
  - tenant: acme
    name: otp
    locale: en
    default_locale: en
    required: [code]
    subject: "Your sign-in code is {{{{ code }}}}"
    text: "Hello {{{{ name | default('there') }}}}, your code is {{{{ code }}}}.{suffix}"
    html: "<p>Hello {{{{ name | default('there') }}}}, your code is <b>{{{{ code }}}}</b>.</p>"
  - tenant: acme
    name: otp
    locale: pt
    default_locale: en
    required: [code]
    subject: "Seu código é {{{{ code }}}}"
    text: "Olá, seu código é {{{{ code }}}}."
"""


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return mailstream(env, "templates", *args)


def resolve(settings: CommonSettings, ref: TemplateRef) -> StoredTemplate | None:
    cluster, session = connect(settings.cassandra, keyspace=settings.cassandra.keyspace)
    try:
        store = TemplateStore(session=AsyncSession(session=session))
        return asyncio.run(store.resolve(tenant_id="acme", ref=ref))
    finally:
        cluster.shutdown()


def test_apply_list_preview_and_resolve(
    provisioned: None, env: dict[str, str], settings: CommonSettings, tmp_path: Path
) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(TEMPLATES.format(suffix=""))

    first = cli(env, "apply", "-f", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "created v1  acme/otp [en]",
        "created v1  acme/otp [pt]",
    ]
    again = cli(env, "apply", "-f", str(path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "unchanged v1  acme/otp [en]",
        "unchanged v1  acme/otp [pt]",
    ]
    path.write_text(TEMPLATES.format(suffix=" Bye."))
    changed = cli(env, "apply", "-f", str(path))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == [
        "created v2  acme/otp [en]",
        "unchanged v1  acme/otp [pt]",
    ]

    listed = cli(env, "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert ["acme", "otp", "en", "v2", "en"] in rows
    assert ["acme", "otp", "pt", "v1", "en"] in rows

    html_out = tmp_path / "otp.html"
    shown = cli(
        env, "preview", "--tenant", "acme", "otp", "--locale", "en",
        "--data", '{"code": "<42>", "name": "Ann"}', "--html-out", str(html_out),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "subject:  Your sign-in code is <42>" in shown.stdout
    assert "Hello Ann, your code is <42>. Bye." in shown.stdout
    assert html_out.read_text() == "<p>Hello Ann, your code is <b>&lt;42&gt;</b>.</p>"
    old = cli(env, "preview", "--tenant", "acme", "otp", "--version", "1", "--data", '{"code": 1}')
    assert old.returncode == 0 and "your code is 1." in old.stdout and "Bye" not in old.stdout
    missing = cli(env, "preview", "--tenant", "acme", "otp", "--data", "{}")
    assert missing.returncode != 0 and "template_data_missing" in missing.stderr
    absent = cli(env, "preview", "--tenant", "acme", "nope", "--data", "{}")
    assert absent.returncode != 0 and "template_not_found" in absent.stderr

    latest_br = resolve(settings, TemplateRef(name="otp", locale="pt-BR"))
    assert latest_br is not None
    assert (latest_br.version, latest_br.locale, latest_br.content_version) == (2, "pt", 1)
    latest_fr = resolve(settings, TemplateRef(name="otp", locale="fr"))
    assert latest_fr is not None and (latest_fr.locale, latest_fr.version) == ("en", 2)
    assert latest_fr.text is not None and latest_fr.text.endswith("Bye.")
    pinned = resolve(settings, TemplateRef(name="otp", version=1))
    assert pinned is not None and pinned.locale == "en" and pinned.text is not None
    assert not pinned.text.endswith("Bye.")
    assert resolve(settings, TemplateRef(name="otp", version=3)) is None


def test_apply_rejects_bad_files(provisioned: None, env: dict[str, str], tmp_path: Path) -> None:
    cases = {
        "extra": "templates:\n  - {tenant: acme, name: a, locale: en, default_locale: en,"
        " subject: s, text: t, colour: red}\n",
        "syntax": "templates:\n  - {tenant: acme, name: a, locale: en, default_locale: en,"
        " subject: s, text: '{% for %}'}\n",
        "tenant": "templates:\n  - {tenant: nobody, name: a, locale: en, default_locale: en,"
        " subject: s, text: t}\n",
        "default": "templates:\n  - {tenant: acme, name: b, locale: pt, default_locale: en,"
        " subject: s, text: t}\n",
    }
    for label, text in cases.items():
        path = tmp_path / f"{label}.yaml"
        path.write_text(text)
        result = cli(env, "apply", "-f", str(path))
        assert result.returncode != 0, (label, result.stdout)
        assert "error:" in result.stderr, (label, result.stderr)
    for command in ("apply", "list", "preview"):
        assert cli(env, command, "--help").returncode == 0
