"""One way to run a service: SIGTERM sets a flag, the runner drains, flushes, commits, exits;
an operator's error (malformed settings, a port in use) is one line and exit 2, no traceback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings
from pydantic_settings.exceptions import SettingsError

from services.common.config import CommonSettings
from services.common.errors import ConfigError
from services.common.logging import configure_logging, get_logger

log = get_logger(__name__)

# The exit code of a process refused its configuration: restarting it unchanged cannot help.
EXIT_MISCONFIGURED = 2
# Errors shown per line at most; the rest are counted.
_SHOWN_ERRORS = 3
_SECRET = re.compile(r"password|secret|token|key", re.IGNORECASE)

Loc = tuple[int | str, ...]
S = TypeVar("S", bound=BaseSettings)
C = TypeVar("C", bound=CommonSettings)


def service_settings(name: str, cls: type[C]) -> C:
    """A service's settings, with logging configured as they say; malformed ones end the
    process with one line and exit 2."""
    try:
        settings = load_settings(cls)
    except ConfigError as exc:
        configure_logging()  # the settings would name the format: the default it is
        misconfigured(name, exc)
    try:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
    except KeyError:
        configure_logging(fmt=settings.log_format)
        misconfigured(name, ConfigError(f"MAILSTREAM_LOG_LEVEL: no level {settings.log_level!r}"))
    return settings


def load_settings(cls: type[S]) -> S:
    """The settings from the environment, or ConfigError naming each malformed variable."""
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigError(settings_problems(cls, exc)) from None
    except SettingsError as exc:
        raise ConfigError(unparsable_setting(cls, exc)) from None


def settings_problems(cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line: `MAILSTREAM_KAFKA__MAX_IN_FLIGHT: Input should be ... (got 'abc')`, each
    error named by the variable that sets it, and where inside its JSON value if it has one."""

    def locate(loc: Loc) -> str:
        variable, inside = _variable(cls, loc)
        return f"{variable}: {inside}" if inside else variable

    return validation_problems(exc, locate=locate)


def validation_problems(exc: ValidationError, *, locate: Callable[[Loc], str] | None = None) -> str:
    """One line for the errors of any pydantic model (an operator's file, settings): each as
    `where: message (got value)`, where by default a path like `tenants[0].id`."""
    problems = []
    for error in exc.errors(include_url=False):
        where = (locate or _path)(error["loc"])
        shown = _shown_input(error["loc"], error["input"])
        problems.append(f"{where}: {error['msg']}{shown}" if where else error["msg"] + shown)
    more = len(problems) - _SHOWN_ERRORS
    return "; ".join(problems[:_SHOWN_ERRORS]) + (f"; and {more} more" if more > 0 else "")


def _path(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def unparsable_setting(cls: type[BaseSettings], exc: SettingsError) -> str:
    """pydantic-settings names only the top-level field whose JSON did not parse."""
    match = re.search(r'field "(\w+)"', str(exc))
    if match is None:
        return str(exc)
    field = match.group(1)
    variable, _ = _variable(cls, (field,))
    info = cls.model_fields.get(field)
    if info is not None and _model(info.annotation) is not None:  # nested settings
        variable = f"{variable} or a {variable}{_delimiter(cls)}* variable"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return f"{variable}: not valid JSON ({cause})"
    return f"{variable}: {cause or exc}"


def _model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _delimiter(cls: type[BaseSettings]) -> str:
    return cls.model_config.get("env_nested_delimiter") or "__"


def _variable(cls: type[BaseSettings], loc: Loc) -> tuple[str, str]:
    """The variable that sets loc (as far as settings models reach), and the path inside it."""
    names: list[str] = []
    model: type[BaseModel] | None = cls
    rest = list(loc)
    while rest and model is not None and isinstance(rest[0], str) and rest[0] in model.model_fields:
        name = rest.pop(0)
        names.append(str(name))
        model = _model(model.model_fields[str(name)].annotation)
    prefix = cls.model_config.get("env_prefix") or ""
    variable = prefix + _delimiter(cls).join(names).upper() if names else f"{prefix}*"
    return variable, _path(tuple(rest))


def _shown_input(loc: Loc, value: object) -> str:
    """The rejected value, when it is a short scalar that cannot be a secret."""
    if not isinstance(value, str | int | float) or any(_SECRET.search(str(p)) for p in loc):
        return ""
    shown = repr(value)
    return f" (got {shown[:60]}...)" if len(shown) > 60 else f" (got {shown})"


def os_reason(exc: OSError) -> str:
    """Why a bind or a lookup failed, without the sentence asyncio wraps it in (which names
    the address the caller names anyway): "Address already in use"."""
    errno = exc.errno or 0
    return os.strerror(errno) if errno > 0 else exc.strerror or str(exc)


def misconfigured(name: str, exc: ConfigError) -> NoReturn:
    """The one line a refused configuration gets, then exit 2."""
    log.error("service_misconfigured", service=name, error=str(exc))
    sys.exit(EXIT_MISCONFIGURED)


def run_service(
    name: str, main: Callable[[asyncio.Event], Awaitable[None]], *, event_loop: str = "asyncio"
) -> None:
    """Runs main(stop) until it returns; exits 1 if it raised, so a supervisor restarts us,
    and 2 with one line if it raised ConfigError (restarting unchanged cannot help).
    event_loop "uvloop" runs it on libuv, which costs less CPU per socket operation."""

    async def supervise() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("service_starting", service=name)
        await main(stop)

    try:
        if event_loop == "uvloop":
            import uvloop

            uvloop.run(supervise())
        else:
            asyncio.run(supervise())
    except ConfigError as exc:
        misconfigured(name, exc)
    except Exception as exc:
        log.error("service_crashed", service=name, exc_info=exc)
        sys.exit(1)
    log.info("service_stopped", service=name)
