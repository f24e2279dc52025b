"""Settings of the operator CLI: the shared ones, read from MAILSTREAM_* like the services."""

from __future__ import annotations

from services.common.config import CommonSettings


class CliSettings(CommonSettings):
    pass


def load() -> CliSettings:
    return CliSettings()
