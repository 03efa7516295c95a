"""What a store says when its driver fails, in words of ours.

A driver's own text ("Python int too large to convert to SQLite INTEGER", "UNIQUE constraint
failed: runs.id", a psycopg class name) names internals a client has no use for and must not see
through the HTTP API. The stores translate every driver error into the one exception tree with a
message of their own; the driver's text goes to the log (``agent_sdk.store``), where an operator
can match it with the request id of the failure.
"""

from __future__ import annotations

import logging

from agent_sdk.errors import AgentSDKError, InvalidInput

log = logging.getLogger("agent_sdk.store")

# The largest integer SQLite and PostgreSQL (BIGINT) hold.
MAX_INT64 = 2**63 - 1


def unstorable(exc: BaseException) -> InvalidInput:
    """A value the driver could not send: a number out of range, text it cannot encode."""
    log.debug("value refused by the driver: %r", exc)
    if isinstance(exc, UnicodeError):
        return InvalidInput(
            "a text holds characters that cannot be stored (a lone surrogate)",
            hint="send valid UTF-8 text",
        )
    return InvalidInput(
        f"a number is out of the range that can be stored (-{MAX_INT64 + 1} to {MAX_INT64})"
    )


def unexpected(db: str, exc: BaseException) -> AgentSDKError:
    """An error no rule expects (a bug, not an outage): logged whole, answered generically."""
    log.error("%s: unexpected database error: %s: %s", db, type(exc).__name__, exc)
    return AgentSDKError(
        "the database failed on this request; the error was logged",
        hint="report it with the time (and the request id, over HTTP)",
    )


def noted(exc: BaseException) -> None:
    """The driver's text of an error translated by a rule, for whoever reads the debug log."""
    log.debug("database error: %s: %s", type(exc).__name__, exc)
