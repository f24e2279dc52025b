"""Operator errors in one line: malformed settings named by their variable, files by path."""

from __future__ import annotations

import errno

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from services.cli.send import UnencodableRequest, _check_text
from services.common.config import CommonSettings
from services.common.errors import ConfigError
from services.common.lifecycle import load_settings, os_reason, validation_problems
from services.router.config import RouterSettings


def problem(monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], **env: str) -> str:
    with monkeypatch.context() as scoped, pytest.raises(ConfigError) as caught:
        for key, value in env.items():
            scoped.setenv(key, value)
        load_settings(cls)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_malformed_variable_is_named_with_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = problem(monkeypatch, CommonSettings, MAILSTREAM_KAFKA__MAX_IN_FLIGHT="abc")
    assert shown.startswith("MAILSTREAM_KAFKA__MAX_IN_FLIGHT: Input should be a valid integer")
    assert shown.endswith("(got 'abc')")
    shown = problem(monkeypatch, CommonSettings, MAILSTREAM_EVENT_LOOP="tokio")
    assert shown == "MAILSTREAM_EVENT_LOOP: Input should be 'uvloop' or 'asyncio' (got 'tokio')"


def test_inside_a_json_value_the_path_follows_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown = problem(monkeypatch, CommonSettings, MAILSTREAM_DELAY_TIERS_S='[1, "x"]')
    assert shown.startswith("MAILSTREAM_DELAY_TIERS_S: [1]: Input should be a valid integer")
    smarthosts = '{"relay": {"host": "h", "port": "x"}}'
    shown = problem(monkeypatch, RouterSettings, MAILSTREAM_ROUTING__SMARTHOSTS=smarthosts)
    assert shown.startswith("MAILSTREAM_ROUTING__SMARTHOSTS: relay.port: Input should be")


def test_json_that_does_not_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = problem(monkeypatch, CommonSettings, MAILSTREAM_DELAY_TIERS_S="abc")
    assert (
        shown
        == "MAILSTREAM_DELAY_TIERS_S: not valid JSON (Expecting value: line 1 column 1 (char 0))"
    )
    shown = problem(monkeypatch, RouterSettings, MAILSTREAM_ROUTING__SMARTHOSTS="{bad")
    assert shown.startswith(
        "MAILSTREAM_ROUTING or a MAILSTREAM_ROUTING__* variable: not valid JSON (Expecting"
    )


def test_several_errors_share_the_line_and_the_rest_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown = problem(
        monkeypatch,
        CommonSettings,
        MAILSTREAM_KAFKA__MAX_IN_FLIGHT="a",
        MAILSTREAM_KAFKA__LINGER_MS="b",
        MAILSTREAM_CASSANDRA__PORT="c",
        MAILSTREAM_HEALTH__PORT="d",
    )
    assert shown.count("MAILSTREAM_") == 3 and shown.endswith("; and 1 more")


class _Secretive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: int
    port: int


def test_values_that_may_be_secrets_are_not_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        _Secretive.model_validate({"password": "hunter2", "port": "x"})
    shown = validation_problems(caught.value)
    assert "hunter2" not in shown
    assert shown.startswith("password: Input should be a valid integer")
    assert "port: Input should be a valid integer" in shown and "(got 'x')" in shown


def test_files_are_named_by_path() -> None:
    class Entry(BaseModel):
        id: int

    class File(BaseModel):
        entries: list[Entry]

    with pytest.raises(ValidationError) as caught:
        File.model_validate({"entries": [{"id": 1}, {"id": "two"}]})
    assert validation_problems(caught.value).startswith("entries[1].id: Input should be")


def test_a_bind_failure_keeps_only_its_reason() -> None:
    wrapped = OSError(
        errno.EADDRINUSE,
        "error while attempting to bind on address ('127.0.0.1', 8080): address already in use",
    )
    assert os_reason(wrapped) == "Address already in use"
    assert os_reason(OSError(-2, "Name or service not known")) == "Name or service not known"


def test_send_names_the_option_that_is_not_utf8() -> None:
    _check_text({"--to": ["ok@example.com"], "--subject": [None]})
    with pytest.raises(UnencodableRequest, match=r"^--to: not UTF-8 text, near "):
        _check_text({"--from": ["a@example.com"], "--to": ["ok@example.com", "\udcffx@y"]})
