"""docs/reference/settings.md is what the settings models say, and every setting is described."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from services.cli import settings_reference
from services.cli.settings_reference import DOC_PATH, READERS, field_comments

SERVICES = Path(settings_reference.__file__).resolve().parents[1]

# Fields declared in services/sender/, whose comments the sender's owners are still to write.
# The list may only shrink: once one is described, its entry must go.
NOT_DESCRIBED_YET = {
    "MAILSTREAM_SMTP__HELO_NAME",
    "MAILSTREAM_SMTP__CONNECT_TIMEOUT_S",
    "MAILSTREAM_SMTP__COMMAND_TIMEOUT_S",
    "ProviderClass.name",
    "ProviderClass.pattern",
    "ProviderClass.connections",
    "ProviderClass.messages_per_connection",
}


def test_the_committed_reference_is_what_the_models_say() -> None:
    assert DOC_PATH.read_text() == settings_reference.render(), (
        "docs/reference/settings.md is out of date: run"
        " `mailstream docs settings -o docs/reference/settings.md` and commit it"
    )


def test_every_setting_and_every_key_has_a_meaning() -> None:
    missing = {s.name for s in settings_reference.settings() if not s.meaning}
    missing |= {f"{k.model}.{k.key}" for k in settings_reference.item_keys() if not k.meaning}
    assert missing == NOT_DESCRIBED_YET, (
        "describe each setting with a comment above its field (or after it, on its line):"
        f" {sorted(missing - NOT_DESCRIBED_YET)}; described now, drop from the list:"
        f" {sorted(NOT_DESCRIBED_YET - missing)}"
    )


def _service_main_settings() -> dict[str, type]:
    """The settings class each services/<name>/__main__.py hands to service_main."""
    found = {}
    for main in sorted(SERVICES.glob("*/__main__.py")):
        tree = ast.parse(main.read_text())
        imports = {
            alias.asname or alias.name: node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "service_main":
                name, cls = node.args[0], node.args[1]
                assert isinstance(name, ast.Constant) and isinstance(cls, ast.Name)
                module = importlib.import_module(imports[cls.id])
                found[name.value] = getattr(module, cls.id)
    return found


def test_the_reference_covers_every_service() -> None:
    services = _service_main_settings()
    assert len(services) == 4
    readers = dict(READERS)
    for name, cls in services.items():
        assert readers.get(name) is cls, name


def test_names_are_the_variables_the_services_read(monkeypatch: pytest.MonkeyPatch) -> None:
    by_name = {s.name: s for s in settings_reference.settings()}
    monkeypatch.setenv("MAILSTREAM_KAFKA__LINGER_MS", "7")
    monkeypatch.setenv("MAILSTREAM_SMTP__MAX_RATE_WAIT_S", "0.5")
    monkeypatch.setenv("MAILSTREAM_MAX_AGE_BULK_S", "60")
    settings = dict(READERS)["sender"]()
    assert settings.kafka.linger_ms == 7 and settings.max_age_bulk_s == 60
    assert settings.smtp.max_rate_wait_s == 0.5  # type: ignore[attr-defined]
    assert by_name["MAILSTREAM_SMTP__MAX_RATE_WAIT_S"].readers == ("sender",)
    assert by_name["MAILSTREAM_KAFKA__LINGER_MS"].readers == tuple(n for n, _ in READERS)
    assert by_name["MAILSTREAM_ROUTING__EGRESS_POOLS"].readers == ("router", "sender")
    assert by_name["MAILSTREAM_KAFKA__EVENTS_RETENTION_MS"].default == "`604800000` (7 days)"
    assert by_name["MAILSTREAM_DELAY_TIERS_S"].type == "JSON list of integer"
    assert by_name["MAILSTREAM_KAFKA__SASL_PASSWORD"].type == "secret string, optional"


class _Sample(BaseModel):
    # Above a field: this block,
    # both of its lines.
    above: int = 1
    inline: str = "x"  # after it on its line
    both: int = Field(  # the opening line
        default=2,
        ge=0,
    )  # and the closing one

    plain: int = 3  # fmt: skip
    # A blank line cuts a comment off from the field below it.

    after_blank: int = 4


def test_comments_above_and_after_a_field_are_its_meaning() -> None:
    assert field_comments(_Sample) == {
        "above": "Above a field: this block, both of its lines.",
        "inline": "after it on its line",
        "both": "the opening line and the closing one",
    }
