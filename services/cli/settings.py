"""Settings of the operator CLI: the shared ones, read from MAILSTREAM_* like the services."""

from __future__ import annotations

from services.common.config import CommonSettings
from services.common.lifecycle import load_settings


class CliSettings(CommonSettings):
    pass


def load() -> CliSettings:
    """ConfigError naming each malformed MAILSTREAM_* variable, in one line."""
    return load_settings(CliSettings)
