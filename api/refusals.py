"""What every ``coinbooks`` command says when it cannot run as configured: one line on stderr
naming the variable to fix (``coinbooks: COINBOOKS_PORT: input should be a valid integer ...:
'abc'``) and exit code 2, never a traceback."""

from __future__ import annotations

import os
import re
import socket
import sys
from typing import Any

import asyncpg
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from typer._click.core import Context
from typer.core import TyperGroup

from api.settings import Settings

CANNOT_RUN = 2
"""The exit code of a command that could not run: a setting or the database is not right."""

_CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    asyncpg.InvalidAuthorizationSpecificationError,  # unknown role, wrong password
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.CannotConnectNowError,  # the server is starting or stopping
    asyncpg.TooManyConnectionsError,
)
_SETTINGS_ERROR_FIELD = re.compile(r'field "(\w+)"')
_SECRET = re.compile("SECRET|KEY|URL|PASSWORD|METRICS_TOKEN")
"""Variables whose values a refusal does not repeat (they may hold a password)."""


def variable_of(field: str) -> str:
    """The environment variable that sets ``field`` of the settings."""
    if field == "database_url" or field == "DATABASE_URL":
        return "DATABASE_URL"
    return field.upper() if field.isupper() else f"COINBOOKS_{field.upper()}"


def settings_refusal(error: ValidationError | SettingsError) -> str:
    """One line naming each setting at fault, why, and the value given."""
    if isinstance(error, SettingsError):  # a setting that should be JSON and is not
        named = _SETTINGS_ERROR_FIELD.search(str(error))
        field = named.group(1) if named else "settings"
        return f"{variable_of(field)}: not valid JSON"
    reasons = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not message.split(" ")[0].isupper():  # "Input should be ..." but not "COINBOOKS_X: ..."
            message = message[:1].lower() + message[1:]
        if problem["loc"]:
            variable = variable_of(str(problem["loc"][0]))
            given = problem.get("input")
            shown = isinstance(given, str | int | float) and not _SECRET.search(variable)
            reasons.append(f"{variable}: {message}" + (f": {given!r}" if shown else ""))
        else:  # a rule over several settings names them in its message
            reasons.append(message)
    return "; ".join(reasons).replace("\n", " ")


def connection_failure(error: BaseException) -> BaseException | None:
    """The failure to reach the database behind ``error``, if that is what it is."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _CONNECTION_FAILURES):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def connection_refusal(failure: BaseException) -> str:
    """One line saying which database could not be reached and why."""
    given = os.environ.get("DATABASE_URL") or os.environ.get("COINBOOKS_DATABASE_URL")
    reason = str(failure) or type(failure).__name__
    if not given:
        return f"COINBOOKS_DATA_DIR: the embedded PostgreSQL cannot be reached: {reason}"
    where = make_url(given).render_as_string(hide_password=True)
    return f"DATABASE_URL: cannot connect to {where}: {reason}"


def refuse(line: str) -> typer.Exit:
    print(f"coinbooks: {line}", file=sys.stderr)
    return typer.Exit(CANNOT_RUN)


class RefusingGroup(TyperGroup):
    """The command group of ``coinbooks``: before any command its settings are read, and a
    setting that is not valid or a database that cannot be reached ends it with one line."""

    def invoke(self, ctx: Context) -> Any:
        try:
            Settings()
            return super().invoke(ctx)
        except (ValidationError, SettingsError) as error:
            raise refuse(settings_refusal(error)) from None
        except Exception as error:
            failure = connection_failure(error)
            if failure is None:
                raise
            raise refuse(connection_refusal(failure)) from None
